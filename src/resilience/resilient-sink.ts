import { EventEmitter } from 'node:events';
import type { Activity } from '../core/activity.js';
import type { ActivityEventBus, Destination } from '../core/activity-events.js';
import type { ActivitySink } from '../core/activity-sink.js';
import type { Delivery } from '../core/delivery.js';
import { isActivityLogError } from '../core/errors.js';
import { type CircuitBreaker, isDataError } from './breaker.js';
import { spoolFailedError, spoolFullError } from './resilient-sink-errors.js';
import type { ResilientSinkEvents, SpoolReason } from './resilient-sink-events.js';
import type { ResilientSinkOptions } from './resilient-sink-options.js';
import { SlowWriteWatch, slowWriteError } from './slow-write-watch.js';
import type { Spool, SpoolReplayResult } from './spool.js';
import { SpoolReplaySchedule } from './spool-replay-schedule.js';
import { SpoolingEpisode } from './spooling-episode.js';
import { UnconfirmedSegments } from './unconfirmed-segments.js';
import { type IsolatedWrite, writeWithIsolation } from './write-with-isolation.js';

export type { ResilientSinkEvents, SpoolReason } from './resilient-sink-events.js';
export type { ResilientSinkOptions } from './resilient-sink-options.js';
export type { WriteAcknowledgement, WriteFate } from './write-acknowledgement.js';

