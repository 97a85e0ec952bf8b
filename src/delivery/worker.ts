import { EventEmitter } from 'node:events';
import { resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { type ActivityEventBus, createActivityEventBus } from '../core/activity-events.js';
import { CircuitBreaker } from '../resilience/breaker.js';
import { Spool } from '../resilience/spool.js';
import type { ActivityStore } from '../store/activity-store.js';
import { assertQueueEnabled } from './redis-connection.js';
import type { WorkerEvents, WorkerStopReason, WorkerSummary } from './worker-events.js';
import { emptyWorkerCounts, WorkerGroupWriter } from './worker-group-writer.js';
import { type HeldJob, WorkerJobSource } from './worker-job-source.js';
import {
  type ResolvedWorkerOptions,
  resolveWorkerOptions,
  type WorkerOptions,
  type WorkerSettings,
  type WorkerTimings,
  workerTimings,
} from './worker-options.js';
import {
  beforeTakingJobs,
  drains,
  firstStopReason,
  limitReached,
  restartRequested,
  stopReasonAfterOutage,
  whenNoJobCame,
} from './worker-stop-policy.js';

export { packStatements } from './statement-packing.js';
export type {
  JobFailedEvent,
  JobsRefusedEvent,
  JobsReturnedEvent,
  StoredEvent,
  WorkerEvents,
  WorkerStopReason,
  WorkerSummary,
  WorkerWarning,
} from './worker-events.js';
export {
  DEFAULT_WORKER_CONCURRENCY,
  defaultTimeoutSeconds,
  type WorkerOptions,
  type WorkerSettings,
  type WorkerTimings,
  workerTimings,
} from './worker-options.js';

/**
 * A queue worker: takes activity jobs from Redis, stores each group of ready jobs with one
 * idempotent multi-row insert, and completes them. A failed attempt is retried with backoff
 * until `tries`, then the job is kept in the failed set (`activity-log failed` / `retry`).
 *
 * `stop()` (or SIGTERM in the CLI) lets the jobs in hand finish, then the worker closes.
 *
 * @example
 * const worker = new ActivityWorker({ config, store });
 * worker.events.on('stored', (e) => console.log(`stored ${e.count}`));
 * await worker.start();
 * process.once('SIGTERM', () => worker.stop('signal'));
 * const summary = await worker.done;
 */
export class ActivityWorker {
  readonly events = new EventEmitter<WorkerEvents>();
  /** Where it reports the facts metrics count: `stored`, `writeFailed`, `breakerState`, `rejected`. */
  readonly bus: ActivityEventBus;
  readonly queueName: string;
  readonly timings: WorkerTimings;
  readonly #config: Config;
  readonly #store: ActivityStore;
  readonly #options: ResolvedWorkerOptions;
  readonly #breaker: CircuitBreaker;
  readonly #ownsBreaker: boolean;
  readonly #stopSignal = new AbortController();
  readonly #source: WorkerJobSource;
  readonly #inFlight = new Set<Promise<void>>();

  #startedAtMs = 0;
  #startedAtPerf = 0;
  #stopReason: WorkerStopReason | null = null;
  #fetched = 0;
  #nextRestartCheck = 0;
  #restartCheckFailed = false;
  #done: Promise<WorkerSummary> | null = null;
  readonly #counts = emptyWorkerCounts();
  /** Where activities the store refuses as data are kept (`rejected.ndjson` in the spool directory). */
  #rejected: Spool | null = null;
  #writer: WorkerGroupWriter | null = null;

  constructor(options: WorkerOptions) {
    const { config } = options;
    this.#config = config;
    this.#store = options.store;
    this.#options = resolveWorkerOptions(options);
    this.queueName = this.#options.queueName;
    this.timings = workerTimings(config.retryAfterSeconds);
    this.bus = options.bus ?? createActivityEventBus();
    this.#ownsBreaker = options.breaker === undefined;
    this.#breaker =
      options.breaker ??
      new CircuitBreaker({
        name: 'store',
        failureThreshold: config.breakerFailures,
        cooldownMs: config.breakerCooldownMs,
        timeoutMs: config.database.queryTimeoutMs,
        bus: this.bus,
      });
    this.#source = new WorkerJobSource({
      redis: config.redis,
      queueName: this.queueName,
      timings: this.timings,
      tries: this.#options.tries,
      drainDelaySeconds: this.#options.drainDelaySeconds,
      retryFetchAfterMs: this.#options.pollIntervalMs,
      stopSignal: this.#stopSignal.signal,
      warn: (message, cause) => this.#warn(message, cause),
      onConnectionError: (error) => this.#onConnectionError(error),
    });
  }

  /** Resolves with the summary once the worker has stopped and released its connections. */
  get done(): Promise<WorkerSummary> {
    if (this.#done === null) throw new Error('ActivityWorker.done is available after start()');
    return this.#done;
  }

  /**
   * Connects to Redis (failing with `QUEUE_UNAVAILABLE` if it does not answer), checks the set-up
   * and starts taking jobs. Listen to `events` before calling it to see start-up warnings.
   */
  async start(): Promise<void> {
    if (this.#done !== null) throw new Error('ActivityWorker.start() was already called');
    assertQueueEnabled(this.#config, 'a queue worker');
    // Activities the store refuses as data are kept there; found unwritable now, not on the first one.
    const rejected = new Spool({
      dir: resolve(this.#config.spoolDir),
      maxBytes: this.#config.spoolMaxMb * 1024 * 1024,
      warn: (message) => this.#warn(message.replace(/^activity-log: /, '')),
      bus: this.bus,
    });
    try {
      await rejected.prepare();
    } catch (error) {
      await rejected.close();
      throw error;
    }
    this.#rejected = rejected;
    this.#writer = new WorkerGroupWriter({
      store: this.#store,
      breaker: this.#breaker,
      source: this.#source,
      rejected,
      events: this.events,
      bus: this.bus,
      counts: this.#counts,
      batchSize: this.#options.batchSize,
      timeoutMs: this.#options.timeoutMs,
      tries: this.#options.tries,
      onJobsReturned: () => this.#onJobsReturned(),
    });
    try {
      await this.#source.connect();
    } catch (error) {
      await rejected.close();
      throw error;
    }
    try {
      await this.#open();
    } catch (error) {
      await this.#shutdown();
      throw error;
    }
    this.#done = this.#run();
  }

  async #open(): Promise<void> {
    this.#startedAtMs = await this.#source.serverTimeMs();
    this.#startedAtPerf = performance.now();
    const timeoutSeconds = this.#options.timeoutMs / 1000;
    if (timeoutSeconds >= this.#config.retryAfterSeconds) {
      this.#warn(
        `--timeout=${timeoutSeconds} is not below ACTIVITY_LOG_RETRY_AFTER=${this.#config.retryAfterSeconds}: set --timeout lower, so that a stuck attempt fails before retry-after runs out and the job is not held past it`,
      );
    }
    await this.#source.warnAboutRedisSetUp();
    await this.#source.open();
  }

  /** Asks the worker to stop: the jobs in hand are finished, no new ones are taken. */
  stop(reason: WorkerStopReason = 'closed'): void {
    this.#stopReason = firstStopReason(this.#stopReason, reason);
    this.#stopSignal.abort();
  }

  /** The circuit breaker around this worker's store writes (metrics and alerts read it). */
  get breaker(): CircuitBreaker {
    return this.#breaker;
  }

  /** Stops the worker and waits until it has. */
  close(): Promise<WorkerSummary> {
    this.stop('closed');
    return this.#done ?? Promise.resolve(this.#summary());
  }

  get settings(): WorkerSettings {
    return {
      queueName: this.queueName,
      tries: this.#options.tries,
      timeoutSeconds: this.#options.timeoutMs / 1000,
      retryAfterSeconds: this.#config.retryAfterSeconds,
      concurrency: this.#options.concurrency,
      batchSize: this.#options.batchSize,
    };
  }

  /** Jobs this worker holds right now. */
  heldJobs(): number {
    return this.#source.heldCount;
  }

  async #run(): Promise<WorkerSummary> {
    try {
      while (this.#stopReason === null) {
        await this.#checkStopConditions();
        if (this.#stopReason !== null) break;
        if (this.#inFlight.size >= this.#options.concurrency) {
          await Promise.race(this.#inFlight);
          continue;
        }
        if (!(await this.#storeAllowsMore())) continue;
        const group = await this.#collectGroup();
        if (group.length > 0) {
          this.#launch(group);
          continue;
        }
        switch (whenNoJobCame(this.#options, this.#inFlight.size)) {
          case 'settle':
            await Promise.all(this.#inFlight);
            break;
          case 'stop-once':
            this.stop('once');
            break;
          case 'stop-if-empty':
            if (await this.#source.queueIsEmpty()) this.stop('empty');
            break;
          case 'keep-waiting':
            break;
        }
      }
    } finally {
      // Jobs in hand finish; with Redis away their completion cannot be recorded, so the worker
      // stops anyway and the stalled check hands them to another worker (their rows are stored).
      await this.#source.unlessStoppingOffline(Promise.all(this.#inFlight), []);
      await this.#shutdown();
    }
    const summary = this.#summary();
    this.events.emit('stopped', summary);
    return summary;
  }

  /**
   * While the store breaker is open, jobs stay in Redis (no tries used): the worker waits for the
   * cooldown, then lets exactly one group through as the probe. A draining worker (`--once`,
   * `--stop-when-empty`) stops instead, since the backlog cannot be drained now.
   * Resolves false when the loop should look at its stop conditions again before taking jobs.
   */
  async #storeAllowsMore(): Promise<boolean> {
    const breaker = this.#breaker;
    switch (beforeTakingJobs(this.#options, breaker, this.#inFlight.size)) {
      case 'take':
      case 'probe':
        return true;
      case 'settle-and-stop':
        if (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
        if (breaker.state !== 'closed') this.stop('store-unavailable');
        return false;
      case 'wait-for-one':
        await Promise.race(this.#inFlight);
        return false;
      case 'wait-for-probe':
        await breaker.whenAllowed(this.#stopSignal.signal);
        return false;
    }
  }

  async #checkStopConditions(): Promise<void> {
    const elapsedMs = performance.now() - this.#startedAtPerf;
    const limit = limitReached(this.#options, { fetched: this.#fetched, elapsedMs });
    if (limit !== null) {
      this.stop(limit);
      return;
    }
    if (Date.now() >= this.#nextRestartCheck) {
      this.#nextRestartCheck = Date.now() + this.#options.pollIntervalMs;
      if (await this.#restartRequested()) this.stop('restart');
    }
  }

  async #restartRequested(): Promise<boolean> {
    try {
      const markers = await this.#source.readRestartMarkers();
      this.#restartCheckFailed = false;
      return restartRequested(markers, this.#startedAtMs);
    } catch (error) {
      if (!this.#restartCheckFailed) this.#warn('could not read the restart marker from Redis', error);
      this.#restartCheckFailed = true;
      return false;
    }
  }

  /** Takes the next job (waiting up to the poll interval) and, when merging, more ready ones up to the batch size. */
  async #collectGroup(): Promise<HeldJob[]> {
    const group: HeldJob[] = [];
    let activities = 0;
    while (this.#fetched < this.#options.maxJobs) {
      const first = group.length === 0;
      if (!first && this.#stopReason !== null) break;
      const taken = await this.#source.take(first);
      if (taken === undefined) break;
      this.#fetched++;
      if ('invalid' in taken) {
        this.#writer!.failInvalid(taken.invalid);
        continue;
      }
      group.push(taken.held);
      activities += taken.held.activities.length;
      if (!this.#options.mergeJobs || activities >= this.#options.batchSize) break;
    }
    return group;
  }

  #launch(group: HeldJob[]): void {
    const task = this.#writer!.write(group).finally(() => {
      this.#inFlight.delete(task);
    });
    this.#inFlight.add(task);
  }

  #onJobsReturned(): void {
    if (!drains(this.#options)) return;
    this.#stopReason = stopReasonAfterOutage(this.#stopReason);
    this.#stopSignal.abort();
  }

  async #shutdown(): Promise<void> {
    try {
      await this.#source.close();
    } finally {
      if (this.#ownsBreaker) this.#breaker.close();
      await this.#rejected?.close();
    }
  }

  #summary(): WorkerSummary {
    const seconds = this.#startedAtPerf === 0 ? 0 : (performance.now() - this.#startedAtPerf) / 1000;
    return {
      reason: this.#stopReason ?? 'closed',
      ...this.#counts,
      seconds,
      ratePerSecond: seconds > 0 ? this.#counts.activities / seconds : 0,
    };
  }

  #lastConnectionWarning = 0;

  #onConnectionError(error: Error): void {
    // Before the worker runs, start() itself fails with the reason; a warning would say it twice.
    if (this.#done === null) return;
    // Redis outages produce an error per reconnect attempt; one line per ten seconds is enough.
    const now = Date.now();
    if (now - this.#lastConnectionWarning < 10_000) return;
    this.#lastConnectionWarning = now;
    this.#warn(`Redis connection problem: ${error.message}`, error);
  }

  #warn(message: string, cause?: unknown): void {
    const detail =
      cause === undefined || message.includes(errorMessage(cause)) ? '' : `: ${errorMessage(cause)}`;
    this.events.emit('warning', { message: `${message}${detail}`, cause });
  }
}

/**
 * Creates a worker and starts it.
 *
 * @example
 * const worker = await startWorker({ config, store, stopWhenEmpty: true });
 * const summary = await worker.done;
 */
export async function startWorker(options: WorkerOptions): Promise<ActivityWorker> {
  const worker = new ActivityWorker(options);
  await worker.start();
  return worker;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
