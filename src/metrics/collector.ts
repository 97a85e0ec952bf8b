import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Activity } from '../core/activity.js';
import type { Delivery } from '../core/delivery.js';
import type { ActivityWorker } from '../delivery/worker.js';
import type { BreakerState, CircuitBreaker } from '../resilience/breaker.js';
import { JournaledDelivery } from '../resilience/journaled-delivery.js';
import { resilienceOf } from '../resilience/resilient-sink.js';
import type { Spool } from '../resilience/spool.js';
import { segmentUsage } from '../resilience/spool-segment-directory.js';
import { LagHistogram, type LagReport } from './lag-histogram.js';
import { MinuteHistory, type MinuteValues } from './minute-history.js';
import { SecondBuckets } from './second-buckets.js';

/** `processing_rate` is the mean over this many seconds. */
export const RATE_WINDOW_SECONDS = 60;
/** `error_rate` covers this many seconds. */
export const ERROR_WINDOW_SECONDS = 300;

/** Counters since the process started. Write attempts are calls to a destination (a batch, a job group). */
export interface CollectorCounters {
  /** Activities handed to the delivery (`log()`). */
  readonly accepted: number;
  /** Activities put on the queue by this producer. */
  readonly enqueued: number;
  /** Activities written to the store (live and replayed). */
  readonly stored: number;
  /** Activities that left the queue in this worker: stored, or in a job that was failed for good. */
  readonly dequeued: number;
  readonly writeAttempts: number;
  readonly writeFailures: number;
  /** Failed attempts whose activities are kept for another one (job retries, delivery retries). */
  readonly retries: number;
  /** Activities that went to the spool. */
  readonly spooled: number;
  /** Activities replayed from the spool to their destination. */
  readonly replayed: number;
  /** Activities dropped because the spool was full. */
  readonly dropped: number;
  /** Jobs this worker moved to the failed set. */
  readonly failedJobs: number;
}

/** One breaker as a process reports it. */
export interface BreakerReport {
  readonly name: string;
  readonly state: BreakerState;
  readonly failure_count: number;
  readonly is_allowed: boolean;
  /** Since when it has not been closed (epoch ms), null while closed. */
  readonly not_closed_since_ms: number | null;
}

/** Spool figures of one process; `dir` and `host` let an aggregator count a shared directory once. */
export interface SpoolReport {
  readonly dir: string;
  /** Activities this process spooled and has not replayed yet. */
  readonly activities: number;
  /** Bytes of every segment in the directory. */
  readonly bytes: number;
  /** Creation of the oldest segment in the directory (epoch ms), null when none holds data. */
  readonly oldest_at_ms: number | null;
}

/** What a process tells the others (and `serve`) about itself: JSON, so it can travel through Redis. */
export interface ProcessReport {
  readonly id: string;
  /** `app` (logs activities), `worker` (a queue worker), or both in one process (`serve --worker`). */
  readonly roles: readonly ('app' | 'worker')[];
  readonly host: string;
  readonly pid: number;
  readonly started_at_ms: number;
  readonly heartbeat_at_ms: number;
  readonly counters: CollectorCounters;
  /** Activities stored in the last {@link RATE_WINDOW_SECONDS} seconds. */
  readonly stored_last_minute: number;
  /** Write attempts and failures in the last {@link ERROR_WINDOW_SECONDS} seconds. */
  readonly attempts_last_5m: number;
  readonly failures_last_5m: number;
  /** Activities in this process's buffers, accepted and not yet handed to their destination. */
  readonly buffered: number;
  readonly spool: SpoolReport | null;
  readonly breakers: readonly BreakerReport[];
  readonly lag: LagReport;
  readonly history: readonly MinuteValues[];
  /** Resident memory in MB. */
  readonly memory_mb: number;
}

