import type { Config } from '../config/config.js';
import type { ActivityEventBus } from '../core/activity-events.js';
import type { CircuitBreaker } from '../resilience/breaker.js';
import type { ActivityStore } from '../store/activity-store.js';
import type { StopLimits } from './worker-stop-policy.js';

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
  /** Where the worker reports `stored`, `writeFailed`, its breaker's state and refused activities (default: a bus of its own). */
  readonly bus?: ActivityEventBus | undefined;
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

/** The settings a worker runs with, after defaults. */
export interface WorkerSettings {
  readonly queueName: string;
  readonly tries: number;
  readonly timeoutSeconds: number;
  readonly retryAfterSeconds: number;
  readonly concurrency: number;
  readonly batchSize: number;
}

/** A worker's options after defaults, as its parts read them. */
export interface ResolvedWorkerOptions extends StopLimits {
  readonly queueName: string;
  readonly tries: number;
  readonly timeoutMs: number;
  readonly concurrency: number;
  readonly batchSize: number;
  readonly mergeJobs: boolean;
  readonly pollIntervalMs: number;
  /** BullMQ's `drainDelay`: how long an idle worker blocks waiting for a job. */
  readonly drainDelaySeconds: number;
}

/** Fills in the defaults; `once` means one job, taken alone and stored alone. */
export function resolveWorkerOptions(options: WorkerOptions): ResolvedWorkerOptions {
  const { config } = options;
  const once = options.once ?? false;
  return {
    queueName: options.queueName ?? config.queueName,
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
