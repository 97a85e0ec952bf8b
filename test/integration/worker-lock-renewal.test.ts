import { Job, Worker } from 'bullmq';
import { describe, expect, vi } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { ActivityWorker } from '../../src/delivery/worker.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { MemoryStore } from '../helpers/memory-sink.js';
import { enqueue, testQueue, waitFor } from '../helpers/queue.js';
import { REDIS, serviceAvailable } from '../helpers/services.js';
import { test as it } from '../helpers/test-context.js';

const redisUp = await serviceAvailable(REDIS);

describe.skipIf(!redisUp)('queue worker lock renewal (real Redis)', () => {
  it('renews the locks of every job it holds in one round trip, and loses none of them', async ({
    defer,
  }) => {
    // Locks of 1 s renewed every 500 ms: a job held for 2 s keeps its lock only if renewed.
    const config = testQueue(defer, 'lock-renewal', {
      ACTIVITY_LOG_RETRY_AFTER: '2',
      DB_QUERY_TIMEOUT_MS: '60000',
    });
    await enqueue(config, [builtActivities(2), builtActivities(2, 2), builtActivities(2, 4)]);
    const batched = vi.spyOn(Worker.prototype, 'extendJobLocks');
    const single = vi.spyOn(Job.prototype, 'extendLock');
    defer(() => {
      batched.mockRestore();
      single.mockRestore();
    });
    const releases: (() => void)[] = [];
    const store = new MemoryStore();
    store.insertMany = async function (this: MemoryStore, batch: readonly Activity[]) {
      await new Promise<void>((resolve) => releases.push(resolve));
      return MemoryStore.prototype.insertMany.call(this, batch);
    };
    const worker = new ActivityWorker({
      config,
      store,
      concurrency: 3,
      mergeJobs: false,
      timeoutSeconds: 30,
      pollIntervalMs: 200,
    });
    worker.events.on('warning', () => undefined);
    await worker.start();
    defer(async () => {
      await worker.close();
    });
    await waitFor(() => releases.length === 3, 5000, 'three jobs held at once');
    batched.mockClear();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(worker.heldJobs()).toBe(3);
    expect(releases).toHaveLength(3);
    expect(batched.mock.calls.length).toBeGreaterThanOrEqual(2);
    for (const [jobIds, tokens, durationMs] of batched.mock.calls) {
      expect(new Set(jobIds).size).toBe(3);
      expect(tokens).toHaveLength(3);
      expect(durationMs).toBe(worker.timings.lockDurationMs);
    }
    // Every renewal succeeded: none of the locks was lost.
    const failed = await Promise.all(batched.mock.results.map((result) => result.value as Promise<string[]>));
    expect(failed.flat()).toEqual([]);
    expect(single).not.toHaveBeenCalled();
    for (const release of releases) release();
    await waitFor(() => worker.heldJobs() === 0, 2000, 'the jobs to be stored');
    const summary = await worker.close();
    expect(summary.jobs).toBe(3);
    expect(summary.lostJobs).toBe(0);
    expect(store.rows.size).toBe(6);
  }, 20_000);
});
