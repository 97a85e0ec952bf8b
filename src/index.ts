export type { Config, ConfigOverrides } from './config/config.js';
export { loadConfig, readEnv } from './config/config.js';
export type {
  Activity,
  LogInput,
  ModelLike,
  ModelRef,
  ModelResolver,
} from './core/activity.js';
export { DEFAULT_REDACT_KEYS, defaultModelResolver, LIMITS } from './core/activity.js';
export type { ActivitySink } from './core/activity-sink.js';
export type { ActivityContext, RequestContextOptions } from './core/context.js';
export { currentContext, defaultRequestCauser, runWithContext } from './core/context.js';
export type { Delivery, DeliveryEvents } from './core/delivery.js';
export type { ErrorCode } from './core/errors.js';
export { ActivityLogError, ERROR_CODES, isActivityLogError } from './core/errors.js';
export type { ActivityBuilder } from './core/logger.js';
export type { PendingActivities } from './core/pending-activities.js';
export type { FailedJobInfo, QueueCounts, RetryResult } from './delivery/queue-admin.js';
export { QueueAdmin } from './delivery/queue-admin.js';
export { QUEUE_PREFIX, storedCounterKey } from './delivery/queue-keys.js';
export type { QueueSink, QueueSinkOptions } from './delivery/queue-sink.js';
export { createQueueSink } from './delivery/queue-sink.js';
export type { RedisDurability } from './delivery/redis-durability.js';
export type {
  JobFailedEvent,
  JobsReturnedEvent,
  StoredEvent,
  WorkerEvents,
  WorkerOptions,
  WorkerSettings,
  WorkerStopReason,
  WorkerSummary,
} from './delivery/worker.js';
export { ActivityWorker, startWorker } from './delivery/worker.js';
export type {
  BulkChange,
  ModelChangeDefaults,
  ModelEvent,
  ModelLogOptions,
} from './integrations/model-changes.js';
export { logBulkChange, MODEL_EVENTS } from './integrations/model-changes.js';
export type {
  AlertAction,
  AlertPayload,
  AlertRule,
  AlertSettings,
  AlertStateStore,
  RuleResult,
} from './metrics/alerts.js';
export {
  ALERT_RULES,
  AlertNotifier,
  evaluateRules,
  MemoryAlertState,
  RedisAlertState,
} from './metrics/alerts.js';
export type { CollectorCounters, ProcessReport } from './metrics/collector.js';
export { MetricsCollector } from './metrics/collector.js';
export type { HistoryMinute } from './metrics/minute-history.js';
export { Monitoring } from './metrics/monitoring.js';
export { PrometheusExporter } from './metrics/prometheus.js';
export type {
  BreakerJson,
  NamedBreakerJson,
  PerformanceData,
  PerformanceSnapshot,
  WorkerJson,
} from './metrics/snapshot.js';
export type {
  BreakerEvents,
  BreakerSnapshot,
  BreakerState,
  BreakerTransition,
  CircuitBreakerOptions,
} from './resilience/breaker.js';
export { CircuitBreaker } from './resilience/breaker.js';
export type { DrainSpoolOptions, DrainSpoolResult } from './resilience/drain-spool.js';
export { drainSpool } from './resilience/drain-spool.js';
export type { ResilientSinkEvents, ResilientSinkOptions, SpoolReason } from './resilience/resilient-sink.js';
export { ResilientSink, resilienceOf } from './resilience/resilient-sink.js';
export type { SpoolOptions, SpoolStatus } from './resilience/spool.js';
export { Spool } from './resilience/spool.js';
export type { ActivityLog, ActivityLogOptions, ComposedActivityLog } from './runtime/create-activity-log.js';
export { composeActivityLog, createActivityLog } from './runtime/create-activity-log.js';
export { createDelivery } from './runtime/create-delivery.js';
export type { MonitoringOptions } from './runtime/start-monitoring.js';
export { connectMonitoringReader, startMonitoring } from './runtime/start-monitoring.js';
export type {
  ActivityFilter,
  ActivityPage,
  ActivityQuery,
  ActivityStore,
  PruneOptions,
} from './store/activity-store.js';
export { createStore } from './store/create-store.js';
export { RetentionScheduler, type RetentionSchedulerOptions } from './store/retention.js';