export interface MetricsCollectorOptions {
  /** Clock (tests). Default `Date.now`. */
  readonly nowMs?: () => number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Counts what the delivery, the resilience layer and queue workers report through their typed
 * events — accepted, stored, failed and retried writes, spooled, replayed and dropped
 * activities, the lag from `log()` to the committed row — and keeps sliding windows for the
 * rates. Nothing on the write path calls it: it only listens, and `close()` stops listening.
 *
 * @example
 * const collector = new MetricsCollector();
 * collector.watchDelivery(delivery);
 * const report = await collector.report();
 * collector.close();
 */
export class MetricsCollector {
  /** Unique per collector: `host-pid-random`. */
  readonly id = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  readonly startedAtMs: number;
  readonly #nowMs: () => number;
  readonly #counters: Mutable<CollectorCounters> = {
    accepted: 0,
    enqueued: 0,
    stored: 0,
    dequeued: 0,
    writeAttempts: 0,
    writeFailures: 0,
    retries: 0,
    spooled: 0,
    replayed: 0,
    dropped: 0,
    failedJobs: 0,
  };
  readonly #stored = new SecondBuckets(RATE_WINDOW_SECONDS);
  readonly #attempts = new SecondBuckets(ERROR_WINDOW_SECONDS);
  readonly #failures = new SecondBuckets(ERROR_WINDOW_SECONDS);
  readonly #lag = new LagHistogram();
  readonly #history = new MinuteHistory();
  readonly #breakers = new Map<string, { breaker: CircuitBreaker; notClosedSinceMs: number | null }[]>();
  readonly #deliveries: Delivery[] = [];
  readonly #spools: Spool[] = [];
  readonly #roles = new Set<'app' | 'worker'>();
  readonly #unsubscribe: (() => void)[] = [];

  constructor(options: MetricsCollectorOptions = {}) {
    this.#nowMs = options.nowMs ?? Date.now;
    this.startedAtMs = this.#nowMs();
  }

  /** The counters so far. */
  get counters(): CollectorCounters {
    return { ...this.#counters };
  }

  /**
   * Listens to a delivery: its `accepted` events, and its breaker, spool and writes when it
   * writes through the resilience layer (every built-in method does); a custom delivery's
   * `written` / `writeFailed` events otherwise.
   */
  watchDelivery(delivery: Delivery): void {
    this.#roles.add('app');
    this.#deliveries.push(delivery);
    this.#on(delivery.events, 'accepted', () => {
      this.#counters.accepted++;
    });
    const resilience = resilienceOf(delivery);
    const toQueue = delivery.method === 'queue';
    if (resilience === null) {
      this.#on(delivery.events, 'written', (event: { count: number; activities: readonly Activity[] }) =>
        toQueue ? this.#enqueued(event.count) : this.#storedNow(event.count, event.activities),
      );
      this.#on(delivery.events, 'writeFailed', (event: { willRetry: boolean }) => {
        this.#failedAttempt();
        if (event.willRetry) this.#counters.retries++;
      });
      return;
    }
    this.#on(resilience.events, 'stored', (event: { count: number; activities: readonly Activity[] }) =>
      toQueue ? this.#enqueued(event.count) : this.#storedNow(event.count, event.activities),
    );
    this.#on(resilience.events, 'writeFailed', () => this.#failedAttempt());
    this.#on(resilience.events, 'spooled', (event: { count: number; reason: string }) => {
      this.#counters.spooled += event.count;
      // The spooled activities will be written again by the replay.
      if (event.reason === 'write_failed') this.#counters.retries++;
    });
    this.#watchSpool(resilience.spool);
    this.watchBreaker(resilience.breaker);
  }

  /** Listens to a queue worker: stored groups, failed and returned jobs, and its store breaker. */
  watchWorker(worker: ActivityWorker): void {
    this.#roles.add('worker');
    this.#on(worker.events, 'stored', (event: { count: number; activities: readonly Activity[] }) => {
      this.#counters.dequeued += event.count;
      this.#storedNow(event.count, event.activities);
    });
    this.#on(worker.events, 'jobFailed', (event: { count: number; willRetry: boolean }) => {
      this.#failedAttempt();
      if (event.willRetry) {
        this.#counters.retries++;
      } else {
        this.#counters.failedJobs++;
        this.#counters.dequeued += event.count;
      }
    });
    this.#on(worker.events, 'jobsReturned', () => {
      this.#failedAttempt();
      this.#counters.retries++;
    });
    this.watchBreaker(worker.breaker);
  }

  /** Follows a breaker's state (and since when it has been open) for the snapshot and alerts. */
  watchBreaker(breaker: CircuitBreaker): void {
    const entry = {
      breaker,
      notClosedSinceMs: breaker.state === 'closed' ? null : this.#nowMs(),
    };
    const list = this.#breakers.get(breaker.name) ?? [];
    list.push(entry);
    this.#breakers.set(breaker.name, list);
    this.#on(breaker.events, 'stateChange', (transition: { to: BreakerState }) => {
      if (transition.to === 'closed') entry.notClosedSinceMs = null;
      else entry.notClosedSinceMs ??= this.#nowMs();
    });
  }

  /** Records the queue size seen now in this process's per-minute history. */
  recordQueueSize(queueSize: number): void {
    this.#history.recordQueueSize(queueSize, this.#nowMs());
  }

  /** This process's figures now. Reads the spool directory (names and sizes only). */
  async report(): Promise<ProcessReport> {
    const nowMs = this.#nowMs();
    const spool = this.#spools[0];
    return {
      id: this.id,
      roles: [...this.#roles],
      host: hostname(),
      pid: process.pid,
      started_at_ms: this.startedAtMs,
      heartbeat_at_ms: nowMs,
      counters: this.counters,
      stored_last_minute: this.#stored.sum(RATE_WINDOW_SECONDS, nowMs),
      attempts_last_5m: this.#attempts.sum(ERROR_WINDOW_SECONDS, nowMs),
      failures_last_5m: this.#failures.sum(ERROR_WINDOW_SECONDS, nowMs),
      buffered: this.#deliveries.reduce((sum, delivery) => sum + bufferedIn(delivery), 0),
      spool: spool === undefined ? null : await spoolReport(this.#spools),
      breakers: this.#breakerReports(),
      lag: this.#lag.report(nowMs),
      history: this.#history.values(nowMs),
      memory_mb: roundTo(process.memoryUsage.rss() / (1024 * 1024), 1),
    };
  }

  /** Stops listening to every emitter. */
  close(): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  #breakerReports(): BreakerReport[] {
    const reports: BreakerReport[] = [];
    for (const [name, entries] of this.#breakers) {
      for (const { breaker, notClosedSinceMs } of entries) {
        reports.push({
          name,
          state: breaker.state,
          failure_count: breaker.failureCount,
          is_allowed: breaker.isAllowed,
          not_closed_since_ms: breaker.state === 'closed' ? null : notClosedSinceMs,
        });
      }
    }
    return reports;
  }

  #watchSpool(spool: Spool): void {
    if (!this.#spools.includes(spool)) this.#spools.push(spool);
    this.#on(spool.events, 'replayed', (event: { count: number }) => {
      this.#counters.replayed += event.count;
    });
    this.#on(spool.events, 'dropped', (event: { count: number }) => {
      this.#counters.dropped += event.count;
    });
  }

  #enqueued(count: number): void {
    this.#counters.enqueued += count;
    this.#attempts.add(1, this.#nowMs());
    this.#counters.writeAttempts++;
  }

  #storedNow(count: number, activities: readonly Activity[]): void {
    const nowMs = this.#nowMs();
    this.#counters.stored += count;
    this.#counters.writeAttempts++;
    this.#stored.add(count, nowMs);
    this.#attempts.add(1, nowMs);
    this.#history.addStored(count, nowMs);
    for (const activity of activities) {
      const lagMs = nowMs - activity.createdAt.getTime();
      this.#lag.observe(lagMs, nowMs);
      this.#history.addLag(lagMs, nowMs);
    }
  }

  #failedAttempt(): void {
    const nowMs = this.#nowMs();
    this.#counters.writeAttempts++;
    this.#counters.writeFailures++;
    this.#attempts.add(1, nowMs);
    this.#failures.add(1, nowMs);
    this.#history.addFailures(1, nowMs);
  }

  #on<T extends Record<keyof T, unknown[]>, K extends keyof T & string>(
    emitter: EventEmitter<T>,
    event: K,
    listener: (...args: T[K]) => void,
  ): void {
    this.#unsubscribe.push(listenTo(emitter, event, listener));
  }
}

