import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { resolve } from 'node:path';
import { type Job, type Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config/config.js';
import type { Activity } from '../core/activity.js';
import { ActivityLogError, isActivityLogError, isErrorOfKind } from '../core/errors.js';
import { CircuitBreaker } from '../resilience/breaker.js';
import { Spool } from '../resilience/spool.js';
import { type RefusedActivity, writeWithIsolation } from '../resilience/write-with-isolation.js';
import type { ActivityStore } from '../store/activity-store.js';
import { openQueue } from './open-queue.js';
import { type ActivityJobData, decodeActivityJob } from './queue-job.js';
import {
  QUEUE_PREFIX,
  restartMarkerKey,
  STORED_JOBS_KEEP_MS,
  storedCounterKey,
  storedJobsKey,
} from './queue-keys.js';
import {
  assertQueueEnabled,
  closeRedis,
  connectRedis,
  createRedisClient,
  describeRedis,
} from './redis-connection.js';
import { durabilityWarningOnce, readRedisDurability } from './redis-durability.js';

/** Why a worker stopped. */
export type WorkerStopReason =
  /** `close()` or `stop()` was called. */
  | 'closed'
  /** SIGTERM / SIGINT. */
  | 'signal'
  /** `activity-log restart` ran after this worker started. */
  | 'restart'
  /** `--once`: the next job was handled (or there was none). */
  | 'once'
  | 'max-jobs'
  | 'max-time'
  /** `--stop-when-empty`: nothing was waiting or delayed. */
  | 'empty'
  /**
   * `--once` / `--stop-when-empty`: the store's circuit breaker opened, so the backlog cannot be
   * drained now; the jobs are left waiting in Redis with their tries intact.
   */
  | 'store-unavailable';

export interface WorkerOptions {
  readonly config: Config;
  /** Where the activities go; the caller owns it and closes it after the worker. */
  readonly store: ActivityStore;
  /** Default: `ACTIVITY_LOG_QUEUE_NAME`. */
  readonly queueName?: string | undefined;
  /** Attempts per job before it is failed; overrides the producer's value. Default: `ACTIVITY_LOG_TRIES`. */
  readonly tries?: number | undefined;
  /** An attempt that runs longer fails. Default: two thirds of `ACTIVITY_LOG_RETRY_AFTER` (60 s for 90 s). */
  readonly timeoutSeconds?: number | undefined;
  /** Inserts this worker runs at once (default 2), so fetching the next jobs overlaps the database. */
  readonly concurrency?: number | undefined;
  /** Most activities per INSERT; ready jobs are merged up to this. Default: `ACTIVITY_LOG_BATCH_SIZE`. */
  readonly batchSize?: number | undefined;
  /** Merge several ready jobs into one INSERT (default true). */
  readonly mergeJobs?: boolean | undefined;
  /** Handle the next job (if any) and stop. */
  readonly once?: boolean | undefined;
  /** Stop when no job is waiting or delayed. */
  readonly stopWhenEmpty?: boolean | undefined;
  /** Stop after taking this many jobs. */
  readonly maxJobs?: number | undefined;
  /** Stop taking jobs after this many seconds. */
  readonly maxTimeSeconds?: number | undefined;
  /** How long an idle worker waits for a job before checking its limits and the restart marker (default 1000). */
  readonly pollIntervalMs?: number | undefined;
  /**
   * The breaker around this worker's store writes. Default: one named `store` with
   * `ACTIVITY_LOG_BREAKER_FAILURES`, `ACTIVITY_LOG_BREAKER_COOLDOWN_MS` and `DB_QUERY_TIMEOUT_MS`.
   */
  readonly breaker?: CircuitBreaker | undefined;
}

/** What a worker did, reported when it stops. */
export interface WorkerSummary {
  readonly reason: WorkerStopReason;
  /** Jobs stored and completed. */
  readonly jobs: number;
  /** Activities in those jobs. */
  readonly activities: number;
  /** Rows that were new (a re-delivered job inserts none). */
  readonly inserted: number;
  /** Multi-row INSERT statements that succeeded. */
  readonly inserts: number;
  /** Jobs this worker moved to the failed set (out of tries, or not activity jobs). */
  readonly failedJobs: number;
  /** Failed attempts whose job will be tried again. */
  readonly retriedJobs: number;
  /** Jobs handed back to the queue, tries untouched, because the store was unavailable. */
  readonly returnedJobs: number;
  /** Jobs whose lock expired while this worker held them (another worker takes them over). */
  readonly lostJobs: number;
  /** Activities the store refused as data, kept in the spool's `rejected.ndjson` (their jobs completed). */
  readonly refused: number;
  readonly seconds: number;
  /** Activities per second over the worker's lifetime. */
  readonly ratePerSecond: number;
}

export interface StoredEvent {
  readonly jobIds: readonly string[];
  /** Activities written. */
  readonly count: number;
  /** Of those, new rows. */
  readonly inserted: number;
  /** INSERT statements used. */
  readonly inserts: number;
  readonly durationMs: number;
  /** The activities written (their `createdAt` gives the lag from `log()` to the stored row). */
  readonly activities: readonly Activity[];
}

export interface JobFailedEvent {
  readonly jobId: string;
  /** 1-based attempt that failed. */
  readonly attempt: number;
  readonly count: number;
  readonly error: ActivityLogError;
  /** False when the job went to the failed set. */
  readonly willRetry: boolean;
}

/** Activities the store refused as data; kept in `rejected.ndjson`, their jobs completed. */
export interface JobsRefusedEvent {
  readonly jobIds: readonly string[];
  readonly count: number;
  /** Of those, not kept because the spool was full (counted as drops). */
  readonly dropped: number;
  readonly error: ActivityLogError;
}

/** Jobs put back at the head of the queue, tries untouched, because the store was unavailable. */
export interface JobsReturnedEvent {
  readonly jobIds: readonly string[];
  readonly count: number;
  readonly error: ActivityLogError;
}

export interface WorkerWarning {
  readonly message: string;
  readonly cause?: unknown;
}

/** Typed worker events; metrics and the CLI subscribe, the worker never knows who listens. */
export interface WorkerEvents {
  /** A group of jobs (one or more) was stored with multi-row INSERTs and completed. */
  stored: [event: StoredEvent];
  /** A job attempt failed. */
  jobFailed: [event: JobFailedEvent];
  /** The store refused some activities of stored jobs as data. */
  refused: [event: JobsRefusedEvent];
  /** The store was unavailable: the jobs went back to the queue without using a try. */
  jobsReturned: [event: JobsReturnedEvent];
  /** Something worth a line on stderr that did not fail a job (Redis outage, eviction policy, lost lock). */
  warning: [warning: WorkerWarning];
  stopped: [summary: WorkerSummary];
}

/** BullMQ timings derived from `ACTIVITY_LOG_RETRY_AFTER`. */
export interface WorkerTimings {
  /** A job's lock lives this long unless its worker renews it. */
  readonly lockDurationMs: number;
  /** Live workers renew their locks this often. */
  readonly lockRenewMs: number;
  /** Workers look for jobs with expired locks this often. */
  readonly stalledIntervalMs: number;
}

/**
 * `ACTIVITY_LOG_RETRY_AFTER` means, as in Laravel, "a job whose worker is gone is given to another
 * worker after this long". BullMQ hands over a job once its lock expired and a stalled check saw it
 * twice; with a lock of half the retry-after and a check every quarter, the hand-over happens
 * between 1/2 and 3/4 of retry-after after the last lock renewal, so within retry-after of the death.
 * A live worker renews its lock every quarter, so a slow job is never taken from it.
 */
export function workerTimings(retryAfterSeconds: number): WorkerTimings {
  const retryAfterMs = retryAfterSeconds * 1000;
  return {
    lockDurationMs: Math.round(retryAfterMs / 2),
    lockRenewMs: Math.round(retryAfterMs / 4),
    stalledIntervalMs: Math.round(retryAfterMs / 4),
  };
}

/** Default `--timeout`: two thirds of retry-after (Laravel's 60 s against 90 s), at least 1 s. */
export function defaultTimeoutSeconds(retryAfterSeconds: number): number {
  return Math.max(1, Math.floor((retryAfterSeconds * 2) / 3));
}

export const DEFAULT_WORKER_CONCURRENCY = 2;

/**
 * BullMQ blocks for the next job for the drain delay, or up to 10 s while delayed jobs (retry
 * backoffs) wait, and gives up on the blocking connection 1 s after that.
 */
const BULLMQ_LONGEST_BLOCK_SECONDS = 10;
const BULLMQ_BLOCK_WATCHDOG_SECONDS = 1;

/** How often a worker told to stop looks whether Redis has gone away under the command it waits for. */
const OFFLINE_STOP_POLL_MS = 100;

interface HeldJob {
  readonly job: Job<ActivityJobData>;
  readonly token: string;
  readonly activities: readonly Activity[];
}

/** The settings a worker runs with, after defaults. */
export interface WorkerSettings {
  readonly queueName: string;
  readonly tries: number;
  readonly timeoutSeconds: number;
  readonly retryAfterSeconds: number;
  readonly concurrency: number;
  readonly batchSize: number;
}

interface ResolvedOptions {
  readonly queueName: string;
  readonly tries: number;
  readonly timeoutMs: number;
  readonly concurrency: number;
  readonly batchSize: number;
  readonly mergeJobs: boolean;
  readonly once: boolean;
  readonly stopWhenEmpty: boolean;
  readonly maxJobs: number;
  readonly maxTimeMs: number;
  readonly pollIntervalMs: number;
  /** BullMQ's `drainDelay`: how long an idle worker blocks waiting for a job. */
  readonly drainDelaySeconds: number;
}

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
  readonly queueName: string;
  readonly timings: WorkerTimings;
  readonly #config: Config;
  readonly #store: ActivityStore;
  readonly #options: ResolvedOptions;
  readonly #breaker: CircuitBreaker;
  readonly #ownsBreaker: boolean;
  readonly #stopSignal = new AbortController();
  readonly #tokenPrefix = randomUUID();
  #tokenSeq = 0;

  #redis: Redis | null = null;
  #queue: Queue<ActivityJobData> | null = null;
  #bull: Worker<ActivityJobData> | null = null;
  #lockTimer: NodeJS.Timeout | null = null;
  /** Jobs in hand by fetch token: a job whose lock was lost can be fetched again while its first copy still runs. */
  readonly #held = new Map<string, HeldJob>();
  readonly #inFlight = new Set<Promise<void>>();

  #startedAtMs = 0;
  #startedAtPerf = 0;
  #stopReason: WorkerStopReason | null = null;
  #fetched = 0;
  #nextRestartCheck = 0;
  #restartCheckFailed = false;
  #done: Promise<WorkerSummary> | null = null;
  #counts = {
    jobs: 0,
    activities: 0,
    inserted: 0,
    inserts: 0,
    failedJobs: 0,
    retriedJobs: 0,
    returnedJobs: 0,
    lostJobs: 0,
    refused: 0,
  };
  /** Where activities the store refuses as data are kept (`rejected.ndjson` in the spool directory). */
  #rejected: Spool | null = null;

  constructor(options: WorkerOptions) {
    const { config } = options;
    this.#config = config;
    this.#store = options.store;
    this.queueName = options.queueName ?? config.queueName;
    this.timings = workerTimings(config.retryAfterSeconds);
    const once = options.once ?? false;
    this.#ownsBreaker = options.breaker === undefined;
    this.#breaker =
      options.breaker ??
      new CircuitBreaker({
        name: 'store',
        failureThreshold: config.breakerFailures,
        cooldownMs: config.breakerCooldownMs,
        timeoutMs: config.database.queryTimeoutMs,
      });
    this.#options = {
      queueName: this.queueName,
      tries: options.tries ?? config.tries,
      timeoutMs: (options.timeoutSeconds ?? defaultTimeoutSeconds(config.retryAfterSeconds)) * 1000,
      concurrency: once ? 1 : (options.concurrency ?? DEFAULT_WORKER_CONCURRENCY),
      batchSize: options.batchSize ?? config.batchSize,
      mergeJobs: !once && (options.mergeJobs ?? true),
      once,
      stopWhenEmpty: options.stopWhenEmpty ?? false,
      maxJobs: once ? 1 : (options.maxJobs ?? Number.POSITIVE_INFINITY),
      maxTimeMs:
        options.maxTimeSeconds === undefined ? Number.POSITIVE_INFINITY : options.maxTimeSeconds * 1000,
      pollIntervalMs: options.pollIntervalMs ?? 1000,
      drainDelaySeconds: Math.max(1, Math.round((options.pollIntervalMs ?? 1000) / 1000)),
    };
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
    });
    try {
      await rejected.prepare();
    } catch (error) {
      await rejected.close();
      throw error;
    }
    this.#rejected = rejected;
    const redisConfig = this.#config.redis;
    const { drainDelaySeconds } = this.#options;
    const redis = createRedisClient(redisConfig, 'worker', {
      lazyConnect: true,
      blockingWaitMs:
        (Math.max(drainDelaySeconds, BULLMQ_LONGEST_BLOCK_SECONDS) + BULLMQ_BLOCK_WATCHDOG_SECONDS) * 1000,
      onError: (error) => this.#onConnectionError(error),
    });
    this.#redis = redis;
    try {
      await connectRedis(redis, redisConfig);
    } catch (error) {
      await rejected.close();
      throw error;
    }
    try {
      await this.#open(redis);
    } catch (error) {
      await this.#shutdown();
      throw error;
    }
    this.#done = this.#run();
  }

  async #open(redis: Redis): Promise<void> {
    this.#startedAtMs = await redisTimeMs(redis);
    this.#startedAtPerf = performance.now();
    await this.#warnAboutSetUp(redis);

    // Only used to count jobs; the producer's queue owns the meta hash.
    this.#queue = openQueue<ActivityJobData>(redis, this.queueName);
    this.#bull = new Worker<ActivityJobData>(this.queueName, null, {
      connection: redis,
      prefix: QUEUE_PREFIX,
      autorun: false,
      lockDuration: this.timings.lockDurationMs,
      stalledInterval: this.timings.stalledIntervalMs,
      // A job that keeps killing its worker is failed after as many hand-overs as it has tries.
      maxStalledCount: this.#options.tries,
      drainDelay: this.#options.drainDelaySeconds,
    });
    this.#bull.on('error', (error) => this.#onConnectionError(error));
    // BullMQ opens its blocking connection now and re-emits a failed opening as 'error' on it;
    // closed before that settles, the connection has no listener left and the failure becomes an
    // unhandled rejection. A worker therefore starts only once that connection is open.
    await this.#bull.waitUntilReady();
    await this.#bull.startStalledCheckTimer();
    this.#lockTimer = setInterval(() => this.#renewLocks(), this.timings.lockRenewMs);
  }

  /** Asks the worker to stop: the jobs in hand are finished, no new ones are taken. */
  stop(reason: WorkerStopReason = 'closed'): void {
    this.#stopReason ??= reason;
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
    return this.#held.size;
  }

  async #warnAboutSetUp(redis: Redis): Promise<void> {
    const timeoutSeconds = this.#options.timeoutMs / 1000;
    if (timeoutSeconds >= this.#config.retryAfterSeconds) {
      this.#warn(
        `--timeout=${timeoutSeconds} is not below ACTIVITY_LOG_RETRY_AFTER=${this.#config.retryAfterSeconds}: set --timeout lower, so that a stuck attempt fails before retry-after runs out and the job is not held past it`,
      );
    }
    try {
      const info = await redis.info('memory');
      const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
      if (policy !== undefined && policy !== 'noeviction') {
        this.#warn(
          `Redis maxmemory-policy is ${policy}: under memory pressure Redis may evict queued jobs and their activities would be lost; set maxmemory-policy noeviction`,
        );
      }
    } catch (error) {
      this.#warn('could not read the Redis maxmemory-policy (INFO memory failed)', error);
    }
    const durability = await readRedisDurability(redis);
    const warning = durabilityWarningOnce(describeRedis(this.#config.redis), durability);
    if (warning !== null) this.#warn(warning);
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
        if (this.#options.stopWhenEmpty || this.#options.once) {
          // What is in flight may fail and come back delayed, so emptiness is judged after it.
          if (this.#inFlight.size > 0) {
            await Promise.all(this.#inFlight);
            continue;
          }
          if (this.#options.once) this.stop('once');
          else if (await this.#queueIsEmpty()) this.stop('empty');
        }
      }
    } finally {
      // Jobs in hand finish; with Redis away their completion cannot be recorded, so the worker
      // stops anyway and the stalled check hands them to another worker (their rows are stored).
      await this.#unlessStoppingOffline(Promise.all(this.#inFlight), []);
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
    if (breaker.state === 'closed') return true;
    if (this.#options.once || this.#options.stopWhenEmpty) {
      if (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
      if (breaker.snapshot().state !== 'closed') this.stop('store-unavailable');
      return false;
    }
    // The probe goes alone: nothing else in flight, and nothing else until it has been decided.
    if (this.#inFlight.size > 0) {
      await Promise.race(this.#inFlight);
      return false;
    }
    if (!breaker.isAllowed) {
      await breaker.whenAllowed(this.#stopSignal.signal);
      return false;
    }
    return true;
  }

  async #checkStopConditions(): Promise<void> {
    if (this.#fetched >= this.#options.maxJobs) {
      this.stop(this.#options.once ? 'once' : 'max-jobs');
      return;
    }
    if (performance.now() - this.#startedAtPerf >= this.#options.maxTimeMs) {
      this.stop('max-time');
      return;
    }
    if (Date.now() >= this.#nextRestartCheck) {
      this.#nextRestartCheck = Date.now() + this.#options.pollIntervalMs;
      if (await this.#restartRequested()) this.stop('restart');
    }
  }

  async #restartRequested(): Promise<boolean> {
    try {
      const markers = await this.#unlessStoppingOffline(
        this.#redis!.mget(restartMarkerKey(), restartMarkerKey(this.queueName)),
        [],
      );
      this.#restartCheckFailed = false;
      return markers.some((marker) => marker !== null && Number(marker) > this.#startedAtMs);
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
      const job = await this.#fetch(first);
      if (job === undefined) break;
      this.#fetched++;
      const held = await this.#hold(job);
      if (held === null) continue;
      group.push(held);
      activities += held.activities.length;
      if (!this.#options.mergeJobs || activities >= this.#options.batchSize) break;
    }
    return group;
  }

  async #fetch(block: boolean): Promise<Job<ActivityJobData> | undefined> {
    const token = `${this.#tokenPrefix}:${this.#tokenSeq++}`;
    try {
      // If Redis is away when the worker is told to stop, it stops without this job: a job fetched
      // later is handed to another worker by the stalled check, as for a crashed worker.
      const job = await this.#unlessStoppingOffline(this.#bull!.getNextJob(token, { block }), undefined);
      if (job !== undefined) job.token ??= token;
      return job;
    } catch (error) {
      this.#warn('could not fetch jobs from Redis; retrying', error);
      await sleep(this.#options.pollIntervalMs);
      return undefined;
    }
  }

  /** Restores a job's activities; a job in another format goes straight to the failed set. */
  async #hold(job: Job<ActivityJobData>): Promise<HeldJob | null> {
    const token = job.token!;
    try {
      const held: HeldJob = { job, token, activities: decodeActivityJob(job.data) };
      this.#held.set(token, held);
      return held;
    } catch (error) {
      const coded = asActivityLogError(error);
      // Read before moveToFailed, which counts the attempt on the job.
      const attempt = job.attemptsMade + 1;
      this.#counts.failedJobs++;
      try {
        await job.moveToFailed(new UnrecoverableError(`${coded.code}: ${coded.message}`), token, false);
      } catch (moveError) {
        this.#warn(`could not move invalid job ${job.id} to the failed set`, moveError);
      }
      this.events.emit('jobFailed', {
        jobId: job.id!,
        attempt,
        count: 0,
        error: coded,
        willRetry: false,
      });
      return null;
    }
  }

  #launch(group: HeldJob[]): void {
    const task = this.#storeGroup(group).finally(() => {
      this.#inFlight.delete(task);
    });
    this.#inFlight.add(task);
  }

  async #storeGroup(group: HeldJob[]): Promise<void> {
    const started = performance.now();
    try {
      let outcome: GroupOutcome;
      try {
        outcome = await this.#insertWithTimeout(group);
      } catch (error) {
        // Past --timeout: every job of the group is failed (the abandoned insert is idempotent).
        const coded = asActivityLogError(error);
        for (const held of group) await this.#fail(held, coded);
        return;
      }
      const { done, rest, error } = splitByOutcome(group, outcome);
      let completed = done;
      if (outcome.refused.length > 0) completed = await this.#keepRefused(done, outcome.refused);
      if (completed.length > 0) await this.#complete(completed, outcome, started);
      if (rest.length === 0) return;
      const coded = asActivityLogError(error);
      if (isErrorOfKind(coded, 'outage')) await this.#handBack(rest, coded);
      else for (const held of rest) await this.#fail(held, coded);
    } finally {
      for (const held of group) this.#held.delete(held.token);
    }
  }

  /**
   * Keeps the activities the store refused as data in the spool's `rejected.ndjson` on this host,
   * so their jobs complete with every honest activity stored. A job whose refused activities
   * cannot be kept there is failed instead (tries used), so they stay in Redis.
   */
  async #keepRefused(jobs: readonly HeldJob[], refused: readonly RefusedActivity[]): Promise<HeldJob[]> {
    const ids = new Set(refused.map(({ activity }) => activity.id));
    const withRefused = jobs.filter((held) => held.activities.some((activity) => ids.has(activity.id)));
    try {
      if (this.#rejected === null) throw new ActivityLogError('SPOOL_FAILED', 'the worker has not started');
      const { dropped } = await this.#rejected.reject(refused);
      this.#counts.refused += refused.length;
      this.events.emit('refused', {
        jobIds: withRefused.map((held) => held.job.id!),
        count: refused.length,
        dropped,
        error: asActivityLogError(refused[0]!.error),
      });
      return [...jobs];
    } catch (error) {
      const coded = asActivityLogError(error);
      for (const held of withRefused) await this.#fail(held, coded);
      return jobs.filter((held) => !withRefused.includes(held));
    }
  }

  /**
   * Inserts the group's jobs in statements of whole jobs (see {@link packStatements}), each through
   * the store breaker (a statement slower than `DB_QUERY_TIMEOUT_MS` counts as a failure); fails
   * with `QUEUE_JOB_TIMEOUT` past `--timeout`. A statement the store refuses as data is split
   * until the refused activities stand alone ({@link writeWithIsolation}), so one bad activity
   * never fails the honest ones merged with it. A failure of the store itself stops at that
   * statement; what was written before it is reported, so its jobs still complete. New rows are
   * counted as each statement commits.
   */
  async #insertWithTimeout(group: readonly HeldJob[]): Promise<GroupOutcome> {
    const activities = group.reduce((sum, held) => sum + held.activities.length, 0);
    const insert = (async (): Promise<GroupOutcome> => {
      let inserted = 0;
      let inserts = 0;
      let processed = 0;
      const refused: RefusedActivity[] = [];
      const write = async (part: readonly Activity[]) => {
        const added = await this.#breaker.execute(() => this.#store.insertMany(part));
        this.#countInserted(added);
        return added;
      };
      for (const statement of packStatements(group, this.#options.batchSize)) {
        const result = await writeWithIsolation(statement, write);
        inserted += result.inserted;
        inserts += result.stored.length;
        refused.push(...result.refused);
        processed += statement.length - result.unwritten.length;
        if (result.unwritten.length > 0)
          return { inserted, inserts, refused, processed, error: result.error };
      }
      return { inserted, inserts, refused, processed };
    })();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new ActivityLogError(
            'QUEUE_JOB_TIMEOUT',
            `storing ${activities} activities took longer than --timeout=${this.#options.timeoutMs / 1000}s`,
          ),
        );
      }, this.#options.timeoutMs);
    });
    // The abandoned insert may still finish or fail later; it is idempotent, so either is harmless.
    insert.catch(() => {});
    try {
      return await Promise.race([insert, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #complete(
    group: readonly HeldJob[],
    result: { readonly inserted: number; readonly inserts: number },
    started: number,
  ): Promise<void> {
    await this.#recordStored(group);
    const completed = await Promise.all(
      group.map(async (held) => {
        try {
          await held.job.moveToCompleted({ stored: held.activities.length }, held.token, false);
          this.#counts.jobs++;
          this.#counts.activities += held.activities.length;
          return held;
        } catch (error) {
          // The lock expired (this process stalled) and another worker took the job; its rows
          // are already stored and the other worker's insert of them will be a no-op.
          this.#counts.lostJobs++;
          this.#warn(
            `job ${held.job.id} was stored but could not be completed: ${errorMessage(error)}`,
            error,
          );
          return null;
        }
      }),
    );
    // Only the jobs completed here: a job another worker took over is counted by that worker.
    const mine = completed.filter((held): held is HeldJob => held !== null);
    if (mine.length === 0) return;
    this.events.emit('stored', {
      jobIds: mine.map((held) => held.job.id!),
      count: mine.reduce((sum, held) => sum + held.activities.length, 0),
      inserted: result.inserted,
      inserts: result.inserts,
      durationMs: performance.now() - started,
      activities: mine.length === 1 ? mine[0]!.activities : mine.flatMap((held) => held.activities),
    });
  }

  /**
   * Records the jobs' ids as stored before completing them, for producers that keep each enqueued
   * batch in their disk journal until it is stored. A failure here only means those producers
   * enqueue the batch once more (no row is stored twice).
   */
  async #recordStored(group: readonly HeldJob[]): Promise<void> {
    const key = storedJobsKey(this.queueName);
    const nowMs = Date.now();
    const members = group.flatMap((held) => [nowMs, held.job.id!]);
    try {
      await this.#redis!.multi()
        .zadd(key, ...members)
        .zremrangebyscore(key, '-inf', nowMs - STORED_JOBS_KEEP_MS)
        .exec();
    } catch (error) {
      this.#warn('could not record stored jobs for journaling producers', error);
    }
  }

  #countInserted(inserted: number): void {
    this.#counts.inserted += inserted;
    this.#counts.inserts++;
    if (inserted === 0) return;
    this.#redis!.incrby(storedCounterKey(this.queueName), inserted).catch((error: unknown) =>
      this.#warn('could not update the stored-activities counter', error),
    );
  }

  async #fail(held: HeldJob, error: ActivityLogError): Promise<void> {
    const { job, token } = held;
    const attempt = job.attemptsMade + 1;
    const willRetry = attempt < this.#options.tries;
    // The worker's --tries decides, as with Laravel's `queue:work --tries`, whatever the producer
    // set; BullMQ reads `opts.attempts` when it decides between retrying and failing.
    job.opts.attempts = this.#options.tries;
    try {
      await job.moveToFailed(new Error(`${error.code}: ${error.message}`), token, false);
      if (willRetry) this.#counts.retriedJobs++;
      else this.#counts.failedJobs++;
    } catch (moveError) {
      this.#counts.lostJobs++;
      this.#warn(
        `job ${job.id} failed but could not be marked failed: ${errorMessage(moveError)}`,
        moveError,
      );
    }
    this.events.emit('jobFailed', {
      jobId: job.id!,
      attempt,
      count: held.activities.length,
      error,
      willRetry,
    });
  }

  /**
   * The store is unavailable, not the jobs bad: put them back at the head of the queue with their
   * tries untouched. The breaker keeps the worker from taking them again until a probe succeeds.
   */
  async #handBack(group: readonly HeldJob[], error: ActivityLogError): Promise<void> {
    const returned: string[] = [];
    for (const held of group) {
      try {
        await held.job.moveToWait(held.token);
        returned.push(held.job.id!);
        this.#counts.returnedJobs++;
      } catch (moveError) {
        // Its lock is gone; the stalled check hands it to a worker after retry-after.
        this.#counts.lostJobs++;
        this.#warn(
          `job ${held.job.id} could not be handed back to the queue: ${errorMessage(moveError)}`,
          moveError,
        );
      }
    }
    const count = group.reduce((sum, held) => sum + held.activities.length, 0);
    this.events.emit('jobsReturned', { jobIds: returned, count, error });
    // A draining worker cannot drain while the store is unavailable: it says so (exit 1), even
    // when it was about to stop anyway (`--once` after its one job).
    if (this.#options.once || this.#options.stopWhenEmpty) {
      this.#stopReason =
        this.#stopReason === null || this.#stopReason === 'once' || this.#stopReason === 'empty'
          ? 'store-unavailable'
          : this.#stopReason;
      this.#stopSignal.abort();
    }
  }

  #renewLocks(): void {
    for (const held of this.#held.values()) {
      held.job.extendLock(held.token, this.timings.lockDurationMs).catch((error: unknown) => {
        this.#warn(`could not renew the lock of job ${held.job.id}`, error);
      });
    }
  }

  async #queueIsEmpty(): Promise<boolean> {
    try {
      const counts = await this.#unlessStoppingOffline(
        this.#queue!.getJobCounts('wait', 'prioritized', 'delayed', 'paused'),
        { wait: 1 },
      );
      return Object.values(counts).every((count) => count === 0);
    } catch (error) {
      this.#warn('could not count the jobs in the queue', error);
      return false;
    }
  }

  /**
   * Resolves with `promise`, or with `fallback` once the worker is stopping while Redis is not
   * connected: commands wait in the client's offline queue until Redis is back, and a stopping
   * worker (SIGTERM from a supervisor) must not wait for that.
   */
  #unlessStoppingOffline<T>(promise: Promise<T>, fallback: T): Promise<T> {
    const redis = this.#redis;
    if (redis === null) return promise;
    return new Promise<T>((resolve, reject) => {
      let poll: NodeJS.Timeout | null = null;
      const giveUp = () => {
        if (redis.status === 'ready') return;
        cleanUp();
        promise.catch(() => undefined);
        resolve(fallback);
      };
      const startPolling = () => {
        giveUp();
        poll ??= setInterval(giveUp, OFFLINE_STOP_POLL_MS);
      };
      const cleanUp = () => {
        if (poll !== null) clearInterval(poll);
        this.#stopSignal.signal.removeEventListener('abort', startPolling);
      };
      if (this.#stopSignal.signal.aborted) startPolling();
      else this.#stopSignal.signal.addEventListener('abort', startPolling, { once: true });
      promise.then(
        (value) => {
          cleanUp();
          resolve(value);
        },
        (error: unknown) => {
          cleanUp();
          reject(error);
        },
      );
    });
  }

  async #shutdown(): Promise<void> {
    if (this.#lockTimer !== null) clearInterval(this.#lockTimer);
    this.#lockTimer = null;
    try {
      // With Redis away, closing would wait for it; the connections are dropped instead.
      const offline = this.#redis !== null && this.#redis.status !== 'ready';
      await this.#bull?.close(offline);
      if (!offline) await this.#queue?.close();
    } finally {
      if (this.#redis !== null) await closeRedis(this.#redis);
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

/** The Redis server's clock in ms, so `restart` markers compare across hosts with skewed clocks. */
export async function redisTimeMs(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/**
 * The insert statements for a group of jobs: whole jobs, packed in order, up to `batchSize` rows
 * per statement. A statement never holds part of a job together with another job, so a statement
 * that fails leaves none of the jobs merged with it half-stored; a job larger than `batchSize` is
 * split into statements of its own (a retry of that job stores the rest, idempotently).
 */
export function packStatements(
  group: readonly { readonly activities: readonly Activity[] }[],
  batchSize: number,
): Activity[][] {
  const statements: Activity[][] = [];
  let current: Activity[] = [];
  for (const { activities } of group) {
    if (current.length > 0 && current.length + activities.length > batchSize) {
      statements.push(current);
      current = [];
    }
    if (activities.length > batchSize) {
      for (let start = 0; start < activities.length; start += batchSize) {
        statements.push(activities.slice(start, start + batchSize));
      }
      continue;
    }
    for (const activity of activities) current.push(activity);
  }
  if (current.length > 0) statements.push(current);
  return statements;
}

/** What storing a group of jobs did: rows, statements, refused activities, how far it got. */
interface GroupOutcome {
  readonly inserted: number;
  readonly inserts: number;
  readonly refused: readonly RefusedActivity[];
  /** Activities of the group, in order, that were stored or refused before the store failed. */
  readonly processed: number;
  /** The store failure that stopped it, if one did. */
  readonly error?: unknown;
}

/** The jobs all of whose activities were processed, and the rest (with the failure that stopped them). */
function splitByOutcome(
  group: readonly HeldJob[],
  outcome: GroupOutcome,
): { done: HeldJob[]; rest: HeldJob[]; error: unknown } {
  const done: HeldJob[] = [];
  const rest: HeldJob[] = [];
  let end = 0;
  for (const held of group) {
    end += held.activities.length;
    (end <= outcome.processed ? done : rest).push(held);
  }
  return { done, rest, error: outcome.error };
}

function asActivityLogError(error: unknown): ActivityLogError {
  if (isActivityLogError(error)) return error;
  return new ActivityLogError('STORE_FAILED', errorMessage(error), { cause: error });
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
