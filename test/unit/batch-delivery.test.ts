import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { BatchDelivery } from '../../src/delivery/batch.js';
import { SyncDelivery } from '../../src/delivery/sync.js';
import { storedActivity } from '../helpers/activity-factory.js';
import { MemorySink } from '../helpers/memory-sink.js';

function activity(n: number): Activity {
  return storedActivity({ description: `activity ${n}` });
}

describe('BatchDelivery', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes a full batch at once, without waiting for the interval', async () => {
    const sink = new MemorySink();
    const delivery = new BatchDelivery(sink, { batchSize: 3, flushIntervalMs: 1000 });
    for (let i = 0; i < 7; i++) expect(delivery.deliver(activity(i))).toBeUndefined();
    await vi.advanceTimersByTimeAsync(0);
    expect(sink.writes.map((w) => w.length)).toEqual([3, 3]);
    expect(delivery.pending()).toBe(1);
  });

  it('writes a partial batch once the oldest activity has waited the interval', async () => {
    const sink = new MemorySink();
    const delivery = new BatchDelivery(sink, { batchSize: 100, flushIntervalMs: 50 });
    delivery.deliver(activity(1));
    await vi.advanceTimersByTimeAsync(30);
    delivery.deliver(activity(2));
    await vi.advanceTimersByTimeAsync(19);
    expect(sink.writes).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(sink.writes.map((w) => w.length)).toEqual([2]);
    expect(delivery.pending()).toBe(0);
  });

  it('retries a failed write with backoff, ahead of newer activities, and loses nothing', async () => {
    const sink = new MemorySink();
    const failures: number[] = [];
    const delivery = new BatchDelivery(sink, { batchSize: 2, flushIntervalMs: 10, retryInitialDelayMs: 100 });
    delivery.bus.on('writeFailed', (event) => failures.push(event.count));
    sink.failNext = 3;
    const sent = [activity(1), activity(2), activity(3)];
    for (const a of sent) delivery.deliver(a);
    await vi.advanceTimersByTimeAsync(0);
    expect(sink.writes).toHaveLength(0);
    expect(delivery.pending()).toBe(3);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(failures).toHaveLength(3);
    expect(sink.stored.map((a) => a.id)).toEqual(sent.map((a) => a.id));
    expect(delivery.pending()).toBe(0);
  });

  it('backs off exponentially while the sink keeps failing', async () => {
    const sink = new MemorySink();
    const delivery = new BatchDelivery(sink, { batchSize: 1, flushIntervalMs: 10, retryInitialDelayMs: 100 });
    const times: number[] = [];
    delivery.bus.on('writeFailed', () => times.push(Date.now()));
    sink.failNext = 6;
    delivery.deliver(activity(1));
    await vi.advanceTimersByTimeAsync(20_000);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps).toHaveLength(5);
    // full jitter between half and all of 100, 200, 400, 800, 1600 ms
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(50 * 2 ** i);
      expect(gap).toBeLessThanOrEqual(100 * 2 ** i + 1);
    });
    expect(sink.stored).toHaveLength(1);
  });

  it('flush() writes everything buffered and resolves', async () => {
    vi.useRealTimers();
    const sink = new MemorySink();
    const delivery = new BatchDelivery(sink, { batchSize: 1000, flushIntervalMs: 60_000 });
    for (let i = 0; i < 5; i++) delivery.deliver(activity(i));
    await delivery.flush();
    expect(sink.stored).toHaveLength(5);
  });

  it('close() flushes what is pending, closes the sink and refuses later activities', async () => {
    vi.useRealTimers();
    const sink = new MemorySink();
    const delivery = new BatchDelivery(sink, { batchSize: 1000, flushIntervalMs: 60_000 });
    for (let i = 0; i < 1234; i++) delivery.deliver(activity(i));
    await delivery.close();
    expect(sink.stored).toHaveLength(1234);
    expect(sink.closed).toBe(true);
    expect(() => delivery.deliver(activity(0))).toThrow(/after close/);
  });

  it('close() keeps retrying a failing sink and reports what it could not write', async () => {
    vi.useRealTimers();
    const sink = new MemorySink();
    const delivery = new BatchDelivery(sink, {
      batchSize: 10,
      flushIntervalMs: 5,
      retryInitialDelayMs: 5,
      closeTimeoutMs: 300,
    });
    sink.failNext = 2;
    delivery.deliver(activity(1));
    await delivery.close();
    expect(sink.stored).toHaveLength(1);

    const broken = new MemorySink();
    broken.failNext = Number.POSITIVE_INFINITY;
    const failing = new BatchDelivery(broken, {
      batchSize: 10,
      flushIntervalMs: 5,
      retryInitialDelayMs: 5,
      closeTimeoutMs: 100,
    });
    failing.deliver(activity(1));
    failing.deliver(activity(2));
    await expect(failing.close()).rejects.toThrow(/2 activities could not be written/);
  });

  it('writes full batches at once and the rest after the interval', async () => {
    const sink = new MemorySink();
    const delivery = new BatchDelivery(sink, { batchSize: 2, flushIntervalMs: 10 });
    for (let i = 0; i < 5; i++) delivery.deliver(activity(i));
    await vi.advanceTimersByTimeAsync(20);
    expect(sink.writes.map((write) => write.length)).toEqual([2, 2, 1]);
  });
});

describe('flush() under a steady stream of log() calls', () => {
  it('BatchDelivery: resolves once what was accepted before the call is written', async () => {
    const sink = new MemorySink();
    const write = sink.write.bind(sink);
    sink.write = async (batch) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await write(batch);
    };
    const delivery = new BatchDelivery(sink, { batchSize: 500, flushIntervalMs: 20 });
    const before = Array.from({ length: 5 }, (_, i) => activity(i));
    for (const a of before) delivery.deliver(a);
    let n = 100;
    const producer = setInterval(() => delivery.deliver(activity(n++)), 1);
    try {
      await delivery.flush();
      const storedIds = new Set(sink.stored.map((a) => a.id));
      for (const a of before) expect(storedIds.has(a.id)).toBe(true);
      expect(delivery.pending()).toBeGreaterThanOrEqual(0);
    } finally {
      clearInterval(producer);
      await delivery.close();
    }
    expect(sink.stored).toHaveLength(before.length + (n - 100));
  });

  it('SyncDelivery: waits for the writes running at the call, not for later ones', async () => {
    const releases: (() => void)[] = [];
    const sink = new MemorySink();
    const write = sink.write.bind(sink);
    sink.write = async (batch) => {
      await new Promise<void>((resolve) => releases.push(resolve));
      await write(batch);
    };
    const delivery = new SyncDelivery(sink);
    const first = delivery.deliver(activity(1));
    await Promise.resolve();
    let flushed = false;
    const flush = delivery.flush().then(() => {
      flushed = true;
    });
    const later = delivery.deliver(activity(2));
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(flushed).toBe(false);
    releases[0]!();
    await flush;
    await first;
    expect(flushed).toBe(true);
    expect(delivery.pending()).toBe(1);
    releases[1]!();
    await later;
    expect(sink.stored).toHaveLength(2);
  });
});

describe('SyncDelivery', () => {
  it('waits for the write and rejects with the sink error', async () => {
    const sink = new MemorySink();
    const delivery = new SyncDelivery(sink);
    await delivery.deliver(activity(1));
    expect(sink.stored).toHaveLength(1);
    sink.failNext = 1;
    await expect(delivery.deliver(activity(2))).rejects.toThrow('injected write failure');
    expect(delivery.pending()).toBe(0);
  });
});
