/**
 * `activity-log/store`: the store of a database configuration, its migration, scheduled pruning,
 * and erasure of personal data.
 */
export type {
  ActivityStore,
  MigrateResult,
  PruneOptions,
  StoreCapabilities,
} from '../store/activity-store.js';
export { createStore } from '../store/create-store.js';
export type { EraseOptions, EraseResult, ErasureSelector } from '../store/erase.js';
export { eraseActivities } from '../store/erase.js';
export type { RetentionSchedulerOptions } from '../store/retention.js';
export { RetentionScheduler } from '../store/retention.js';
