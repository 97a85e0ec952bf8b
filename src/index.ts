/**
 * `activity-log`: what an application uses to record and read its activity log. Advanced parts
 * have subpaths of their own: `activity-log/worker`, `/queue`, `/monitoring`, `/store`,
 * `/resilience`, `/delivery`, and the integrations `/express`, `/fastify`, `/typeorm`, `/sequelize`.
 */
export type { Config, ConfigOverrides } from './config/config.js';
export { loadConfig, readEnv } from './config/config.js';
export type { Activity, LogInput, ModelLike, ModelRef, ModelResolver } from './core/activity.js';
export type {
  ActivityEventBus,
  ActivityEvents,
  SpoolReason,
  StoredEvent,
  WriteFailedEvent,
} from './core/activity-events.js';
export type { ActivityContext } from './core/context.js';
export { currentContext, defaultRequestCauser, runWithContext } from './core/context.js';
export type { ErrorCode } from './core/errors.js';
export { ActivityLogError, ERROR_CODES, isActivityLogError } from './core/errors.js';
export type { ActivityBuilder } from './core/logger.js';
export type { PendingActivities } from './core/pending-activities.js';
export type { BulkChange } from './integrations/model-changes.js';
export { logBulkChange } from './integrations/model-changes.js';
export type { ActivityLog, ActivityLogOptions, ComposedActivityLog } from './runtime/create-activity-log.js';
export { composeActivityLog, createActivityLog } from './runtime/create-activity-log.js';
export type { SqlExecutor, TagDialect, TagTransactionOptions } from './runtime/tag-transaction.js';
export type { ActivityFilter, ActivityPage, ActivityQuery } from './store/activity-store.js';