/**
 * Wraps a destination with its circuit breaker and the spool, and is itself an
 * {@link ActivitySink}, so `sync`, `batch` and the queue producer compose it without knowing
 * what is inside. `write()` resolves once the activities are durable somewhere:
 *
 * - breaker closed: written through the breaker (timeout included); a failure sends the batch to
 *   the spool and `write()` still resolves;
 * - breaker open, or a write slower than `slowWriteMs` outstanding: straight to the spool, in the
 *   time of a local fsync; a write that becomes slow has its batch spooled then;
 * - the destination refuses the data itself (a value too long for its column): the batch is split
 *   until the refused activities stand alone ({@link writeWithIsolation}); those are kept in the
 *   spool's `rejected.ndjson`, the rest are written. Live writes, spool replay and the queue
 *   worker all isolate this way;
 * - `write()` rejects only when the spool cannot be written either (`SPOOL_FAILED`); with
 *   `callerWaits` (sync) the batch is written all or none: it also rejects when the spool was full
 *   (`SPOOL_FULL`), when the data was refused, and when the table does not exist
 *   (`STORE_SCHEMA_MISSING`, a configuration error the caller must hear of).
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
  /** Where this sink reports `stored`, `writeFailed` and `spooled`. */
  readonly bus: ActivityEventBus;
  readonly destination: Destination;
  /** Every event of this sink is emitted through here. */
  readonly #emit = this.events.emit.bind(this.events);
  readonly #target: ActivitySink;
  readonly #replayBatchSize: number;
  readonly #callerWaits: boolean;
  readonly #closeDrainMs: number;
  readonly #stopReplay = new AbortController();
  readonly #replaySchedule: SpoolReplaySchedule;
  #replayRun: Promise<SpoolReplayResult | null> | null = null;
  readonly #slowWrites: SlowWriteWatch;
  /** Activities went to the spool since it was last replayed empty; counts those replayed since. */
  readonly #spooling = new SpoolingEpisode();
  /** Segments written to a destination that stores later, until it confirms them; else null. */
  readonly #unconfirmed: UnconfirmedSegments | null;
  #closed = false;

  constructor(options: ResilientSinkOptions) {
    this.#target = options.target;
    this.name = options.target.name;
    this.breaker = options.breaker;
    this.spool = options.spool;
    this.bus = options.bus ?? options.spool.bus;
    this.destination = options.destination ?? 'store';
    this.#replayBatchSize = options.replayBatchSize;
    this.#callerWaits = options.callerWaits ?? false;
    this.#replaySchedule = new SpoolReplaySchedule({
      breaker: options.breaker,
      replay: () => void this.#startReplay(),
      retryMs: options.replayRetryMs,
    });
    this.#closeDrainMs = options.closeDrainMs ?? 30_000;
    this.#slowWrites = new SlowWriteWatch(options.slowWriteMs ?? null);
    this.#unconfirmed = this.#unconfirmedSegments(options);
    this.breaker.events.on('stateChange', ({ to }) => this.#replaySchedule.afterBreakerChange(to));
    if (options.replayOnStart ?? true) this.replaySoon(0);
  }

  #unconfirmedSegments(options: ResilientSinkOptions): UnconfirmedSegments | null {
    if (options.acknowledgement === undefined) return null;
    return new UnconfirmedSegments({
      acknowledgement: options.acknowledgement,
      spool: options.spool,
      pollMs: options.acknowledgementPollMs ?? 1000,
      onLost: (segment) => this.#emit('lost', { sink: this.name, segment }),
      onFailed: (error) => this.#emit('replayFailed', { sink: this.name, error }),
      onRewound: () => this.replaySoon(0),
    });
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
    if (this.#slowWrites.anySlow) return this.#toSpool(activities, 'slow_write', undefined);
    const started = performance.now();
    const attempt = this.#attempt(activities, !this.#callerWaits);
    const slow = this.#slowWrites.isSlow(attempt);
    if (slow !== null && (await slow)) {
      const release = this.#slowWrites.holdSlow();
      void attempt
        .then(
          (result) => this.#settle(result, started, false, { spooled: true }),
          () => undefined,
        )
        .catch((error: unknown) => this.#emit('replayFailed', { sink: this.name, error }))
        .finally(() => {
          if (release() && this.spool.pending() > 0) this.replaySoon(0);
        });
      return this.#toSpool(
        activities,
        'slow_write',
        slowWriteError(this.name, this.#slowWrites.slowWriteMs!),
      );
    }
    const result = await attempt;
    const unwritten = await this.#settle(result, started, false, { spooled: false });
    if (unwritten.length > 0) {
      const refused = isActivityLogError(result.error, 'BREAKER_OPEN');
      return this.#toSpool(unwritten, refused ? 'breaker_open' : 'write_failed', result.error);
    }
    if (this.spool.pending() > 0) this.replaySoon(0);
  }

  /**
   * Starts a replay pass after `delayMs` unless one is due sooner. Nothing happens while the
   * breaker refuses calls: its next transition schedules the pass.
   */
  replaySoon(delayMs = 0): void {
    this.#replaySchedule.soon(delayMs);
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
    this.#replaySchedule.close();
    this.#unconfirmed?.close();
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

  /**
   * Writes the batch through the breaker. Isolating, a refused batch is split down to its refused
   * activities; otherwise (a sync caller's all-or-none batch) a refusal is thrown, as is a missing
   * table, for the caller to hear of. A failure of the destination comes back as `unwritten`.
   */
  async #attempt(activities: readonly Activity[], isolate: boolean): Promise<IsolatedWrite> {
    const write = (part: readonly Activity[]) => this.breaker.execute(() => this.#target.write(part));
    if (isolate) return writeWithIsolation(activities, write);
    try {
      await write(activities);
      return { stored: [activities], refused: [], unwritten: [], inserted: 0, statements: 1 };
    } catch (error) {
      if (isDataError(error) || isActivityLogError(error, 'STORE_SCHEMA_MISSING')) {
        this.#emitWriteFailed(activities.length, error, false);
        throw error;
      }
      return { stored: [], refused: [], unwritten: activities, error, inserted: 0, statements: 1 };
    }
  }

  /**
   * Reports what a write stored and keeps what it refused, and returns what it left unwritten.
   * A batch already `spooled` (its write became slow) is replayed from the spool, which reports it
   * stored then: counting it now as well would count it twice.
   */
  async #settle(
    result: IsolatedWrite,
    started: number,
    replayed: boolean,
    { spooled }: { readonly spooled: boolean },
  ): Promise<readonly Activity[]> {
    if (!spooled) for (const part of result.stored) this.#emitStored(part, started, replayed);
    if (result.refused.length > 0) {
      await this.spool.reject(result.refused);
    }
    if (result.unwritten.length > 0 && !isActivityLogError(result.error, 'BREAKER_OPEN')) {
      // Kept for another attempt: spooled by the caller, or the segment replayed again.
      this.#emitWriteFailed(result.unwritten.length, result.error, true);
    }
    return spooled ? [] : result.unwritten;
  }

  #startReplay(): Promise<SpoolReplayResult | null> {
    if (this.#replayRun !== null) return this.#replayRun;
    if (this.#closed) return Promise.resolve(null);
    if (!this.breaker.isAllowed) {
      // A running probe (half-open) schedules the next pass itself when it ends.
      if (this.breaker.state === 'open') this.#replaySchedule.atProbe();
      return Promise.resolve(null);
    }
    const run = this.spool
      .replay(this.#replayWrite, {
        batchSize: this.#replayBatchSize,
        signal: this.#stopReplay.signal,
        hold: this.#unconfirmed !== null,
      })
      .then(
        (result) => {
          if (!result.complete) {
            this.#replaySchedule.afterIncompletePass();
          } else if (this.spool.pending() > 0) {
            this.replaySoon(0);
          } else if (!this.#slowWrites.anySlow) {
            const replayed = this.#spooling.end();
            if (replayed !== null) this.#emit('spoolingStopped', { sink: this.name, replayed });
          }
          return result;
        },
        (error: unknown) => {
          this.#emit('replayFailed', { sink: this.name, error });
          this.#replaySchedule.afterFailedPass();
          return null;
        },
      )
      .finally(() => {
        this.#replayRun = null;
      });
    this.#replayRun = run;
    return run;
  }

  /**
   * One replayed batch: stored, with refused activities set aside; a failure of the destination
   * throws, so the segment is kept and replayed again from this batch (idempotently) rather than
   * re-appended, which could drop, on a full spool, activities that were already safe.
   */
  readonly #replayWrite = async (activities: readonly Activity[], segment: string): Promise<void> => {
    const started = performance.now();
    const attempt = this.#attempt(activities, true);
    const stopCounting = this.#slowWrites.countWhileSlow(attempt);
    let result: IsolatedWrite;
    try {
      result = await attempt;
    } finally {
      stopCounting();
    }
    await this.#settle(result, started, true, { spooled: false });
    if (result.unwritten.length > 0) throw result.error;
    this.#spooling.countReplayed(activities.length - result.refused.length);
    this.#unconfirmed?.add(segment, result.stored);
  };

  async #toSpool(activities: readonly Activity[], reason: SpoolReason, cause: unknown): Promise<void> {
    let dropped: number;
    try {
      // A caller waiting on this write gets all of it kept, or an error: never a part.
      ({ dropped } = await this.spool.append(activities, { whole: this.#callerWaits }));
    } catch (spoolError) {
      throw spoolFailedError(this.name, activities.length, reason, cause, spoolError);
    }
    if (activities.length > dropped) {
      this.bus.emit('spooled', { sink: this.name, count: activities.length - dropped, reason });
    }
    if (activities.length > dropped && this.#spooling.begin()) {
      this.#emit('spoolingStarted', {
        sink: this.name,
        reason,
        ...(cause === undefined ? {} : { error: cause }),
      });
    }
    if (reason === 'write_failed') this.#replaySchedule.afterFailedWrite();
    if (dropped > 0 && this.#callerWaits) throw spoolFullError(this.name, dropped, this.spool.dir, cause);
  }

  #emitStored(activities: readonly Activity[], started: number, replayed: boolean): void {
    if (this.bus.listenerCount('stored') === 0) return;
    this.bus.emit('stored', {
      sink: this.name,
      destination: this.destination,
      by: 'app',
      count: activities.length,
      durationMs: performance.now() - started,
      replayed,
      activities,
    });
  }

  #emitWriteFailed(count: number, error: unknown, willRetry: boolean): void {
    this.bus.emit('writeFailed', {
      sink: this.name,
      destination: this.destination,
      by: 'app',
      count,
      error,
      willRetry,
      failedJobs: 0,
    });
  }
}

/**
 * The resilient sink behind a delivery (its breaker and spool), for monitoring; null for a
 * delivery that has none (a custom one).
 *
 * @example
 * const breaker = resilienceOf(delivery)?.breaker.toJSON(); // { state, failure_count, is_allowed }
 */
export function resilienceOf(delivery: Delivery): ResilientSink | null {
  const sink = (delivery as { readonly sink?: unknown }).sink;
  return sink instanceof ResilientSink ? sink : null;
}
