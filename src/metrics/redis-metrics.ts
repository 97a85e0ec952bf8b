import type { Queue } from 'bullmq';
import { openQueue } from '../delivery/open-queue.js';
import type { ActivityJobData } from '../delivery/queue-job.js';
import { metricsKeys, storedCounterKey } from '../delivery/queue-keys.js';
import { deleteKeysMatching, type RedisClient, whenConnected } from '../delivery/redis-connection.js';
import type { MetricsCollector, ProcessReport } from './collector.js';
import { LAG_BUCKETS_MS } from './lag-histogram.js';
import { HISTORY_MINUTES, type MinuteValues } from './minute-history.js';
import { type QueueFigures, TOTAL_NAMES, type TotalName, totalsOf } from './snapshot.js';

/** A process that has not published for this long is gone from the snapshot. */
export const DEFAULT_HEARTBEAT_TTL_MS = 15_000;
/** Each process publishes its report this often. */
export const DEFAULT_PUBLISH_INTERVAL_MS = 2_000;
/** Per-minute history keys live this long, so the history never holds more than about two hours. */
const HISTORY_KEY_TTL_SECONDS = 2 * 60 * 60;
/**
 * Per-minute hash field of each lag bucket: `lag_<upper bound ms>`, then `lag_inf`; each holds
 * the activities stored that minute whose lag fell in that bucket (not cumulative).
 */
const LAG_FIELDS: readonly string[] = [...LAG_BUCKETS_MS.map((bound) => `lag_${bound}`), 'lag_inf'];

/** How long a process's record of what it added to the totals outlives its last round. */
const TOTALS_FROM_TTL_SECONDS = 24 * 60 * 60;

/**
 * Adds a process's counters to a shared hash idempotently: the process sends its absolute
 * counts, and the script adds only what exceeds what it recorded for that process last time.
 * A round whose EXEC timed out after Redis applied it, or two rounds that overlap, therefore
 * never count anything twice, and a round that failed is made up by the next.
 * KEYS[1] the shared hash, KEYS[2] the process's record; ARGV[1] TTL of the shared hash in
 * seconds (0: none), ARGV[2] TTL of the record, then field/absolute pairs.
 */
const ADD_ABSOLUTE = `
for i = 3, #ARGV, 2 do
  local field = ARGV[i]
  local absolute = tonumber(ARGV[i + 1])
  local recorded = tonumber(redis.call('HGET', KEYS[2], field) or '0')
  if absolute > recorded then
    redis.call('HINCRBY', KEYS[1], field, absolute - recorded)
    redis.call('HSET', KEYS[2], field, absolute)
  end
end
if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 0
`;

export interface MetricsPublisherOptions {
  readonly redis: RedisClient;
  readonly queueName: string;
  readonly collector: MetricsCollector;
  readonly publishIntervalMs?: number;
  readonly heartbeatTtlMs?: number;
  /** Publishing failed (Redis down); the next round tries again with everything not yet counted. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Publishes a process's report and heartbeat to Redis every `publishIntervalMs`, under a key that
 * expires after `heartbeatTtlMs` — a process that dies disappears on its own — and adds what its
 * counters gained since the last round to the queue's totals and per-minute history, which
 * therefore survive restarts. `close()` publishes a last time and removes the heartbeat.
 *
 * @example
 * const publisher = new MetricsPublisher({ redis, queueName: 'activity-logs', collector });
 * publisher.start();
 * await publisher.close();
 */
export class MetricsPublisher {
  readonly #options: MetricsPublisherOptions;
  readonly #keys: ReturnType<typeof metricsKeys>;
  readonly #intervalMs: number;
  readonly #ttlMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  /** Each minute's counts as Redis confirmed them: a minute that has not changed since is not sent. */
  #acknowledgedMinutes = new Map<number, string>();
  #closed = false;

  constructor(options: MetricsPublisherOptions) {
    this.#options = options;
    this.#keys = metricsKeys(options.queueName);
    this.#intervalMs = options.publishIntervalMs ?? DEFAULT_PUBLISH_INTERVAL_MS;
    this.#ttlMs = options.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
  }

