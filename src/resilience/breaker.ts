import { EventEmitter } from 'node:events';
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  DelegateBackoff,
  handleWhen,
  IsolatedCircuitError,
} from 'cockatiel';
import { type ActivityEventBus, type BreakerState, createActivityEventBus } from '../core/activity-events.js';
import { ActivityLogError, isErrorOfKind } from '../core/errors.js';

export type { BreakerState } from '../core/activity-events.js';

/** What monitoring reads: camelCase here, snake_case in {@link CircuitBreaker.toJSON}. */
export interface BreakerSnapshot {
  readonly state: BreakerState;
  /** Consecutive failed calls (reset by a success). */
  readonly failureCount: number;
  /** Whether a call made now would be let through (when open: the cooldown has passed, a probe may go). */
  readonly isAllowed: boolean;
}

/** One state change. Every transition is emitted, so alerts can fire on `open` and clear on `closed`. */
export interface BreakerTransition {
  readonly breaker: string;
  readonly from: BreakerState;
  readonly to: BreakerState;
  readonly failureCount: number;
  /** The failure that opened the breaker (on `→ open`). */
  readonly error?: unknown;
  /** When the breaker will let a probe through (on `→ open`), epoch ms. */
  readonly probeAtMs?: number;
}

/** Typed events of a {@link CircuitBreaker}; metrics and alerts subscribe, callers never need to. */
export interface BreakerEvents {
  stateChange: [transition: BreakerTransition];
  /** A call failed in a way the breaker counts (a timeout, a refused connection…). */
  failure: [event: { readonly breaker: string; readonly error: unknown; readonly failureCount: number }];
}

export interface CircuitBreakerOptions {
  /** Names the destination in events and messages: `store`, `queue`, … */
  readonly name: string;
  /** Consecutive failures that open the breaker (`ACTIVITY_LOG_BREAKER_FAILURES`). */
  readonly failureThreshold: number;
  /**
   * The longest wait before a probe (`ACTIVITY_LOG_BREAKER_COOLDOWN_MS`). The first probe after the
   * breaker opens comes after `firstProbeMs`; each failed probe makes the next wait 1.5 times
   * longer, up to this.
   */
  readonly cooldownMs: number;
  /** Wait before the first probe after opening (default: the smaller of 500 ms and `cooldownMs`). */
  readonly firstProbeMs?: number;
  /**
   * A call still running after this fails with `WRITE_TIMEOUT` and counts as a failure, because an
   * overwhelmed destination is a failing one (`DB_QUERY_TIMEOUT_MS` for the store).
   */
  readonly timeoutMs: number;
  /**
   * A call still running after this counts as a failure right then (once), while it goes on to
   * finish or time out: a destination that stopped answering opens the breaker in seconds, not
   * after `failureThreshold` full timeouts. Its late answer neither resets nor adds to the count.
   * Default: off.
   */
  readonly slowCallMs?: number;
  /** Errors that say nothing about the destination's health (default: {@link isDataError}). */
  readonly isFailure?: (error: unknown) => boolean;
  /** Where `breakerState` is reported (default: a bus of its own). */
  readonly bus?: ActivityEventBus;
}

/**
 * Whether a write failed because of the activities it carried rather than the destination (an
 * error of kind `data` in the catalogue): it never opens the breaker, and retrying the same
 * activities would fail the same way.
 */
export function isDataError(error: unknown): boolean {
  return isErrorOfKind(error, 'data');
}

/** How much longer each wait for a probe is than the one before, after a failed probe. */
const PROBE_BACKOFF_FACTOR = 1.5;

/**
 * Carries the outcome of a call the breaker already counted as slow past the policy, which would
 * otherwise count it a second time (or reset the count on a late success).
 */
class AlreadyCounted {
  constructor(readonly outcome: { readonly value: unknown } | { readonly error: unknown }) {}
}

const STATE_NAMES: Readonly<Record<CircuitState, BreakerState>> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half_open',
  [CircuitState.Isolated]: 'open',
};