/**
 * Activities a delivery holds in memory. A journaled delivery counts its spool in `pending()`;
 * the spool is reported on its own, so it is taken out here.
 */
function bufferedIn(delivery: Delivery): number {
  if (!(delivery instanceof JournaledDelivery)) return delivery.pending();
  return Math.max(0, delivery.pending() - delivery.sink.pending());
}

/** Subscribes `listener` and returns the function that unsubscribes it. */
function listenTo<T extends Record<keyof T, unknown[]>, K extends keyof T & string>(
  emitter: EventEmitter<T>,
  event: K,
  listener: (...args: T[K]) => void,
): () => void {
  const typed = emitter as unknown as EventEmitter;
  typed.on(event, listener as (...args: unknown[]) => void);
  return () => typed.off(event, listener as (...args: unknown[]) => void);
}

/** Bytes and oldest segment of the spool directories, and the activities this process holds there. */
async function spoolReport(spools: readonly Spool[]): Promise<SpoolReport> {
  const dir = spools[0]!.dir;
  const activities = spools.reduce((sum, spool) => sum + spool.pending(), 0);
  const usage = await segmentUsage(dir);
  return { dir, activities, bytes: usage.bytes, oldest_at_ms: activities === 0 ? null : usage.oldestAtMs };
}

/** `value` rounded to `decimals` decimal places. */
export function roundTo(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}
