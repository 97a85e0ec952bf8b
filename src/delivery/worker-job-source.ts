import { randomUUID } from 'node:crypto';
import { type Job, type Queue, UnrecoverableError, Worker } from 'bullmq';
import type { RedisConfig } from '../config/config.js';
import type { Activity } from '../core/activity.js';
import { ActivityLogError, isActivityLogError } from '../core/errors.js';
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
  closeRedis,
  connectRedis,
  createRedisClient,
  describeRedis,
  type RedisClient,
  redisServers,
  redisTimeMs,
} from './redis-connection.js';
import { durabilityWarningOnce, readRedisDurability } from './redis-durability.js';
import { unlessStoppingOffline } from './unless-stopping-offline.js';
import type { WorkerTimings } from './worker-options.js';

/** A job this worker has fetched and holds the lock of, with its activities decoded. */
export interface HeldJob {
  readonly job: Job<ActivityJobData>;
  /** The lock token it was fetched with. */
  readonly token: string;
  readonly activities: readonly Activity[];
}

/** A fetched job that does not carry activities in this library's format; it went to the failed set. */
export interface InvalidJob {
  readonly jobId: string;
  /** 1-based attempt it was fetched for. */
  readonly attempt: number;
  readonly error: ActivityLogError;
}

export type TakenJob = { readonly held: HeldJob } | { readonly invalid: InvalidJob };

/** How a failed attempt was recorded. */
export interface FailedAttempt {
  /** 1-based attempt that failed. */
  readonly attempt: number;
  /** False when the job went to the failed set. */
  readonly willRetry: boolean;
  /** False when its lock was gone and the failure could not be recorded. */
  readonly recorded: boolean;
}

export interface WorkerJobSourceOptions {
  readonly redis: RedisConfig;
  readonly queueName: string;
  readonly timings: WorkerTimings;
  /** Attempts per job; also how many times a job that keeps killing its worker is handed over. */
  readonly tries: number;
  /** How long an idle fetch blocks waiting for a job. */
  readonly drainDelaySeconds: number;
  /** How long to wait before fetching again after Redis failed a fetch. */
  readonly retryFetchAfterMs: number;
  /** Fires when the worker is told to stop; a stopping worker stops waiting for an absent Redis. */
  readonly stopSignal: AbortSignal;
  readonly warn: (message: string, cause?: unknown) => void;
  /** Errors of the Redis connections (one per reconnect attempt while Redis is away). */
  readonly onConnectionError: (error: Error) => void;
}

/**
 * BullMQ blocks for the next job for the drain delay, or up to 10 s while delayed jobs (retry
 * backoffs) wait, and gives up on the blocking connection 1 s after that.
 */
const BULLMQ_LONGEST_BLOCK_SECONDS = 10;
const BULLMQ_BLOCK_WATCHDOG_SECONDS = 1;

/**
 * Where a worker's jobs come from and go back to, over one Redis connection: fetching and
 * decoding them, keeping their locks alive (one round trip for every job held, as BullMQ's own
 * lock manager does), completing, failing or handing them back, and the bookkeeping producers
 * and `restart` read. It decides nothing: the worker tells it what became of each job.
 *
 * @example
 * const source = new WorkerJobSource({ redis: config.redis, queueName, timings, ... });
 * await source.connect();
 * await source.open();
 * const taken = await source.take(true);
 * if (taken !== undefined && 'held' in taken) await source.complete(taken.held);
 */
export class WorkerJobSource {
  readonly #options: WorkerJobSourceOptions;
  readonly #tokenPrefix = randomUUID();
  #tokenSeq = 0;
  #redis: RedisClient | null = null;
  #queue: Queue<ActivityJobData> | null = null;
  #bull: Worker<ActivityJobData> | null = null;
  #lockTimer: NodeJS.Timeout | null = null;
  /** Jobs in hand by fetch token: a job whose lock was lost can be fetched again while its first copy still runs. */
  readonly #held = new Map<string, HeldJob>();

  constructor(options: WorkerJobSourceOptions) {
    this.#options = options;
  }

  /** Connects to Redis, failing with `QUEUE_UNAVAILABLE` if it does not answer. */
  async connect(): Promise<void> {
    const { drainDelaySeconds } = this.#options;
    const redis = createRedisClient(this.#options.redis, 'worker', {
      lazyConnect: true,
      blockingWaitMs:
        (Math.max(drainDelaySeconds, BULLMQ_LONGEST_BLOCK_SECONDS) + BULLMQ_BLOCK_WATCHDOG_SECONDS) * 1000,
      onError: (error) => this.#options.onConnectionError(error),
    });
    this.#redis = redis;
    await connectRedis(redis, this.#options.redis);
  }

