import type { BreakerState, CircuitBreaker } from './breaker.js';

export interface SpoolReplayScheduleOptions {
  /** The destination's breaker, whose state and probe delay decide when a pass is worth trying. */
  readonly breaker: Pick<CircuitBreaker, 'state' | 'probeAtMs' | 'cooldownMs'>;
  /** Starts a replay pass; called when a scheduled pass is due. */
  readonly replay: () => void;
  /** Pause before replay is tried again after a failure that did not open the breaker (default: the smaller of 1 s and the cooldown). */
  readonly retryMs?: number | undefined;
}

/**
 * When a `ResilientSink` replays its spool next: one timer, kept for the earliest pass asked for,
 * and the delays that follow a breaker transition, a failed write, or a pass that stopped short.
 * The timer never keeps the process alive on its own; the spool keeps the data.
 *
 * @example
 * const schedule = new SpoolReplaySchedule({ breaker, replay: () => void sink.replayNow() });
 * breaker.events.on('stateChange', ({ to }) => schedule.afterBreakerChange(to));
 */
export class SpoolReplaySchedule {
  readonly #breaker: Pick<CircuitBreaker, 'state' | 'probeAtMs' | 'cooldownMs'>;
  readonly #replay: () => void;
  readonly #retryMs: number;
  #timer: NodeJS.Timeout | null = null;
  #dueAtMs = 0;
  #closed = false;

  constructor(options: SpoolReplayScheduleOptions) {
    this.#breaker = options.breaker;
    this.#replay = options.replay;
    this.#retryMs = options.retryMs ?? Math.min(1000, options.breaker.cooldownMs);
  }

  /** Starts a replay pass after `delayMs` unless one is due sooner; nothing once closed. */
  soon(delayMs = 0): void {
    if (this.#closed) return;
    const dueAtMs = Date.now() + delayMs;
    if (this.#timer !== null) {
      if (this.#dueAtMs <= dueAtMs) return;
      clearTimeout(this.#timer);
    }
    this.#dueAtMs = dueAtMs;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#replay();
    }, delayMs);
    this.#timer.unref();
  }

  /**
   * A pass once the open breaker's probe delay is over, which makes it the probe. Timers may fire
   * a millisecond before the wall clock says the delay is over, hence the extra millisecond.
   */
  atProbe(): void {
    this.soon(Math.max(1, this.#breaker.probeAtMs - Date.now() + 1));
  }

  /** A closed breaker replays now; an open one at its probe; a half-open one's probe decides. */
  afterBreakerChange(to: BreakerState): void {
    if (to === 'closed') this.soon(0);
    else if (to === 'open') this.atProbe();
  }

  /** A write failed without opening the breaker: replay is tried again after a pause. */
  afterFailedWrite(): void {
    if (this.#breaker.state === 'closed') this.soon(this.#retryMs);
  }

  /**
   * A pass stopped on the destination: below the threshold it is retried after a pause; an open
   * breaker is probed by the next pass once its probe delay is over (the pass its opening
   * scheduled may have found this one still running); a half-open breaker's probe schedules the
   * next pass itself.
   */
  afterIncompletePass(): void {
    if (this.#breaker.state === 'closed') this.soon(this.#retryMs);
    else if (this.#breaker.state === 'open') this.atProbe();
  }

  /** A pass stopped on something other than the destination (the spool could not be read). */
  afterFailedPass(): void {
    this.soon(Math.max(this.#retryMs, this.#breaker.cooldownMs));
  }

  /** Cancels the pass scheduled, and any asked for from now on. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
