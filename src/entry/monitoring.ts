/** `activity-log/monitoring`: the performance snapshot, Prometheus text and alerts of a process. */
export type { AlertAction, AlertPayload, AlertRule, AlertSettings, RuleResult } from '../metrics/alerts.js';
export { ALERT_RULES, evaluateRules } from '../metrics/alerts.js';
export type { CollectorCounters, CollectorParts, ProcessReport } from '../metrics/collector.js';
export { MetricsCollector } from '../metrics/collector.js';
export type { HistoryMinute } from '../metrics/minute-history.js';
export type { IntegritySource, Monitoring } from '../metrics/monitoring.js';
export type {
  BreakerJson,
  CheckpointJson,
  IntegrityJson,
  NamedBreakerJson,
  PerformanceData,
  PerformanceSnapshot,
  VerifyJson,
  WorkerJson,
} from '../metrics/snapshot.js';
export type { MonitoringOptions } from '../runtime/start-monitoring.js';
export { connectMonitoringReader, startMonitoring } from '../runtime/start-monitoring.js';
