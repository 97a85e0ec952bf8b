import { afterEach, describe, expect, it, vi } from 'vitest';
import { CaptureRunner, STALLED_AFTER_MS } from '../../src/capture/capture-runner.js';
import type { CaptureSource } from '../../src/capture/capture-source.js';
import type { CapturedTransaction } from '../../src/capture/row-change.js';
import { DEFAULT_REDACT_KEYS } from '../../src/core/activity.js';
import { secretKeyMatcher } from '../../src/core/redact.js';

const transaction: CapturedTransaction = {
  position: '0/10',
  resumePosition: '0/20',
  commitTime: new Date(),
  tag: null,
  changes: [
    {
      schema: 'public',
      table: 'orders',
      event: 'created',
      old: null,
      new: { id: 1 },
      unchanged: [],
      keyColumns: ['id'],
    },
  ],
  firstIndex: 0,
};

/** A source that hands over one transaction and then waits; `reconnecting` as the test sets it. */
function source(state: { reconnecting: boolean }): CaptureSource {
  let finish: () => void = () => undefined;
  return {
    kind: 'postgres',
    streamKey: 'postgres:1/shop/activity_log',
    defaultSchema: 'public',
    run: async (_from, handle) => {
      await handle(transaction);
      await new Promise<void>((resolve) => {
        finish = resolve;
      });
    },
    confirm: () => undefined,
    caughtUp: () => false,
    lag: async () => ({ bytes: 0, retainedBytes: 0 }),
    reconnecting: () => state.reconnecting,
    stop: async () => finish(),
  };
}

function runner(capture: CaptureSource, flush: () => Promise<void>): CaptureRunner {
  return new CaptureRunner({
    source: capture,
    logger: { logMany: async (inputs) => inputs as never, flush },
    positions: { save: async () => undefined },
    slot: 'activity_log',
    mapping: {
      logName: 'capture',
      subjectTypes: new Map(),
      excludedColumns: new Set(),
      isSecretKey: secretKeyMatcher(DEFAULT_REDACT_KEYS),
    },
    warn: () => undefined,
  });
}

describe('the state a capture reports', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is stalled once changes have waited STALLED_AFTER_MS with nothing made durable, streaming again after', async () => {
    vi.useFakeTimers();
    let release: () => void = () => undefined;
    let flushes = 0;
    const capture = runner(source({ reconnecting: false }), () => {
      flushes++;
      // The first flush hangs (the delivery does not take them), the next ones succeed.
      return flushes === 1 ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
    });
    const running = capture.run(null);
    await vi.advanceTimersByTimeAsync(1000);
    expect(capture.stats().state).toBe('streaming');
    await vi.advanceTimersByTimeAsync(STALLED_AFTER_MS);
    expect(capture.stats()).toMatchObject({ state: 'stalled', activities: 1, durableActivities: 0 });
    release();
    await vi.advanceTimersByTimeAsync(1000);
    expect(capture.stats()).toMatchObject({ state: 'streaming', durableActivities: 1, position: '0/20' });
    expect(capture.stats().positionSavedAtMs).toBeGreaterThanOrEqual(Date.now() - 1000);
    await capture.stop();
    await running;
    expect(capture.stats().state).toBe('stopped');
  });

  it('is reconnecting while the source says it re-establishes its connection', async () => {
    const state = { reconnecting: false };
    const capture = runner(source(state), () => Promise.resolve());
    const running = capture.run(null);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(capture.stats().state).toBe('streaming');
    state.reconnecting = true;
    expect(capture.stats().state).toBe('reconnecting');
    await capture.stop();
    await running;
  });
});
