import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ActivityLogError } from '../../src/core/errors.js';
import { type BreakerTransition, CircuitBreaker } from '../../src/resilience/breaker.js';

const fail = () => Promise.reject(new ActivityLogError('STORE_CONNECTION_REFUSED', 'refused'));
const succeed = () => Promise.resolve('ok');
const never = () => new Promise<string>(() => undefined);

function makeBreaker(overrides: Partial<ConstructorParameters<typeof CircuitBreaker>[0]> = {}) {
  const breaker = new CircuitBreaker({
    name: 'store',
    failureThreshold: 3,
    cooldownMs: 1000,
    firstProbeMs: 1000,
    timeoutMs: 500,
    ...overrides,
  });
  const transitions: string[] = [];
  const events: BreakerTransition[] = [];
  breaker.events.on('stateChange', (event) => {
    transitions.push(`${event.from}→${event.to}`);
    events.push(event);
  });
  return { breaker, transitions, events };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof ActivityLogError ? error.code : String(error);
  }
  return 'resolved';
}

describe('CircuitBreaker', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts closed and lets calls through', async () => {
    const { breaker } = makeBreaker();
    expect(breaker.toJSON()).toEqual({ state: 'closed', failure_count: 0, is_allowed: true });
    await expect(breaker.execute(succeed)).resolves.toBe('ok');
  });

  it('opens after the configured number of consecutive failures and says why', async () => {
    const { breaker, transitions, events } = makeBreaker();
    for (let i = 1; i <= 2; i++) {
      expect(await codeOf(breaker.execute(fail))).toBe('STORE_CONNECTION_REFUSED');
      expect(breaker.snapshot()).toEqual({ state: 'closed', failureCount: i, isAllowed: true });
    }
    expect(await codeOf(breaker.execute(fail))).toBe('STORE_CONNECTION_REFUSED');
    expect(breaker.snapshot()).toEqual({ state: 'open', failureCount: 3, isAllowed: false });
    expect(transitions).toEqual(['closed→open']);
    expect(events[0]).toMatchObject({ breaker: 'store', failureCount: 3, probeAtMs: Date.now() + 1000 });
    expect((events[0]!.error as ActivityLogError).code).toBe('STORE_CONNECTION_REFUSED');
  });

  it('a success resets the consecutive count', async () => {
    const { breaker } = makeBreaker();
    await codeOf(breaker.execute(fail));
    await codeOf(breaker.execute(fail));
    await breaker.execute(succeed);
    expect(breaker.failureCount).toBe(0);
    await codeOf(breaker.execute(fail));
    expect(breaker.state).toBe('closed');
  });

  it('refuses calls at once while open, without running them', async () => {
    const { breaker } = makeBreaker({ failureThreshold: 1 });
    await codeOf(breaker.execute(fail));
    const fn = vi.fn(succeed);
    expect(await codeOf(breaker.execute(fn))).toBe('BREAKER_OPEN');
    expect(fn).not.toHaveBeenCalled();
  });

  it('lets one probe through after the cooldown; its success closes the breaker', async () => {
    const { breaker, transitions } = makeBreaker({ failureThreshold: 1 });
    await codeOf(breaker.execute(fail));
    await vi.advanceTimersByTimeAsync(999);
    expect(breaker.isAllowed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(breaker.isAllowed).toBe(true);
    expect(breaker.state).toBe('open');

    let finishProbe: (value: string) => void = () => undefined;
    const probe = breaker.execute(() => new Promise<string>((resolve) => (finishProbe = resolve)));
    expect(breaker.state).toBe('half_open');
    // Others are refused rather than queued behind a probe that may take the whole timeout.
    expect(await codeOf(breaker.execute(succeed))).toBe('BREAKER_OPEN');
    finishProbe('probed');
    await expect(probe).resolves.toBe('probed');
    expect(breaker.toJSON()).toEqual({ state: 'closed', failure_count: 0, is_allowed: true });
    expect(transitions).toEqual(['closed→open', 'open→half_open', 'half_open→closed']);
  });

  it('a failed probe re-opens the breaker for another cooldown', async () => {
    const { breaker, transitions } = makeBreaker({ failureThreshold: 2 });
    await codeOf(breaker.execute(fail));
    await codeOf(breaker.execute(fail));
    await vi.advanceTimersByTimeAsync(1000);
    expect(await codeOf(breaker.execute(fail))).toBe('STORE_CONNECTION_REFUSED');
    expect(breaker.state).toBe('open');
    expect(breaker.isAllowed).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    await breaker.execute(succeed);
    expect(transitions).toEqual([
      'closed→open',
      'open→half_open',
      'half_open→open',
      'open→half_open',
      'half_open→closed',
    ]);
  });

  it('counts a call slower than the timeout as a failure and releases the caller at the deadline', async () => {
    const { breaker } = makeBreaker({ failureThreshold: 2, timeoutMs: 500 });
    const slow = codeOf(breaker.execute(never));
    await vi.advanceTimersByTimeAsync(499);
    expect(breaker.failureCount).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(await slow).toBe('WRITE_TIMEOUT');
    expect(breaker.failureCount).toBe(1);
    const second = codeOf(breaker.execute(never));
    await vi.advanceTimersByTimeAsync(500);
    expect(await second).toBe('WRITE_TIMEOUT');
    expect(breaker.state).toBe('open');
  });

  it('does not count errors in the data itself', async () => {
    const { breaker } = makeBreaker({ failureThreshold: 1 });
    const tooLong = () => Promise.reject(new ActivityLogError('STORE_DATA_TOO_LONG', 'too long'));
    expect(await codeOf(breaker.execute(tooLong))).toBe('STORE_DATA_TOO_LONG');
    expect(breaker.toJSON()).toEqual({ state: 'closed', failure_count: 0, is_allowed: true });
  });

  it('emits a failure event with the updated count', async () => {
    const { breaker } = makeBreaker();
    const counts: number[] = [];
    breaker.events.on('failure', (event) => counts.push(event.failureCount));
    await codeOf(breaker.execute(fail));
    await codeOf(breaker.execute(fail));
    expect(counts).toEqual([1, 2]);
  });

  it('whenAllowed() resolves when the cooldown has passed', async () => {
    const { breaker } = makeBreaker({ failureThreshold: 1 });
    await codeOf(breaker.execute(fail));
    let allowed = false;
    void breaker.whenAllowed().then(() => {
      allowed = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(allowed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(allowed).toBe(true);
  });

  it('probes first after a short delay, then 1.5 times later after each failed probe, up to the cooldown', async () => {
    const { breaker } = makeBreaker({ failureThreshold: 1, firstProbeMs: 200, cooldownMs: 1000 });
    const delays: number[] = [];
    breaker.events.on('stateChange', (event) => {
      if (event.to === 'open') delays.push(event.probeAtMs! - Date.now());
    });
    await codeOf(breaker.execute(fail));
    for (const expected of [200, 300, 450, 675, 1000]) {
      await vi.advanceTimersByTimeAsync(expected - 1);
      expect(breaker.isAllowed).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(breaker.isAllowed).toBe(true);
      await codeOf(breaker.execute(fail));
    }
    expect(delays).toEqual([200, 300, 450, 675, 1000, 1000]);
    // A success closes it; the next opening starts from the short delay again.
    await vi.advanceTimersByTimeAsync(1000);
    await breaker.execute(succeed);
    await codeOf(breaker.execute(fail));
    expect(delays.at(-1)).toBe(200);
  });

  it('counts a call running past slowCallMs as one failure then, and not again when it ends', async () => {
    const { breaker, transitions } = makeBreaker({ failureThreshold: 2, slowCallMs: 100, timeoutMs: 5000 });
    let finish: (value: string) => void = () => undefined;
    const slow = breaker.execute(() => new Promise<string>((resolve) => (finish = resolve)));
    await vi.advanceTimersByTimeAsync(99);
    expect(breaker.failureCount).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(breaker.failureCount).toBe(1);
    // The late success neither resets the count nor hides that the call was slow.
    finish('late');
    await expect(slow).resolves.toBe('late');
    expect(breaker.failureCount).toBe(1);
    // A second slow call opens the breaker at its slow mark, long before its timeout.
    const hung = codeOf(breaker.execute(never));
    await vi.advanceTimersByTimeAsync(100);
    expect(breaker.state).toBe('open');
    expect(transitions).toEqual(['closed→open']);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await hung).toBe('WRITE_TIMEOUT');
    expect(breaker.failureCount).toBe(2);
  });

  it('does not count a fast call as slow', async () => {
    const { breaker } = makeBreaker({ slowCallMs: 100 });
    await breaker.execute(succeed);
    await vi.advanceTimersByTimeAsync(200);
    expect(breaker.failureCount).toBe(0);
  });
});
