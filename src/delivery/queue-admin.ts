import type { Job, Queue } from 'bullmq';
import type { RedisConfig } from '../config/config.js';
import { openQueue } from './open-queue.js';
import { type ActivityJobData, countJobActivities } from './queue-job.js';
import { metricsKeys, restartMarkerKey, storedCounterKey } from './queue-keys.js';
import {
  closeRedis,
  connectRedis,
  createRedisClient,
  deleteKeysMatching,
  isRedisConnectionError,
  queueUnavailable,
  type RedisClient,
  redisTimeMs,
} from './redis-connection.js';

/** One row of `activity-log failed`. */
export interface FailedJobInfo {
  readonly id: string;
  /** Attempts made before it was failed. */
  readonly attempts: number;
  /** The last attempt's error (`CODE: message`). */
  readonly error: string;
  readonly activities: number;
  readonly failedAt: Date | null;
}

/** Jobs by state, and the activities stored so far by the queue's workers. */
export interface QueueCounts {
  /** Waiting, prioritized or paused: ready for a worker. */
  readonly waiting: number;
  /** Waiting for a retry backoff to pass. */
  readonly delayed: number;
  readonly active: number;
  readonly failed: number;
  readonly completed: number;
  readonly storedActivities: number;
}

export interface RetryResult {
  readonly retried: readonly string[];
  /** Ids that named no failed job. */
  readonly missing: readonly string[];
}

const PAGE_SIZE = 100;

/**
 * Operations on a queue for the CLI and the HTTP service: counts, failed jobs, retry, flush,
 * the restart marker. Holds one Redis connection; `close()` it.
 *
 * @example
 * const admin = await QueueAdmin.connect(config.redis, config.queueName);
 * try { for (const job of await admin.listFailed()) console.log(job.id, job.error); }
 * finally { await admin.close(); }
 */
export class QueueAdmin {
  readonly queueName: string;
  readonly #redisConfig: RedisConfig;
  readonly #redis: RedisClient;
  readonly #queue: Queue<ActivityJobData>;

  private constructor(redisConfig: RedisConfig, queueName: string, redis: RedisClient) {
    this.#redisConfig = redisConfig;
    this.queueName = queueName;
    this.#redis = redis;
    // Read-mostly: no need to (re)write the queue's meta hash just because someone looked at it.
    this.#queue = openQueue<ActivityJobData>(redis, queueName);
  }

  /** Connects, failing with `QUEUE_UNAVAILABLE` (naming the server) if Redis does not answer. */
  static async connect(redis: RedisConfig, queueName: string): Promise<QueueAdmin> {
    const client = createRedisClient(redis, 'command', { lazyConnect: true });
    await connectRedis(client, redis);
    return new QueueAdmin(redis, queueName, client);
  }

  async counts(): Promise<QueueCounts> {
    return this.#call(async () => {
      const [counts, stored] = await Promise.all([
        this.#queue.getJobCounts('wait', 'prioritized', 'paused', 'delayed', 'active', 'failed', 'completed'),
        this.#redis.get(storedCounterKey(this.queueName)),
      ]);
      const count = (state: string) => counts[state] ?? 0;
      return {
        waiting: count('wait') + count('prioritized') + count('paused'),
        delayed: count('delayed'),
        active: count('active'),
        failed: count('failed'),
        completed: count('completed'),
        storedActivities: stored === null ? 0 : Number(stored),
      };
    });
  }

  /** Every failed job, newest first, read a page at a time so memory stays small. */
  async listFailed(): Promise<FailedJobInfo[]> {
    return this.#call(async () => {
      const rows: FailedJobInfo[] = [];
      const total = await this.#queue.getFailedCount();
      for (let start = 0; start < total; start += PAGE_SIZE) {
        const jobs = await this.#queue.getFailed(start, start + PAGE_SIZE - 1);
        for (const job of jobs) rows.push(failedJobInfo(job));
      }
      return rows;
    });
  }

  /**
   * The newest `limit` failed jobs and how many there are in all: what a dashboard shows, read
   * without loading every failed job (each carries its activities).
   */
  async failedPage(limit: number): Promise<{ readonly total: number; readonly jobs: FailedJobInfo[] }> {
    return this.#call(async () => {
      const total = await this.#queue.getFailedCount();
      const jobs = limit > 0 && total > 0 ? await this.#queue.getFailed(0, limit - 1) : [];
      return { total, jobs: jobs.map(failedJobInfo) };
    });
  }

  /**
   * Moves failed jobs back to the queue with fresh attempts. `'all'` retries every job failed
   * before the call (jobs that fail again meanwhile are not retried twice).
   */
  async retry(ids: readonly string[] | 'all'): Promise<RetryResult> {
    return this.#call(async () => {
      const targets = ids === 'all' ? await this.#queue.getRanges(['failed'], 0, -1) : [...new Set(ids)];
      const retried: string[] = [];
      const missing: string[] = [];
      for (const id of targets) {
        const job = await this.#queue.getJob(id);
        if (job === undefined || !(await job.isFailed())) {
          missing.push(id);
          continue;
        }
        // A job failed for stalling too often keeps its stall count through BullMQ's retry, and
        // would fail again at its first stall: a retried job starts afresh in every respect.
        await (await this.#queue.client).hdel(this.#queue.toKey(id), 'stc');
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
        retried.push(id);
      }
      return { retried, missing };
    });
  }

  /** Deletes every failed job; resolves to how many. */
  async flushFailed(): Promise<number> {
    return this.#call(async () => {
      let deleted = 0;
      for (;;) {
        const ids = await this.#queue.clean(0, 1000, 'failed');
        deleted += ids.length;
        if (ids.length < 1000) return deleted;
      }
    });
  }

  /**
   * Sets the restart marker to the Redis server's time: every worker started before it (of this
   * queue, or of every queue on this Redis with `scope: 'all'`) finishes its jobs in hand and
   * exits 0. Workers of other queues never read this queue's marker.
   */
  async requestRestart(scope: 'all' | 'queue' = 'queue'): Promise<Date> {
    return this.#call(async () => {
      const now = await redisTimeMs(this.#redis);
      await this.#redis.set(restartMarkerKey(scope === 'all' ? undefined : this.queueName), String(now));
      return new Date(now);
    });
  }

  /**
   * Deletes the queue and everything this library keeps for it in Redis (jobs of every state,
   * counters, the queue's restart marker, its monitoring data). For tests and decommissioning.
   */
  async removeQueue(): Promise<void> {
    await this.#call(async () => {
      await this.#queue.obliterate({ force: true });
      await this.#redis.del(storedCounterKey(this.queueName), restartMarkerKey(this.queueName));
      await deleteKeysMatching(this.#redis, metricsKeys(this.queueName).pattern);
    });
  }

  async close(): Promise<void> {
    try {
      await this.#queue.close();
    } finally {
      await closeRedis(this.#redis);
    }
  }

  async #call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (isRedisConnectionError(error)) throw queueUnavailable(this.#redisConfig, error);
      throw error;
    }
  }
}

function failedJobInfo(job: Job<ActivityJobData>): FailedJobInfo {
  return {
    id: job.id ?? '?',
    attempts: job.attemptsMade,
    error: job.failedReason ?? '',
    activities: countJobActivities(job.data),
    failedAt: job.finishedOn === undefined ? null : new Date(job.finishedOn),
  };
}
