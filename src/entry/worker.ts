/** `activity-log/worker`: a queue worker inside any process (what `work` and `serve --worker` run). */
export type {
  JobFailedEvent,
  JobsReturnedEvent,
  StoredEvent,
  WorkerEvents,
  WorkerOptions,
  WorkerSettings,
  WorkerStopReason,
  WorkerSummary,
} from '../delivery/worker.js';
export { ActivityWorker, startWorker } from '../delivery/worker.js';
