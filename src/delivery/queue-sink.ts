import type { Queue } from 'bullmq';
import type { RedisConfig } from '../config/config.js';
import type { Activity } from '../core/activity.js';
import type { ActivitySink } from '../core/activity-sink.js';
import type { Delivery } from '../core/delivery.js';
import { ActivityLogError } from '../core/errors.js';
import type { WriteAcknowledgement, WriteFate } from '../resilience/resilient-sink.js';
import { openQueue } from './open-queue.js';
import { type ActivityJobData, activityJobId, activityJobOptions, encodeActivityJob } from './queue-job.js';
import { ACTIVITY_JOB_NAME, storedJobsKey } from './queue-keys.js';
import {
  closeRedis,
  createRedisClient,
  describeRedis,
  queueUnavailable,
  type RedisClient,
} from './redis-connection.js';
import { durabilityWarningOnce, type RedisDurability, readRedisDurability } from './redis-durability.js';

export interface QueueSinkOptions {
  readonly redis: RedisConfig;
  /** `ACTIVITY_LOG_QUEUE_NAME`. */
  readonly queueName: string;
  /** `ACTIVITY_LOG_TRIES`: attempts per job before it is failed. */
  readonly tries: number;
  /** `ACTIVITY_LOG_BATCH_SIZE`: most activities per job; a larger write becomes several jobs. */
  readonly batchSize: number;
  /** Longest an enqueue may take before the write is failed (default 5000 ms). */
  readonly enqueueTimeoutMs?: number;
  /** Longest wait for the TCP connection to Redis (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /**
   * Where the warning goes when Redis does not keep the queue through a crash (once per process
   * and server). Default: a line on stderr.
   */
  readonly warn?: (message: string) => void;
}

/** The producer side of the `queue` method: an {@link ActivitySink} that enqueues BullMQ jobs. */
export interface QueueSink extends ActivitySink {
  readonly name: 'queue';
  readonly queueName: string;
  /** Whether the jobs a write made were stored by a worker (see `ResilientSinkOptions.acknowledgement`). */
  readonly acknowledgement: WriteAcknowledgement;
  /** Resolves when Redis answers (and its durability has been read); rejects with `QUEUE_UNAVAILABLE`. */
  ping(): Promise<void>;
  /**
   * Whether Redis keeps the queue through a crash, as read at the last connection (`null` until
   * Redis has answered once). See {@link readRedisDurability}.
   */
  durability(): RedisDurability | null;
}

interface PendingWrite {
  readonly jobs: readonly ActivityJob[];
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

interface ActivityJob {
  readonly name: string;
  readonly data: ActivityJobData;
  readonly opts: ReturnType<typeof activityJobOptions> & { jobId: string };
}

/**
 * Creates the queue producer. `write()` turns a batch into jobs of at most `batchSize`
 * activities; writes that arrive while an enqueue is in flight are sent together with one
 * `addBulk`. It never waits for an absent or slow Redis: with no connection it rejects at once,
 * and an enqueue that takes longer than `enqueueTimeoutMs` rejects. The caller (the buffer)
 * keeps the activities and retries; job ids make a retried enqueue idempotent.
 *
 * @example
 * const sink = createQueueSink({ redis: config.redis, queueName: 'activity-logs', tries: 3, batchSize: 500 });
 * const delivery = new BatchDelivery(sink, { method: 'queue', batchSize: 500, flushIntervalMs: 50 });
 */
export function createQueueSink(options: QueueSinkOptions): QueueSink {
  return new BullQueueSink(options);
}

/**
 * A job no longer in Redis is lost (Redis restarted without persistence, or the job was removed by
 * hand); one in the failed set stays there for `activity-log failed`; any other state is pending.
 */
const JOB_STATE_FATES: Readonly<Record<string, WriteFate>> = {
  completed: 'stored',
  failed: 'failed',
  unknown: 'lost',
};
const QUEUE_SINKS = new WeakMap<Delivery, QueueSink>();

/** Records that `delivery` enqueues through `sink`, for {@link queueSinkOf}. */
export function attachQueueSink(delivery: Delivery, sink: QueueSink): void {
  QUEUE_SINKS.set(delivery, sink);
}

/** The queue producer a delivery made by `createDelivery` enqueues through (`GET /health` reads its durability). */
export function queueSinkOf(delivery: Delivery): QueueSink | null {
  return QUEUE_SINKS.get(delivery) ?? null;
}

class BullQueueSink implements QueueSink {
  readonly name = 'queue';
  readonly queueName: string;
  readonly acknowledgement: WriteAcknowledgement = {
    keysOf: (activities) => this.#chunks(activities).map(activityJobId),
    check: (keys) => this.#fates(keys),
  };
  readonly #options: QueueSinkOptions;
  readonly #redis: RedisClient;
  #queue: Queue<ActivityJobData> | null = null;
  readonly #enqueueTimeoutMs: number;
  #pending: PendingWrite[] = [];
  #sending = false;
  #lastConnectionError: Error | null = null;
  #firstConnection: Promise<void> | null;
  #durability: RedisDurability | null = null;
  #durabilityRead: Promise<void> | null = null;
  #closed = false;