  /** The Redis server's clock in ms. */
  serverTimeMs(): Promise<number> {
    return redisTimeMs(this.#connected());
  }

  /** Warns when Redis may lose queued jobs: an eviction policy, or no append-only file. */
  async warnAboutRedisSetUp(): Promise<void> {
    const redis = this.#connected();
    try {
      // Each node of a cluster answers for itself.
      const infos = await Promise.all(redisServers(redis).map((server) => server.info('memory')));
      const policy = infos
        .map((info) => /maxmemory_policy:(\S+)/.exec(info)?.[1])
        .find((found) => found !== undefined && found !== 'noeviction');
      if (policy !== undefined) {
        this.#options.warn(
          `Redis maxmemory-policy is ${policy}: under memory pressure Redis may evict queued jobs and their activities would be lost; set maxmemory-policy noeviction`,
        );
      }
    } catch (error) {
      this.#options.warn('could not read the Redis maxmemory-policy (INFO memory failed)', error);
    }
    const durability = await readRedisDurability(redis);
    const warning = durabilityWarningOnce(describeRedis(this.#options.redis), durability);
    if (warning !== null) this.#options.warn(warning);
  }

  /** Opens the queue, starts the stalled-job check and the renewal of held locks. */
  async open(): Promise<void> {
    const redis = this.#connected();
    const { queueName, timings } = this.#options;
    // Only used to count jobs; the producer's queue owns the meta hash.
    this.#queue = openQueue<ActivityJobData>(redis, queueName);
    this.#bull = new Worker<ActivityJobData>(queueName, null, {
      connection: redis,
      prefix: QUEUE_PREFIX,
      autorun: false,
      lockDuration: timings.lockDurationMs,
      stalledInterval: timings.stalledIntervalMs,
      // A job that keeps killing its worker is failed after as many hand-overs as it has tries.
      maxStalledCount: this.#options.tries,
      drainDelay: this.#options.drainDelaySeconds,
    });
    this.#bull.on('error', (error) => this.#options.onConnectionError(error));
    // BullMQ opens its blocking connection now and re-emits a failed opening as 'error' on it;
    // closed before that settles, the connection has no listener left and the failure becomes an
    // unhandled rejection. A worker therefore starts only once that connection is open.
    await this.#bull.waitUntilReady();
    await this.#bull.startStalledCheckTimer();
    this.#lockTimer = setInterval(() => void this.#renewLocks(), timings.lockRenewMs);
  }

  /** Jobs held right now. */
  get heldCount(): number {
    return this.#held.size;
  }

  /**
   * Fetches the next job, waiting for one up to the drain delay when `block`, and decodes it. A
   * job in another format goes straight to the failed set. Resolves undefined when none came,
   * or Redis failed the fetch (warned, after a pause).
   */
  async take(block: boolean): Promise<TakenJob | undefined> {
    const job = await this.#fetch(block);
    if (job === undefined) return undefined;
    const token = job.token!;
    try {
      const held: HeldJob = { job, token, activities: decodeActivityJob(job.data) };
      this.#held.set(token, held);
      return { held };
    } catch (error) {
      const coded = asActivityLogError(error);
      // Read before moveToFailed, which counts the attempt on the job.
      const attempt = job.attemptsMade + 1;
      try {
        await job.moveToFailed(new UnrecoverableError(`${coded.code}: ${coded.message}`), token, false);
      } catch (moveError) {
        this.#options.warn(`could not move invalid job ${job.id} to the failed set`, moveError);
      }
      return { invalid: { jobId: job.id!, attempt, error: coded } };
    }
  }

  async #fetch(block: boolean): Promise<Job<ActivityJobData> | undefined> {
    const token = `${this.#tokenPrefix}:${this.#tokenSeq++}`;
    try {
      // If Redis is away when the worker is told to stop, it stops without this job: a job fetched
      // later is handed to another worker by the stalled check, as for a crashed worker.
      const job = await this.unlessStoppingOffline(this.#bull!.getNextJob(token, { block }), undefined);
      if (job !== undefined) job.token ??= token;
      return job;
    } catch (error) {
      this.#options.warn('could not fetch jobs from Redis; retrying', error);
      await sleep(this.#options.retryFetchAfterMs);
      return undefined;
    }
  }

  /** Stops renewing the locks of jobs the worker is done with, whatever became of them. */
  release(group: readonly HeldJob[]): void {
    for (const held of group) this.#held.delete(held.token);
  }

  /**
   * Moves a stored job to the completed set. Resolves false when its lock expired (this process
   * stalled) and another worker took it: its rows are stored, and the other worker's insert of
   * them will be a no-op.
   */
  async complete(held: HeldJob): Promise<boolean> {
    try {
      await held.job.moveToCompleted({ stored: held.activities.length }, held.token, false);
      return true;
    } catch (error) {
      this.#options.warn(
        `job ${held.job.id} was stored but could not be completed: ${errorMessage(error)}`,
        error,
      );
      return false;
    }
  }

