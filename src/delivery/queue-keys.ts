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