  constructor(options: QueueSinkOptions) {
    this.#options = options;
    this.queueName = options.queueName;
    this.#enqueueTimeoutMs = options.enqueueTimeoutMs ?? 5000;
    this.#redis = createRedisClient(options.redis, 'producer', {
      ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
      commandTimeoutMs: this.#enqueueTimeoutMs,
      onError: (error) => {
        this.#lastConnectionError = error;
      },
    });
    this.#redis.on('ready', () => {
      this.#lastConnectionError = null;
      // Read again on every connection: a failover may land on a server set up differently.
      this.#durabilityRead = this.#readDurability();
    });
    this.#firstConnection = new Promise<void>((resolve) => {
      const settle = () => {
        this.#redis.off('ready', settle);
        this.#redis.off('error', settle);
        this.#redis.off('end', settle);
        this.#firstConnection = null;
        resolve();
      };
      this.#redis.once('ready', settle);
      this.#redis.once('error', settle);
      this.#redis.once('end', settle);
    });
  }

  async write(activities: readonly Activity[]): Promise<void> {
    if (this.#closed) throw new ActivityLogError('DELIVERY_CLOSED', 'the queue producer is closed');
    if (activities.length === 0) return;
    // The first connection attempt ends within the connect timeout, with 'ready' or an error.
    if (this.#firstConnection !== null) await this.#firstConnection;
    // Failing at once while disconnected keeps the buffer's retry loop cheap and never stalls it.
    if (this.#redis.status !== 'ready') {
      throw queueUnavailable(
        this.#options.redis,
        this.#lastConnectionError ?? new Error(`connection is ${this.#redis.status}`),
      );
    }
    this.#queue ??= this.#createQueue();
    const jobs: ActivityJob[] = this.#chunks(activities).map((chunk) => ({
      name: ACTIVITY_JOB_NAME,
      data: encodeActivityJob(chunk),
      opts: { ...activityJobOptions(this.#options.tries), jobId: activityJobId(chunk) },
    }));
    await new Promise<void>((resolve, reject) => {
      this.#pending.push({ jobs, resolve, reject });
      if (!this.#sending) void this.#send();
    });
  }

  /** The activities of each job a write makes: at most `batchSize` each. */
  #chunks(activities: readonly Activity[]): (readonly Activity[])[] {
    const chunks: (readonly Activity[])[] = [];
    for (let start = 0; start < activities.length; start += this.#options.batchSize) {
      chunks.push(activities.slice(start, start + this.#options.batchSize));
    }
    return chunks;
  }

  /**
   * Stored when a worker recorded the job id (before completing it); otherwise the job's state
   * decides ({@link JOB_STATE_FATES}).
   */
  async #fates(keys: readonly string[]): Promise<ReadonlyMap<string, WriteFate>> {
    const fates = new Map<string, WriteFate>();
    if (keys.length === 0) return fates;
    if (this.#redis.status !== 'ready') {
      throw queueUnavailable(
        this.#options.redis,
        this.#lastConnectionError ?? new Error(`connection is ${this.#redis.status}`),
      );
    }
    this.#queue ??= this.#createQueue();
    try {
      const scores = await this.#redis.zmscore(storedJobsKey(this.queueName), ...keys);
      await Promise.all(
        keys.map(async (key, i) => {
          if (scores[i] !== null) {
            fates.set(key, 'stored');
            return;
          }
          const state = await this.#queue!.getJobState(key);
          fates.set(key, JOB_STATE_FATES[state] ?? 'pending');
        }),
      );
    } catch (error) {
      throw queueUnavailable(this.#options.redis, error);
    }
    return fates;
  }

  /**
   * Resolves when Redis answers a PING (and its durability has been read); rejects with
   * `QUEUE_UNAVAILABLE` otherwise.
   */
  async ping(): Promise<void> {
    if (this.#firstConnection !== null) await this.#firstConnection;
    if (this.#redis.status !== 'ready') {
      throw queueUnavailable(
        this.#options.redis,
        this.#lastConnectionError ?? new Error(`connection is ${this.#redis.status}`),
      );
    }
    try {
      await this.#redis.ping();
    } catch (error) {
      throw queueUnavailable(this.#options.redis, error);
    }
    // Readiness reports durability too: the settings are read on connecting, a round-trip away.
    await this.#durabilityRead;
  }

  durability(): RedisDurability | null {
    return this.#durability;
  }

  async #readDurability(): Promise<void> {
    const durability = await readRedisDurability(this.#redis);
    if (this.#closed) return;
    this.#durability = durability;
    const warning = durabilityWarningOnce(describeRedis(this.#options.redis), durability);
    if (warning === null) return;
    const warn =
      this.#options.warn ?? ((message) => process.stderr.write(`activity-log: warning: ${message}\n`));
    warn(warning);
  }

  /**
   * Made on the first write that finds Redis connected: BullMQ then has nothing to wait for, and
   * a queue whose connection never came up is never left half-initialised behind `close()`.
   */
  #createQueue(): Queue<ActivityJobData> {
    return openQueue<ActivityJobData>(this.#redis, this.queueName, { updateMeta: true });
  }

  async #send(): Promise<void> {
    this.#sending = true;
    while (this.#pending.length > 0) {
      const writes = this.#pending;
      this.#pending = [];
      try {
        await this.#addWithTimeout(writes.flatMap((write) => write.jobs));
        for (const write of writes) write.resolve();
      } catch (error) {
        for (const write of writes) write.reject(error);
      }
    }
    this.#sending = false;
  }

  async #addWithTimeout(jobs: ActivityJob[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ActivityLogError(
              'QUEUE_UNAVAILABLE',
              `Redis at ${describeRedis(this.#options.redis)} did not accept ${jobs.length} job(s) within ${this.#enqueueTimeoutMs} ms`,
            ),
          ),
        this.#enqueueTimeoutMs,
      );
    });
    try {
      await Promise.race([this.#queue!.addBulk(jobs), timeout]);
    } catch (error) {
      if (error instanceof ActivityLogError) throw error;
      throw queueUnavailable(this.#options.redis, error);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#queue?.close();
    } finally {
      await closeRedis(this.#redis);
    }
  }
}
