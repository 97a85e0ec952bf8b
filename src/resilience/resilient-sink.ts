import { EventEmitter } from 'node:events';
import type { Activity } from '../core/activity.js';
import { ActivityLogError, isActivityLogError } from '../core/errors.js';
import type { ActivitySink, Delivery } from '../delivery/delivery.js';
import { type BreakerState, type CircuitBreaker, isDataError } from './breaker.js';
import type { Spool, SpoolReplayResult } from './spool.js';

export interface ResilientSinkOptions {
  /** Where activities go when all is well: the store sink, or the queue producer. */
  readonly target: ActivitySink;
  /** This destination's own breaker. */
  readonly breaker: CircuitBreaker;
  readonly spool: Spool;
  /** Activities per replayed write (`ACTIVITY_LOG_BATCH_SIZE`). */
  readonly replayBatchSize: number;
  /**
   * True for `sync`, where the caller of `log()` waits for this write: a spool too full to keep
   * the activity rejects with `SPOOL_FULL`, and data the destination refuses rejects with its
   * error, so the caller learns of either. False (default; `batch`, `queue`): the spool counts and
   * reports drops, and refused data is set aside in `rejected.ndjson`.
   */
  readonly callerWaits?: boolean;
  /** Pause before replay is tried again after a failed write that did not open the breaker (default: the smaller of 1 s and the cooldown). */
  readonly replayRetryMs?: number;
  /** Replay what earlier runs left in the spool as soon as the sink is made (default true). */
  readonly replayOnStart?: boolean;
  /**
   * How long `close()` keeps replaying what this process spooled while the destination is healthy
   * (default 30 s); what is left stays in the spool for the next process to start.
   */
  readonly closeDrainMs?: number;
}

/** Why activities went to the spool. */
export type SpoolReason = 'breaker_open' | 'write_failed' | 'backlog';

/** Typed events; the breaker's and the spool's own events are on `breaker.events` and `spool.events`. */
export interface ResilientSinkEvents {
  /** Activities confirmed written to the destination, live or replayed from the spool. */
  stored: [
    event: {
      readonly sink: string;
      readonly count: number;
      readonly durationMs: number;
      readonly replayed: boolean;
      readonly activities: readonly Activity[];
    },
  ];
  /** A write to the destination failed (its activities were then spooled). */
  writeFailed: [
    event: {
      readonly sink: string;
      readonly count: number;
      readonly error: unknown;
      readonly breaker: BreakerState;
    },
  ];
  /** Activities made durable in the spool instead of the destination. */
  spooled: [
    event: {
      readonly sink: string;
      readonly count: number;
      readonly dropped: number;
      readonly reason: SpoolReason;
    },
  ];
  /** A replay pass stopped on something other than the destination (the spool could not be read). */
  replayFailed: [event: { readonly sink: string; readonly error: unknown }];
}

/**
 * Wraps a destination with its circuit breaker and the spool, and is itself an
 * {@link ActivitySink}, so `sync`, `batch` and the queue producer compose it without knowing
 * what is inside. `write()` resolves once the activities are durable somewhere:
 *
 * - breaker closed: written through the breaker (timeout included); a failure sends the batch to
 *   the spool and `write()` still resolves;
 * - breaker open: straight to the spool, in the time of a local fsync;
 * - the destination refuses the data itself (a value too long for its column): the batch is split
 *   until the offending activities are found; those are kept in the spool's `rejected.ndjson`,
 *   the rest are written;
 * - `write()` rejects only when the spool cannot be written either (`SPOOL_FAILED`); with
 *   `callerWaits` (sync) also when the spool was full (`SPOOL_FULL`) or the data was refused.
 *
 * The spool is replayed in order through the same breaker when the breaker closes, at start-up,
 * after a success while the spool holds something, and — while the breaker is open — once the
 * cooldown has passed, so the first replayed batch is the probe even when no new activities come in.
 *
 * @example
 * const sink = new ResilientSink({ target: createStoreSink(store), breaker, spool, replayBatchSize: 500 });
 * const delivery = new BatchDelivery(sink, { batchSize: 500, flushIntervalMs: 50 });
 */
export class ResilientSink implements ActivitySink {
  readonly name: string;
  readonly breaker: CircuitBreaker;
  readonly spool: Spool;
  readonly events = new EventEmitter<ResilientSinkEvents>();
  readonly #target: ActivitySink;
  readonly #replayBatchSize: number;
  readonly #callerWaits: boolean;
  readonly #replayRetryMs: number;
  readonly #closeDrainMs: number;
  readonly #stopReplay = new AbortController();
  #replayTimer: NodeJS.Timeout | null = null;
  #replayDueAtMs = 0;
  #replayRun: Promise<SpoolReplayResult | null> | null = null;
  #closed = false;

