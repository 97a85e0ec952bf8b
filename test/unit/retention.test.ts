import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PruneOptions } from '../../src/store/activity-store.js';
import { RetentionScheduler } from '../../src/store/retention.js';
import { MemoryStore } from '../helpers/memory-sink.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Records every prune call; deletes `deleting` rows per call, or fails while `failing`. */
class PruneRecordingStore extends MemoryStore {
  readonly calls: PruneOptions[] = [];
  deleting = 3;
  failing = false;

  override async prune(options: PruneOptions): Promise<number> {
    this.calls.push(options);
    if (this.failing) throw new Error('database down');
    return this.deleting;
  }
}

describe('RetentionScheduler', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-06-01T00:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('prunes rows older than the retention period after the first delay, then once per interval', async () => {
    const store = new PruneRecordingStore();
    const pruned: number[] = [];
    const retention = new RetentionScheduler({
      store,
      retentionDays: 30,
      firstRunDelayMs: 1000,
      intervalMs: DAY_MS,
      chunkSize: 200,
      onPruned: ({ deleted }) => pruned.push(deleted),
    });
    retention.start();
    await vi.advanceTimersByTimeAsync(999);
    expect(store.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(store.calls).toHaveLength(1);
    expect(store.calls[0]!.before.toISOString()).toBe('2026-05-02T00:00:01.000Z');
    expect(store.calls[0]!.chunkSize).toBe(200);
    expect(store.calls[0]!.logName).toBeUndefined();

    await vi.advanceTimersByTimeAsync(DAY_MS);
    expect(store.calls).toHaveLength(2);
    expect(pruned).toEqual([3, 3]);
    await retention.stop();
    await vi.advanceTimersByTimeAsync(3 * DAY_MS);
    expect(store.calls).toHaveLength(2);
  });

  it('reports a failed pass and tries again at the next interval', async () => {
    const store = new PruneRecordingStore();
    store.failing = true;
    const errors: unknown[] = [];
    const retention = new RetentionScheduler({
      store,
      retentionDays: 365,
      firstRunDelayMs: 10,
      intervalMs: 1000,
      onError: (error) => errors.push(error),
    });
    retention.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('database down');
    store.failing = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(store.calls).toHaveLength(2);
    expect(errors).toHaveLength(1);
    await retention.stop();
  });

  it('does not report a pass that deleted nothing', async () => {
    const store = new PruneRecordingStore();
    store.deleting = 0;
    const onPruned = vi.fn();
    const retention = new RetentionScheduler({ store, retentionDays: 1, onPruned });
    expect(await retention.runOnce()).toBe(0);
    expect(onPruned).not.toHaveBeenCalled();
    await retention.stop();
  });
});
