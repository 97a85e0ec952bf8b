import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BreakerState } from '../../src/resilience/breaker.js';
import { SpoolReplaySchedule } from '../../src/resilience/spool-replay-schedule.js';

const COOLDOWN_MS = 5000;

/** A breaker whose state and probe time the test sets, and a schedule counting the passes it starts. */
function setup(retryMs?: number) {
  const breaker = { state: 'closed' as BreakerState, probeAtMs: 0, cooldownMs: COOLDOWN_MS };
  let passes = 0;
  const schedule = new SpoolReplaySchedule({
    breaker,
    replay: () => {
      passes++;
    },
    retryMs,
  });
  return { breaker, schedule, passes: () => passes };
}

describe('SpoolReplaySchedule', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts a pass once the delay asked for has passed', async () => {
    const t = setup();
    t.schedule.soon(100);
    await vi.advanceTimersByTimeAsync(99);
    expect(t.passes()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.passes()).toBe(1);
  });

  it('keeps the earliest pass asked for: a later one is ignored, a sooner one replaces it', async () => {
    const t = setup();
    t.schedule.soon(100);
    t.schedule.soon(500);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(t.passes()).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.passes()).toBe(1);

    t.schedule.soon(500);
    t.schedule.soon(0);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(t.passes()).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.passes()).toBe(2);
  });

  it('schedules again once the pass it scheduled has started', async () => {
    const t = setup();
    t.schedule.soon(0);
    await vi.advanceTimersByTimeAsync(0);
    t.schedule.soon(200);
    await vi.advanceTimersByTimeAsync(200);
    expect(t.passes()).toBe(2);
  });

  it('does not keep the process alive for a pass not yet due', () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const t = setup();
    t.schedule.soon(100);
    const timer = setTimeoutSpy.mock.results[0]!.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    setTimeoutSpy.mockRestore();
  });

  it('probes an open breaker a millisecond after its probe delay is over', async () => {
    const t = setup();
    t.breaker.state = 'open';
    t.breaker.probeAtMs = Date.now() + 300;
    t.schedule.atProbe();
    await vi.advanceTimersByTimeAsync(300);
    expect(t.passes()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.passes()).toBe(1);
  });

  it('waits at least a millisecond for a probe whose time has already come', async () => {
    const t = setup();
    t.breaker.probeAtMs = Date.now() - 1000;
    t.schedule.atProbe();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.passes()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.passes()).toBe(1);
  });

  it('replays at once when the breaker closes, at the probe when it opens, and not when half-open', async () => {
    const t = setup();
    t.schedule.afterBreakerChange('closed');
    await vi.advanceTimersByTimeAsync(0);
    expect(t.passes()).toBe(1);

    t.schedule.afterBreakerChange('half_open');
    await vi.advanceTimersByTimeAsync(COOLDOWN_MS * 2);
    expect(t.passes()).toBe(1);

    t.breaker.probeAtMs = Date.now() + COOLDOWN_MS;
    t.schedule.afterBreakerChange('open');
    await vi.advanceTimersByTimeAsync(COOLDOWN_MS);
    expect(t.passes()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.passes()).toBe(2);
  });

  it('retries after a failed write only while the breaker is closed, after the smaller of 1 s and the cooldown', async () => {
    const t = setup();
    t.schedule.afterFailedWrite();
    await vi.advanceTimersByTimeAsync(999);
    expect(t.passes()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.passes()).toBe(1);

    t.breaker.state = 'open';
    t.schedule.afterFailedWrite();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('retries after the given retryMs, and after the cooldown when it is shorter than 1 s', async () => {
    const custom = setup(250);
    custom.schedule.afterFailedWrite();
    await vi.advanceTimersByTimeAsync(250);
    expect(custom.passes()).toBe(1);

    const breaker = { state: 'closed' as BreakerState, probeAtMs: 0, cooldownMs: 400 };
    let passes = 0;
    const short = new SpoolReplaySchedule({ breaker, replay: () => passes++ });
    short.afterFailedWrite();
    await vi.advanceTimersByTimeAsync(399);
    expect(passes).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(passes).toBe(1);
  });

  it('after a pass that stopped short: retries while closed, probes while open, waits while half-open', async () => {
    const t = setup(200);
    t.schedule.afterIncompletePass();
    await vi.advanceTimersByTimeAsync(200);
    expect(t.passes()).toBe(1);

    t.breaker.state = 'half_open';
    t.schedule.afterIncompletePass();
    expect(vi.getTimerCount()).toBe(0);

    t.breaker.state = 'open';
    t.breaker.probeAtMs = Date.now() + 1000;
    t.schedule.afterIncompletePass();
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.passes()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.passes()).toBe(2);
  });

  it('after a pass that failed on the spool, waits the longer of the retry pause and the cooldown', async () => {
    const t = setup(200);
    t.schedule.afterFailedPass();
    await vi.advanceTimersByTimeAsync(COOLDOWN_MS - 1);
    expect(t.passes()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.passes()).toBe(1);
  });

  it('starts nothing once closed: the pass due is cancelled and later ones are refused', async () => {
    const t = setup();
    t.schedule.soon(100);
    t.schedule.close();
    t.schedule.soon(0);
    t.schedule.afterBreakerChange('closed');
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.passes()).toBe(0);
  });
});