/**
 * A circuit breaker around one destination, built on cockatiel's `CircuitBreakerPolicy` with a
 * `ConsecutiveBreaker` and a deadline inside it. Closed: calls go through, and
 * `failureThreshold` consecutive failures (timeouts and slow calls included) open it. Open: calls
 * are refused at once with `BREAKER_OPEN` until the probe delay has passed (`firstProbeMs`, then
 * 1.5 times longer after each failed probe, up to `cooldownMs`); then the next call is the probe
 * (`half_open`) while every other call is still refused — callers never queue behind a probe
 * that may itself take the whole timeout. The probe's success closes the breaker, its failure
 * opens it again.
 *
 * @example
 * const breaker = new CircuitBreaker({ name: 'store', failureThreshold: 5, cooldownMs: 10_000, timeoutMs: 10_000 });
 * breaker.events.on('stateChange', ({ from, to }) => console.warn(`store breaker ${from} → ${to}`));
 * if (breaker.isAllowed) await breaker.execute(() => store.insertMany(activities));
 */
export class CircuitBreaker {
  readonly name: string;
  readonly events = new EventEmitter<BreakerEvents>();
  readonly bus: ActivityEventBus;
  readonly cooldownMs: number;
  readonly firstProbeMs: number;
  readonly timeoutMs: number;
  readonly slowCallMs: number | null;
  readonly #counter: ConsecutiveBreaker;
  readonly #policy: CircuitBreakerPolicy;
  readonly #isFailure: (error: unknown) => boolean;
  readonly #disposables: { dispose(): void }[] = [];
  #state: BreakerState = 'closed';
  #openedAtMs = 0;
  #notClosedSinceMs: number | null = null;
  /** How long after `#openedAtMs` the probe is let through. */
  #probeDelayMs: number;
  #lastBreakError: unknown;

