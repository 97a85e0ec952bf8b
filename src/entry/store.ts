/** `activity-log/store`: the store of a database configuration, its migration, and scheduled pruning. */
export type {
  ActivityStore,
  MigrateResult,
  PruneOptions,
  StoreCapabilities,
} from '../store/activity-store.js';
export { createStore } from '../store/create-store.js';
export type { RetentionSchedulerOptions } from '../store/retention.js';
export { RetentionScheduler } from '../store/retention.js';