  start(): void {
    if (this.#timer !== null || this.#closed) return;
    void whenConnected(this.#options.redis, 2000).then(() => this.publish());
    this.#timer = setInterval(() => void this.publish(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Publishes now (after a round already running); never rejects. */
  async publish(): Promise<void> {
    // Several callers may wait for the same round; the first to wake starts the next.
    while (this.#running !== null) await this.#running;
    this.#running = this.#publishOnce()
      .catch((error: unknown) => this.#options.onError?.(error))
      .finally(() => {
        this.#running = null;
      });
    return this.#running;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    const { redis, collector } = this.#options;
    // Without a connection there is nothing to tidy: the heartbeat expires on its own.
    if (redis.status !== 'ready') return;
    await this.publish();
    await redis
      .multi()
      .del(this.#keys.process(collector.id))
      .zrem(this.#keys.processes, collector.id)
      .exec()
      .catch((error: unknown) => this.#options.onError?.(error));
  }

  async #publishOnce(): Promise<void> {
    const { redis, collector } = this.#options;
    const report = await collector.report();
    const totals = totalsOf(report);
    const nowMs = report.heartbeat_at_ms;
    const multi = redis.multi();
    if (!this.#closed) {
      multi
        .set(this.#keys.process(collector.id), JSON.stringify(report), 'PX', this.#ttlMs)
        .zadd(this.#keys.processes, nowMs, collector.id);
    }
    multi.zremrangebyscore(this.#keys.processes, '-inf', nowMs - this.#ttlMs);
    multi.eval(
      ADD_ABSOLUTE,
      2,
      this.#keys.totals,
      this.#keys.totalsFrom(collector.id),
      0,
      TOTALS_FROM_TTL_SECONDS,
      ...TOTAL_NAMES.flatMap((name) => [name, totals[name]]),
    );
    const sent = new Map<number, string>();
    for (const minute of report.history) {
      const counts: (string | number)[] = ['stored', minute.stored, 'failures', minute.failures];
      LAG_FIELDS.forEach((field, index) => {
        counts.push(field, minute.lagCounts[index] ?? 0);
      });
      const signature = counts.join(',');
      sent.set(minute.epochMinute, signature);
      if (this.#acknowledgedMinutes.get(minute.epochMinute) === signature) continue;
      multi.eval(
        ADD_ABSOLUTE,
        2,
        this.#keys.minute(minute.epochMinute),
        this.#keys.minuteFrom(minute.epochMinute, collector.id),
        HISTORY_KEY_TTL_SECONDS,
        HISTORY_KEY_TTL_SECONDS,
        ...counts,
      );
    }
    const results = await multi.exec();
    const failed = results?.find(([error]) => error !== null);
    if (results === null || failed !== undefined) throw failed?.[0] ?? new Error('MULTI was discarded');
    this.#acknowledgedMinutes = sent;
  }
}

/** Records the queue size seen now in the queue's per-minute history (any process may). */
export async function recordQueueSize(
  redis: RedisClient,
  queueName: string,
  queueSize: number,
  nowMs: number,
): Promise<void> {
  const key = metricsKeys(queueName).minute(Math.floor(nowMs / 60_000));
  await redis.multi().hset(key, 'queue_size', queueSize).expire(key, HISTORY_KEY_TTL_SECONDS).exec();
}

/** What the aggregating process reads from Redis. */
export interface ClusterState {
  readonly reports: readonly ProcessReport[];
  readonly totals: Record<TotalName, number>;
  readonly queue: QueueFigures;
  readonly history: readonly MinuteValues[];
}

/**
 * Reads every live process's report, the totals, the per-minute history and the queue's job
 * counts. A few round trips whatever the number of processes (one MGET for all reports).
 */
export class ClusterReader {
  readonly #redis: RedisClient;
  readonly #queueName: string;
  readonly #keys: ReturnType<typeof metricsKeys>;
  readonly #queue: Queue<ActivityJobData>;
  readonly #heartbeatTtlMs: number;

  constructor(redis: RedisClient, queueName: string, heartbeatTtlMs = DEFAULT_HEARTBEAT_TTL_MS) {
    this.#redis = redis;
    this.#queueName = queueName;
    this.#keys = metricsKeys(queueName);
    this.#heartbeatTtlMs = heartbeatTtlMs;
    this.#queue = openQueue<ActivityJobData>(redis, queueName);
  }

  async read(nowMs: number): Promise<ClusterState> {
    const ids = await this.#redis.zrangebyscore(this.#keys.processes, nowMs - this.#heartbeatTtlMs, '+inf');
    const minuteNow = Math.floor(nowMs / 60_000);
    const minutes = Array.from({ length: HISTORY_MINUTES }, (_, i) => minuteNow - HISTORY_MINUTES + 1 + i);
    const pipeline = this.#redis.pipeline();
    pipeline.hgetall(this.#keys.totals);
    pipeline.get(storedCounterKey(this.#queueName));
    for (const minute of minutes) pipeline.hgetall(this.#keys.minute(minute));
    const [rawReports, results, counts] = await Promise.all([
      ids.length === 0 ? Promise.resolve([]) : this.#redis.mget(ids.map((id) => this.#keys.process(id))),
      pipeline.exec(),
      this.#queue.getJobCounts('wait', 'prioritized', 'paused', 'delayed', 'active', 'failed'),
    ]);
    const failedRead = results?.find(([error]) => error !== null);
    if (results === null || failedRead !== undefined)
      throw failedRead?.[0] ?? new Error('pipeline discarded');
    const reports: ProcessReport[] = [];
    for (const raw of rawReports) {
      if (raw === null) continue;
      try {
        reports.push(JSON.parse(raw) as ProcessReport);
      } catch {
        // A report cut short cannot be read; the next heartbeat replaces it.
      }
    }
    const totalsHash = (results[0]![1] ?? {}) as Record<string, string>;
    const totals = zeroTotals();
    for (const name of TOTAL_NAMES) totals[name] = Number(totalsHash[name] ?? 0);
    const count = (state: string) => counts[state] ?? 0;
    const history = minutes.map((epochMinute, index): MinuteValues => {
      const hash = (results[2 + index]![1] ?? {}) as Record<string, string>;
      return {
        epochMinute,
        stored: Number(hash.stored ?? 0),
        failures: Number(hash.failures ?? 0),
        queueSize: hash.queue_size === undefined ? null : Number(hash.queue_size),
        lagCounts: LAG_FIELDS.map((field) => Number(hash[field] ?? 0)),
      };
    });
    return {
      reports: reports.sort((a, b) => a.started_at_ms - b.started_at_ms),
      totals,
      queue: {
        waiting: count('wait') + count('prioritized') + count('paused'),
        delayed: count('delayed'),
        active: count('active'),
        failed: count('failed'),
        storedActivities: Number((results[1]![1] as string | null) ?? 0),
      },
      history,
    };
  }

  async close(): Promise<void> {
    await this.#queue.close();
  }
}

/** Deletes every monitoring key of a queue (tests, decommissioning). */
export async function removeMetricsKeys(redis: RedisClient, queueName: string): Promise<void> {
  await deleteKeysMatching(redis, metricsKeys(queueName).pattern);
}

function zeroTotals(): Record<TotalName, number> {
  return Object.fromEntries(TOTAL_NAMES.map((name) => [name, 0])) as Record<TotalName, number>;
}
