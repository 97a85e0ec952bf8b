/** `activity-log/queue`: the operations of the queue commands (counts, failed jobs, retry, flush, restart). */
export type { FailedJobInfo, QueueCounts, RetryResult } from '../delivery/queue-admin.js';
export { QueueAdmin } from '../delivery/queue-admin.js';
export { QUEUE_PREFIX, storedCounterKey } from '../delivery/queue-keys.js';
