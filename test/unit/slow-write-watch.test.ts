import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ActivityLogError } from '../../src/core/errors.js';
import { SlowWriteWatch, slowWriteError } from '../../src/resilience/slow-write-watch.js';

function deferred(): { promise: Promise<void>; resolve(): void; reject(error: unknown): void } {
  let resolve: () => void = () => undefined;
  let reject: (error: unknown) => void = () => undefined;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SlowWriteWatch', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says a write is slow once it has been outstanding for slowWriteMs', async () => {
    const watch = new SlowWriteWatch(100);
    const write = deferred();
    let slow: boolean | undefined;
    void watch.isSlow(write.promise)?.then((isSlow) => {
      slow = isSlow;
    });
    await vi.advanceTimersByTimeAsync(99);
    expect(slow).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(slow).toBe(true);
  });

  it('says a write is not slow as soon as it settles, resolved or rejected, and leaves no timer', async () => {
    const watch = new SlowWriteWatch(100);
    const resolved = deferred();
    const rejected = deferred();
    const resolvedSlow = watch.isSlow(resolved.promise);
    const rejectedSlow = watch.isSlow(rejected.promise);
    resolved.resolve();
    rejected.reject(new Error('refused'));
    await expect(resolvedSlow).resolves.toBe(false);
    await expect(rejectedSlow).resolves.toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('is off when slowWriteMs is null: no write is ever slow', async () => {
    const watch = new SlowWriteWatch(null);
    const write = deferred();
    expect(watch.isSlow(write.promise)).toBeNull();
    const stop = watch.countWhileSlow(write.promise);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(watch.anySlow).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    stop();
    expect(watch.anySlow).toBe(false);
  });

  it('counts held slow writes until each is released, and tells when the last one is', () => {
    const watch = new SlowWriteWatch(100);
    expect(watch.anySlow).toBe(false);
    const releaseFirst = watch.holdSlow();
    const releaseSecond = watch.holdSlow();
    expect(watch.anySlow).toBe(true);
    expect(releaseFirst()).toBe(false);
    expect(watch.anySlow).toBe(true);
    expect(releaseSecond()).toBe(true);
    expect(watch.anySlow).toBe(false);
  });

  it('counts a watched write slow only from slowWriteMs on, until it is stopped', async () => {
    const watch = new SlowWriteWatch(100);
    const write = deferred();
    const stop = watch.countWhileSlow(write.promise);
    await vi.advanceTimersByTimeAsync(99);
    expect(watch.anySlow).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(watch.anySlow).toBe(true);
    write.resolve();
    await write.promise;
    stop();
    expect(watch.anySlow).toBe(false);
  });

  it('never counts a watched write that settles in time', async () => {
    const watch = new SlowWriteWatch(100);
    const write = deferred();
    const stop = watch.countWhileSlow(write.promise);
    write.resolve();
    await write.promise;
    stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(watch.anySlow).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('slowWriteError', () => {
  it('is a WRITE_SLOW error naming the destination and the setting', () => {
    const error = slowWriteError('store', 2000);
    expect(error).toBeInstanceOf(ActivityLogError);
    expect(error.code).toBe('WRITE_SLOW');
    expect(error.message).toBe('the store has not answered a write for 2000 ms (ACTIVITY_LOG_SLOW_WRITE_MS)');
    expect(error.details).toEqual({ slowWriteMs: 2000 });
  });
});
