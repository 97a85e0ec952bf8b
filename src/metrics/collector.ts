import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Activity } from '../core/activity.js';
import type { ActivityEventBus, ActivityEvents } from '../core/activity-events.js';
import type { Delivery } from '../core/delivery.js';
import type { ActivityWorker } from '../delivery/worker.js';
import type { BreakerState, CircuitBreaker } from '../resilience/breaker.js';
import type { Spool } from '../resilience/spool.js';
import { segmentUsage } from '../resilience/spool-segment-directory.js';
import type { CaptureReport } from './capture-figures.js';
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
  /** The change capture this process runs (`activity-log capture`), absent in the others. */
  readonly capture?: readonly CaptureReport[];
}

/** What a collector reads the state of for its report (see {@link MetricsCollector.include}). */
export interface CollectorParts {
  readonly delivery?: Delivery | undefined;
  readonly worker?: Pick<ActivityWorker, 'breaker'> | undefined;
  readonly breakers?: readonly CircuitBreaker[] | undefined;
  readonly spool?: Spool | undefined;
  /** The figures of a change capture this process runs. */
  readonly capture?: ((nowMs: number) => CaptureReport) | undefined;
}

export interface MetricsCollectorOptions {
  /** Clock (tests). Default `Date.now`. */
  readonly nowMs?: () => number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Counts the facts on an activity log's event bus — accepted, stored, failed and retried writes,
 * spooled, replayed and dropped activities, the lag from `log()` to the committed row — and keeps
 * sliding windows for the rates; reads the state of the parts it is given (buffers, breakers,
 * spool) when it reports. Nothing on the write path calls it: it only listens, and `close()`
 * stops listening. `composeActivityLog` makes one per activity log.
 *
 * @example
 * const collector = new MetricsCollector();
 * collector.listen(bus);
 * collector.include({ delivery, breakers: [breaker], spool });
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
  readonly #breakers: CircuitBreaker[] = [];
  readonly #buses = new Set<ActivityEventBus>();
  readonly #deliveries: Delivery[] = [];
  readonly #spools: Spool[] = [];
  readonly #captures: ((nowMs: number) => CaptureReport)[] = [];
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
   * Counts the facts reported on `bus` (`accepted`, `stored`, `spooled`, `dropped`,
   * `writeFailed`). A bus is listened to once, however often it is given.
   */
  listen(bus: ActivityEventBus): void {
    if (this.#buses.has(bus)) return;
    this.#buses.add(bus);
    this.#on(bus, 'accepted', () => {
      this.#counters.accepted++;
    });
    this.#on(bus, 'stored', (event) => {
      if (event.by === 'worker') this.#counters.dequeued += event.count;
      if (event.replayed) this.#counters.replayed += event.count;
      if (event.destination === 'queue') this.#enqueued(event.count);
      else this.#storedNow(event.count, event.activities);
    });
    this.#on(bus, 'writeFailed', (event) => {
      this.#failedAttempt();
      if (event.willRetry) this.#counters.retries++;
      this.#counters.failedJobs += event.failedJobs;
      if (event.by === 'worker' && !event.willRetry) this.#counters.dequeued += event.count;
    });
    this.#on(bus, 'spooled', (event) => {
      this.#counters.spooled += event.count;
    });
    this.#on(bus, 'dropped', (event) => {
      this.#counters.dropped += event.count;
    });
  }

  /**
   * Reports the state of these parts: a delivery's buffered activities (and this process as an
   * `app`), a worker (as a `worker`, with its breaker), breakers, and a spool's backlog.
   */
  include(parts: CollectorParts): void {
    if (parts.delivery !== undefined) {
      this.#roles.add('app');
      this.#deliveries.push(parts.delivery);
    }
    if (parts.worker !== undefined) {
      this.#roles.add('worker');
      this.#addBreaker(parts.worker.breaker);
    }
    for (const breaker of parts.breakers ?? []) this.#addBreaker(breaker);
    if (parts.spool !== undefined && !this.#spools.includes(parts.spool)) this.#spools.push(parts.spool);
    if (parts.capture !== undefined) this.#captures.push(parts.capture);
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
      ...(this.#captures.length === 0 ? {} : { capture: this.#captures.map((capture) => capture(nowMs)) }),
    };
  }

  /** Stops listening to every emitter. */
  close(): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  #addBreaker(breaker: CircuitBreaker): void {
    if (!this.#breakers.includes(breaker)) this.#breakers.push(breaker);
  }

  #breakerReports(): BreakerReport[] {
    return this.#breakers.map((breaker) => ({
      name: breaker.name,
      state: breaker.state,
      failure_count: breaker.failureCount,
      is_allowed: breaker.isAllowed,
      not_closed_since_ms: breaker.notClosedSinceMs,
    }));
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

  #on<K extends keyof ActivityEvents>(
    bus: ActivityEventBus,
    event: K,
    listener: (...args: ActivityEvents[K]) => void,
  ): void {
    this.#unsubscribe.push(listenTo(bus, event, listener));
  }
}

/** Activities a delivery holds in memory (the spool is reported on its own). */
function bufferedIn(delivery: Delivery): number {
  return delivery.buffered?.() ?? delivery.pending();
}

/** Subscribes `listener` and returns the function that unsubscribes it. */
function listenTo<K extends keyof ActivityEvents>(
  bus: ActivityEventBus,
  event: K,
  listener: (...args: ActivityEvents[K]) => void,
): () => void {
  const untyped = bus as unknown as EventEmitter;
  untyped.on(event, listener as (...args: unknown[]) => void);
  return () => untyped.off(event, listener as (...args: unknown[]) => void);
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