  constructor(options: ResilientSinkOptions) {
    this.#target = options.target;
    this.name = options.target.name;
    this.breaker = options.breaker;
    this.spool = options.spool;
    this.#replayBatchSize = options.replayBatchSize;
    this.#callerWaits = options.callerWaits ?? false;
    this.#replayRetryMs = options.replayRetryMs ?? Math.min(1000, options.breaker.cooldownMs);
    this.#closeDrainMs = options.closeDrainMs ?? 30_000;
    this.breaker.events.on('stateChange', ({ to }) => {
      if (to === 'closed') this.replaySoon(0);
      // While open, the replay that runs once the cooldown has passed is the probe.
      else if (to === 'open') this.replaySoon(this.breaker.cooldownMs);
    });
    if (options.replayOnStart ?? true) this.replaySoon(0);
  }

  /** Activities spooled by this process and not yet replayed. */
  pending(): number {
    return this.spool.pending();
  }

  async write(activities: readonly Activity[]): Promise<void> {
    // While the breaker is not closed and the spool holds activities, the replay is the probe, so
    // no caller (a sync log() above all) waits on a probe that may take the whole timeout.
    const replayProbes = this.breaker.state !== 'closed' && this.spool.pending() > 0;
    if (replayProbes || !this.breaker.isAllowed) return this.#toSpool(activities, 'breaker_open', undefined);
    const started = performance.now();
    try {
      await this.breaker.execute(() => this.#target.write(activities));
    } catch (error) {
      if (isDataError(error)) {
        if (this.#callerWaits) throw error;
        return this.#isolateRejected(activities, error);
      }
      const refused = isActivityLogError(error, 'BREAKER_OPEN');
      if (!refused) this.#emitWriteFailed(activities.length, error);
      return this.#toSpool(activities, refused ? 'breaker_open' : 'write_failed', error);
    }
    this.#emitStored(activities, started, false);
    if (this.spool.pending() > 0) this.replaySoon(0);
  }

  /**
   * Starts a replay pass after `delayMs` unless one is due sooner. Nothing happens while the
   * breaker refuses calls: its next transition schedules the pass.
   */
  replaySoon(delayMs = 0): void {
    if (this.#closed) return;
    const dueAtMs = Date.now() + delayMs;
    if (this.#replayTimer !== null) {
      if (this.#replayDueAtMs <= dueAtMs) return;
      clearTimeout(this.#replayTimer);
    }
    this.#replayDueAtMs = dueAtMs;
    this.#replayTimer = setTimeout(() => {
      this.#replayTimer = null;
      void this.#startReplay();
    }, delayMs);
    // A pending replay must not keep an otherwise finished process alive; the spool keeps the data.
    this.#replayTimer.unref();
  }

  /**
   * Replays the spool now, after any pass already running, and resolves with the result — or
   * with null when the breaker refuses calls (the activities stay durable in the spool).
   */
  async replayNow(): Promise<SpoolReplayResult | null> {
    if (this.#replayRun !== null) await this.#replayRun;
    return this.#startReplay();
  }

  /**
   * Spools activities without trying the destination: the delivery in front holds more than it
   * should in memory while the destination keeps up too slowly. Replayed like any spooled batch.
   */
  spill(activities: readonly Activity[]): Promise<void> {
    return this.#toSpool(activities, 'backlog', undefined);
  }

  /**
   * One replay pass over what is in the spool now, while the breaker is closed (`flush()` of the
   * delivery in front calls it, so a spilled backlog is written too). Resolves, leaving the rest
   * in the spool, if the destination fails meanwhile.
   */
  async drain(): Promise<void> {
    if (this.#closed || this.breaker.state !== 'closed' || this.spool.pending() === 0) return;
    await this.replayNow();
  }

  /** Resolves when the destination answers now (its own `ping`, if it has one). */
  async ping(): Promise<void> {
    await this.#target.ping?.();
  }

  /**
   * Replays what this process spooled while the destination is healthy (a backlog spilled while
   * it was slow, a recovery not yet drained; for up to `closeDrainMs`), then stops replaying,
   * closes the spool and the destination. What could not be replayed stays durable in the spool.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#drainBeforeClose();
    this.#closed = true;
    if (this.#replayTimer !== null) clearTimeout(this.#replayTimer);
    this.#replayTimer = null;
    this.#stopReplay.abort();
    if (this.#replayRun !== null) await this.#replayRun;
    try {
      await this.spool.close();
    } finally {
      this.breaker.close();
      await this.#target.close();
    }
  }

  async #drainBeforeClose(): Promise<void> {
    if (this.breaker.state !== 'closed' || this.spool.pending() === 0) return;
    const deadline = setTimeout(() => this.#stopReplay.abort(), this.#closeDrainMs);
    try {
      while (
        !this.#stopReplay.signal.aborted &&
        this.breaker.state === 'closed' &&
        this.spool.pending() > 0
      ) {
        const result = await this.replayNow();
        if (result === null || !result.complete) break;
      }
    } finally {
      clearTimeout(deadline);
    }
  }

  #startReplay(): Promise<SpoolReplayResult | null> {
    if (this.#replayRun !== null) return this.#replayRun;
    if (this.#closed) return Promise.resolve(null);
    if (!this.breaker.isAllowed) {
      // Timers may fire a millisecond before the wall clock says the cooldown is over; a running
      // probe (half-open) schedules the next pass itself when it ends.
      if (this.breaker.state === 'open')
        this.replaySoon(Math.max(1, this.breaker.probeAtMs - Date.now() + 1));
      return Promise.resolve(null);
    }
    const run = this.spool
      .replay(this.#replayWrite, { batchSize: this.#replayBatchSize, signal: this.#stopReplay.signal })
      .then(
        (result) => {
          if (!result.complete) {
            // A failure below the threshold is retried after a pause; an open breaker is probed by
            // the next pass once its cooldown is over (the pass its opening scheduled may have found
            // this one still running); a half-open breaker's probe schedules the next pass itself.
            if (this.breaker.state === 'closed') this.replaySoon(this.#replayRetryMs);
            else if (this.breaker.state === 'open')
              this.replaySoon(Math.max(1, this.breaker.probeAtMs - Date.now() + 1));
          } else if (this.spool.pending() > 0) {
            this.replaySoon(0);
          }
          return result;
        },
        (error: unknown) => {
          this.events.emit('replayFailed', { sink: this.name, error });
          this.replaySoon(Math.max(this.#replayRetryMs, this.breaker.cooldownMs));
          return null;
        },
      )
      .finally(() => {
        this.#replayRun = null;
      });
    this.#replayRun = run;
    return run;
  }

  readonly #replayWrite = async (activities: readonly Activity[]): Promise<void> => {
    const started = performance.now();
    try {
      await this.breaker.execute(() => this.#target.write(activities));
    } catch (error) {
      if (!isDataError(error)) {
        if (!isActivityLogError(error, 'BREAKER_OPEN')) this.#emitWriteFailed(activities.length, error);
        throw error;
      }
      await this.#isolateRejected(activities, error, true);
      return;
    }
    this.#emitStored(activities, started, true);
  };

  async #toSpool(activities: readonly Activity[], reason: SpoolReason, cause: unknown): Promise<void> {
    let dropped: number;
    try {
      ({ dropped } = await this.spool.append(activities));
    } catch (spoolError) {
      const why =
        cause !== undefined
          ? messageOf(cause)
          : reason === 'backlog'
            ? 'it is slower than the activities coming in'
            : 'its circuit breaker is open';
      throw new ActivityLogError(
        'SPOOL_FAILED',
        `${activities.length} activities could not be written to the ${this.name} (${why}) nor kept in the spool: ${messageOf(spoolError)}`,
        { cause: spoolError, details: { writeError: cause } },
      );
    }
    this.events.emit('spooled', { sink: this.name, count: activities.length - dropped, dropped, reason });
    if (reason === 'write_failed' && this.breaker.state === 'closed') this.replaySoon(this.#replayRetryMs);
    if (dropped > 0 && this.#callerWaits) {
      throw new ActivityLogError(
        'SPOOL_FULL',
        `${dropped} activities could not be written to the ${this.name} and the spool at ${this.spool.dir} is full (ACTIVITY_LOG_SPOOL_MAX_MB)`,
        { cause, details: { dropped } },
      );
    }
  }

  /**
   * The destination refused the data of a batch: halve it until the refused activities are alone,
   * write the rest, and keep the refused ones aside, so one bad activity neither blocks the spool
   * nor takes its batch with it. When the batch comes from the spool (`replaying`), a half that
   * fails for another reason throws, so its segment is kept and replayed again rather than
   * re-appended (which could drop, on a full spool, activities that were already safe).
   */
  async #isolateRejected(activities: readonly Activity[], error: unknown, replaying = false): Promise<void> {
    if (activities.length === 1) {
      await this.spool.reject(activities, error);
      return;
    }
    const middle = Math.ceil(activities.length / 2);
    for (const half of [activities.slice(0, middle), activities.slice(middle)]) {
      const started = performance.now();
      try {
        await this.breaker.execute(() => this.#target.write(half));
        this.#emitStored(half, started, replaying);
      } catch (halfError) {
        if (isDataError(halfError)) await this.#isolateRejected(half, halfError, replaying);
        else if (replaying) {
          if (!isActivityLogError(halfError, 'BREAKER_OPEN')) this.#emitWriteFailed(half.length, halfError);
          throw halfError;
        } else
          await this.#toSpool(
            half,
            isActivityLogError(halfError, 'BREAKER_OPEN') ? 'breaker_open' : 'write_failed',
            halfError,
          );
      }
    }
  }

  #emitStored(activities: readonly Activity[], started: number, replayed: boolean): void {
    if (this.events.listenerCount('stored') === 0) return;
    this.events.emit('stored', {
      sink: this.name,
      count: activities.length,
      durationMs: performance.now() - started,
      replayed,
      activities,
    });
  }

  #emitWriteFailed(count: number, error: unknown): void {
    this.events.emit('writeFailed', { sink: this.name, count, error, breaker: this.breaker.state });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The resilient sink behind a delivery (its breaker and spool), for monitoring; null for a
 * delivery that has none (a custom one).
 *
 * @example
 * const breaker = resilienceOf(activityLog.delivery)?.breaker.toJSON(); // { state, failure_count, is_allowed }
 */
export function resilienceOf(delivery: Delivery): ResilientSink | null {
  const sink = (delivery as { readonly sink?: unknown }).sink;
  return sink instanceof ResilientSink ? sink : null;
}
