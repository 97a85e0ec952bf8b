export type { Config, ConfigOverrides } from './config/config.js';
export { loadConfig } from './config/config.js';
export type {
  Activity,
  LogInput,
  ModelLike,
  ModelRef,
  ModelResolver,
} from './core/activity.js';
export { DEFAULT_REDACT_KEYS, defaultModelResolver, LIMITS } from './core/activity.js';
export type { ActivityContext } from './core/context.js';
export { currentContext, runWithContext } from './core/context.js';
export type { ErrorCode } from './core/errors.js';
export { ActivityLogError, ERROR_CODES, isActivityLogError } from './core/errors.js';
export type { ActivityBuilder, ActivityLog, ActivityLogOptions } from './core/logger.js';
export { createActivityLog } from './core/logger.js';
export type { ActivitySink, Delivery, DeliveryEvents } from './delivery/delivery.js';
export type {
  ActivityFilter,
  ActivityPage,
  ActivityQuery,
  ActivityStore,
  PruneOptions,
} from './store/activity-store.js';
export { createStore } from './store/create-store.js';