  /**
   * Records the jobs' ids as stored before completing them, for producers that keep each enqueued
   * batch in their disk journal until it is stored. A failure here only means those producers
   * enqueue the batch once more (no row is stored twice).
   */
  async recordStored(group: readonly HeldJob[]): Promise<void> {
    const key = storedJobsKey(this.#options.queueName);
    const nowMs = Date.now();
    const members = group.flatMap((held) => [nowMs, held.job.id!]);
    try {
      await this.#connected()
        .multi()
        .zadd(key, ...members)
        .zremrangebyscore(key, '-inf', nowMs - STORED_JOBS_KEEP_MS)
        .exec();
    } catch (error) {
      this.#options.warn('could not record stored jobs for journaling producers', error);
    }
  }

  /** Adds new rows to the stored-activities counter every process reads; not awaited by writes. */
  countStored(inserted: number): void {
    this.#connected()
      .incrby(storedCounterKey(this.#options.queueName), inserted)
      .catch((error: unknown) => this.#options.warn('could not update the stored-activities counter', error));
  }

  /**
   * Records a failed attempt: the job is tried again with backoff, or goes to the failed set
   * after `tries` attempts.
   */
  async fail(held: HeldJob, error: ActivityLogError, tries: number): Promise<FailedAttempt> {
    const { job, token } = held;
    const attempt = job.attemptsMade + 1;
    const willRetry = attempt < tries;
    // The worker's --tries decides, as with Laravel's `queue:work --tries`, whatever the producer
    // set; BullMQ reads `opts.attempts` when it decides between retrying and failing.
    job.opts.attempts = tries;
    try {
      await job.moveToFailed(new Error(`${error.code}: ${error.message}`), token, false);
      return { attempt, willRetry, recorded: true };
    } catch (moveError) {
      this.#options.warn(
        `job ${job.id} failed but could not be marked failed: ${errorMessage(moveError)}`,
        moveError,
      );
      return { attempt, willRetry, recorded: false };
    }
  }

  /**
   * Puts a job back at the head of the queue with its tries untouched. Resolves false when its
   * lock is gone; the stalled check then hands it to a worker after retry-after.
   */
  async handBack(held: HeldJob): Promise<boolean> {
    try {
      await held.job.moveToWait(held.token);
      return true;
    } catch (moveError) {
      this.#options.warn(
        `job ${held.job.id} could not be handed back to the queue: ${errorMessage(moveError)}`,
        moveError,
      );
      return false;
    }
  }

  /** Whether no job is waiting, prioritized, delayed or paused; false when that cannot be read. */
  async queueIsEmpty(): Promise<boolean> {
    try {
      const counts = await this.unlessStoppingOffline(
        this.#queue!.getJobCounts('wait', 'prioritized', 'delayed', 'paused'),
        { wait: 1 },
      );
      return Object.values(counts).every((count) => count === 0);
    } catch (error) {
      this.#options.warn('could not count the jobs in the queue', error);
      return false;
    }
  }

  /** The `restart` markers for every queue and for this one (epoch ms on the Redis clock, or null). */
  readRestartMarkers(): Promise<(string | null)[]> {
    return this.unlessStoppingOffline(
      this.#connected().mget(restartMarkerKey(), restartMarkerKey(this.#options.queueName)),
      [],
    );
  }

  /** See {@link unlessStoppingOffline}: a stopping worker does not wait for an absent Redis. */
  unlessStoppingOffline<T>(promise: Promise<T>, fallback: T): Promise<T> {
    if (this.#redis === null) return promise;
    return unlessStoppingOffline(this.#redis, this.#options.stopSignal, promise, fallback);
  }

  /** Stops renewing locks and closes the queue and the connection. */
  async close(): Promise<void> {
    if (this.#lockTimer !== null) clearInterval(this.#lockTimer);
    this.#lockTimer = null;
    try {
      // With Redis away, closing would wait for it; the connections are dropped instead.
      const offline = this.#redis !== null && this.#redis.status !== 'ready';
      await this.#bull?.close(offline);
      if (!offline) await this.#queue?.close();
    } finally {
      if (this.#redis !== null) await closeRedis(this.#redis);
    }
  }

  /**
   * Extends the locks of every job held, in one round trip. A lock that was lost (another worker
   * has the job now, or will) is left alone: that copy's completion will say so.
   */
  async #renewLocks(): Promise<void> {
    const held = [...this.#held.values()];
    if (held.length === 0) return;
    try {
      await this.#bull!.extendJobLocks(
        held.map(({ job }) => job.id!),
        held.map(({ token }) => token),
        this.#options.timings.lockDurationMs,
      );
    } catch (error) {
      for (const { job } of held) this.#options.warn(`could not renew the lock of job ${job.id}`, error);
    }
  }

  #connected(): RedisClient {
    if (this.#redis === null) throw new Error('WorkerJobSource.connect() was not called');
    return this.#redis;
  }
}

/** A coded error as it is; anything else as `STORE_FAILED` with it as the cause. */
export function asActivityLogError(error: unknown): ActivityLogError {
  if (isActivityLogError(error)) return error;
  return new ActivityLogError('STORE_FAILED', errorMessage(error), { cause: error });
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
