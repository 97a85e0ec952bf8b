/**
 * Every Redis key this library writes starts with this prefix. The braces are a Redis Cluster
 * hash tag: all keys hash to one slot, so BullMQ's multi-key scripts work unchanged on a cluster.
 * BullMQ's own keys look like `{activity-log}:activity-logs:wait`.
 */
export const QUEUE_PREFIX = '{activity-log}';

/** BullMQ job name of every activity job. */
export const ACTIVITY_JOB_NAME = 'activities';

/*
 * Our own keys have two segments (`{activity-log}:restart`) or end in a word no job id can be
 * (job ids are numbers or 22-character hashes), so they never collide with BullMQ's
 * `{activity-log}:<queue>:<type or job id>` keys.
 */

/**
 * Restart marker: the Redis server time (ms) of the last `activity-log restart`. Without a queue
 * name it addresses every worker; with one, only the workers of that queue.
 */
export function restartMarkerKey(queueName?: string): string {
  return queueName === undefined ? `${QUEUE_PREFIX}:restart` : `${QUEUE_PREFIX}:${queueName}:restart`;
}

/** Counter of activities stored by the workers of a queue (new rows), kept across processes. */
export function storedCounterKey(queueName: string): string {
  return `${QUEUE_PREFIX}:${queueName}:stored-activities`;
}

/**
 * Ids of the jobs the workers of a queue stored, scored by when (ms), kept for
 * {@link STORED_JOBS_KEEP_MS}: a producer that journals to disk keeps each enqueued batch until its
 * job id is here, so a Redis that loses its jobs loses nothing the producer acknowledged.
 */
export function storedJobsKey(queueName: string): string {
  return `${QUEUE_PREFIX}:${queueName}:stored-jobs`;
}

/** How long a stored job's id stays in {@link storedJobsKey}; producers check far more often. */
export const STORED_JOBS_KEEP_MS = 10 * 60 * 1000;

/** Redis keys of the monitoring data of one queue (see `metrics/redis-metrics.ts`). */
export function metricsKeys(queueName: string) {
  const base = `${QUEUE_PREFIX}:${queueName}:metrics`;
  return {
    /** Sorted set: process id → last heartbeat (ms). */
    processes: `${base}:processes`,
    /** String with a TTL: one process's report as JSON. */
    process: (id: string) => `${base}:process:${id}`,
    /** Hash of totals across processes and restarts. */
    totals: `${base}:totals`,
    /** Hash: what one process has added to `totals` so far. */
    totalsFrom: (id: string) => `${base}:totals:from:${id}`,
    /** Hash per minute: stored, failures, queue_size and one count per lag bucket (`lag_<ms>`, `lag_inf`). */
    minute: (epochMinute: number) => `${base}:minute:${epochMinute}`,
    /** Hash: what one process has added to a minute's hash so far. */
    minuteFrom: (epochMinute: number, id: string) => `${base}:minute:${epochMinute}:from:${id}`,
    /** Hash per alert rule: its state, shared by every process that evaluates alerts. */
    alert: (rule: string) => `${base}:alert:${rule}`,
    pattern: `${base}:*`,
  };
}