  constructor(options: CircuitBreakerOptions) {
    this.name = options.name;
    this.bus = options.bus ?? createActivityEventBus();
    this.cooldownMs = options.cooldownMs;
    this.firstProbeMs = Math.min(options.firstProbeMs ?? 500, options.cooldownMs);
    this.timeoutMs = options.timeoutMs;
    this.slowCallMs = options.slowCallMs ?? null;
    this.#probeDelayMs = this.firstProbeMs;
    const isFailure = options.isFailure ?? ((error: unknown) => !isDataError(error));
    this.#isFailure = (error) => !(error instanceof AlreadyCounted) && isFailure(error);
    this.#counter = new ConsecutiveBreaker(options.failureThreshold);
    this.#policy = circuitBreaker(handleWhen(this.#isFailure), {
      // Called as the breaker opens, with the number of openings since it last closed.
      halfOpenAfter: new DelegateBackoff(({ attempt }) => {
        this.#probeDelayMs = Math.min(
          this.cooldownMs,
          Math.round(this.firstProbeMs * PROBE_BACKOFF_FACTOR ** Math.max(0, attempt - 1)),
        );
        return this.#probeDelayMs;
      }),
      breaker: this.#counter,
    });
    this.#disposables.push(
      this.#policy.onBreak((reason) => {
        this.#openedAtMs = Date.now();
        this.#lastBreakError = 'error' in reason ? reason.error : undefined;
      }),
      this.#policy.onStateChange((state) => this.#onStateChange(STATE_NAMES[state])),
    );
  }

  get state(): BreakerState {
    return this.#state;
  }

  get failureCount(): number {
    return this.#counter.state;
  }

  get isAllowed(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'half_open') return false;
    return Date.now() >= this.probeAtMs;
  }

  /** Since when it has not been closed (epoch ms); null while closed. */
  get notClosedSinceMs(): number | null {
    return this.#state === 'closed' ? null : this.#notClosedSinceMs;
  }

  /** When an open breaker lets its probe through (epoch ms); 0 unless open. */
  get probeAtMs(): number {
    return this.#state === 'open' ? this.#openedAtMs + this.#probeDelayMs : 0;
  }

  snapshot(): BreakerSnapshot {
    return { state: this.#state, failureCount: this.failureCount, isAllowed: this.isAllowed };
  }

  /** The `circuit_breaker` object of the performance snapshot. */
  toJSON(): { state: BreakerState; failure_count: number; is_allowed: boolean } {
    return { state: this.#state, failure_count: this.failureCount, is_allowed: this.isAllowed };
  }

  /**
   * Runs `fn` through the breaker.
   *
   * @throws ActivityLogError `BREAKER_OPEN` when the breaker refuses the call (open, or a probe is
   * already running); `WRITE_TIMEOUT` when `fn` took longer than `timeoutMs`; otherwise what `fn` threw.
   */
  async execute<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.isAllowed) throw this.#refusal();
    // Only while closed: a probe's own outcome decides whether the breaker closes.
    let countedSlow = false;
    const slowTimer =
      this.slowCallMs === null || this.#state !== 'closed'
        ? undefined
        : setTimeout(() => {
            countedSlow = true;
            this.#countSlowCall();
          }, this.slowCallMs);
    try {
      return await this.#policy.execute(() =>
        this.#withDeadline(fn).then(
          (value) => {
            if (countedSlow) throw new AlreadyCounted({ value });
            return value;
          },
          (error: unknown) => {
            throw countedSlow ? new AlreadyCounted({ error }) : error;
          },
        ),
      );
    } catch (error) {
      if (error instanceof AlreadyCounted) {
        if ('error' in error.outcome) throw error.outcome.error;
        return error.outcome.value as T;
      }
      if (error instanceof BrokenCircuitError || error instanceof IsolatedCircuitError) throw this.#refusal();
      // Emitted here rather than from the policy's onFailure, which fires before the count is updated.
      if (this.#isFailure(error)) this.#emitFailure(error);
      throw error;
    } finally {
      clearTimeout(slowTimer);
    }
  }

  /**
   * `fn`'s outcome, or `WRITE_TIMEOUT` at the deadline even if the driver never answers; the write
   * itself may still finish later, which is harmless because inserts are idempotent. A timer per
   * call and nothing else: cockatiel's timeout policy derives an AbortController per call and
   * aborts it on return, which costs more than a small write itself (a DOMException each time).
   */
  #withDeadline<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = setTimeout(() => reject(this.#timedOut()), this.timeoutMs);
      fn().then(
        (value) => {
          clearTimeout(deadline);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(deadline);
          reject(error);
        },
      );
    });
  }

  /** Counts a call that is taking longer than `slowCallMs` as one failure now. */
  #countSlowCall(): void {
    const slow = new ActivityLogError(
      'WRITE_SLOW',
      `the ${this.name} has not answered a write for ${this.slowCallMs} ms; counted as a failure by its circuit breaker`,
      { details: { breaker: this.name, slowCallMs: this.slowCallMs } },
    );
    if (this.#state !== 'closed') return;
    this.#policy
      .execute(() => Promise.reject(slow))
      .then(undefined, (error: unknown) => {
        if (error === slow) this.#emitFailure(slow);
      });
  }

  #emitFailure(error: unknown): void {
    if (this.events.listenerCount('failure') > 0) {
      this.events.emit('failure', { breaker: this.name, error, failureCount: this.failureCount });
    }
  }

  /** Resolves once a call would be let through (at once when closed; after the cooldown when open). */
  async whenAllowed(signal?: AbortSignal): Promise<void> {
    while (!this.isAllowed && signal?.aborted !== true) {
      const waitMs = this.#state === 'open' ? Math.max(1, this.probeAtMs - Date.now()) : null;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.events.off('stateChange', done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = waitMs === null ? undefined : setTimeout(done, waitMs);
        this.events.on('stateChange', done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** Stops listening to the policy; the breaker must not be used afterwards. */
  close(): void {
    for (const disposable of this.#disposables.splice(0)) disposable.dispose();
    this.events.removeAllListeners();
  }

  #onStateChange(to: BreakerState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    if (to === 'closed') this.#notClosedSinceMs = null;
    else this.#notClosedSinceMs ??= Date.now();
    const transition: BreakerTransition =
      to === 'open'
        ? {
            breaker: this.name,
            from,
            to,
            failureCount: this.failureCount,
            error: this.#lastBreakError,
            probeAtMs: this.#openedAtMs + this.#probeDelayMs,
          }
        : { breaker: this.name, from, to, failureCount: this.failureCount };
    this.events.emit('stateChange', transition);
    this.bus.emit('breakerState', { breaker: this.name, from, to });
  }

  #refusal(): ActivityLogError {
    const waitMs = Math.max(0, this.probeAtMs - Date.now());
    const when = this.#state === 'half_open' ? 'a probe is running' : `next probe in ${waitMs} ms`;
    return new ActivityLogError(
      'BREAKER_OPEN',
      `the ${this.name} circuit breaker is open after ${this.failureCount} consecutive failures (${when})`,
      { cause: this.#lastBreakError, details: { breaker: this.name, state: this.#state } },
    );
  }

  #timedOut(): ActivityLogError {
    return new ActivityLogError(
      'WRITE_TIMEOUT',
      `the ${this.name} write took longer than ${this.timeoutMs} ms; counted as a failure by its circuit breaker`,
      { details: { breaker: this.name, timeoutMs: this.timeoutMs } },
    );
  }
}
