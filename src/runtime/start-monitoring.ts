import type { Config } from '../config/config.js';
import { metricsKeys } from '../delivery/queue-keys.js';
import { connectRedis, createRedisClient, type RedisClient } from '../delivery/redis-connection.js';
import type { ActivityWorker } from '../delivery/worker.js';
import { AlertNotifier, type AlertSettings, MemoryAlertState, RedisAlertState } from '../metrics/alerts.js';
import { MetricsCollector } from '../metrics/collector.js';
import { type CaptureFiguresSource, type IntegritySource, Monitoring } from '../metrics/monitoring.js';
import { ClusterReader, DEFAULT_HEARTBEAT_TTL_MS, MetricsPublisher } from '../metrics/redis-metrics.js';
import { CaptureWatch } from './capture-watch.js';

/** Alerts are evaluated this often by default. */
export const DEFAULT_ALERT_INTERVAL_MS = 15_000;

export interface MonitoringOptions {
  readonly config: Config;
  /** What is counted: the `collector` of {@link composeActivityLog}. Monitorings of one collector count each activity once. */
  readonly collector?: MetricsCollector | undefined;
  /** Counted too: its stored and failed jobs (on its bus) and its store breaker. */
  readonly worker?: ActivityWorker | null | undefined;
  /**
   * Share figures through Redis: publish this process's report and read everyone's. Default: on
   * with the queue (`ACTIVITY_LOG_METHOD=queue`, or a worker given) and `QUEUE_CONNECTION=redis`.
   */
  readonly shared?: boolean;
  /** Evaluate the alert rules periodically (default true when something is counted). */
  readonly alerts?: boolean;
  readonly alertIntervalMs?: number;
  readonly publishIntervalMs?: number;
  readonly heartbeatTtlMs?: number;
  /** Where alert and warning lines go (default stderr). */
  readonly log?: (line: string) => void;
  /** The seal chain this process watches: the snapshot's `integrity` (see `IntegrityWatch`). */
  readonly integrity?: IntegritySource | null;
  /** The capture processes' figures: the snapshot's `capture` (see `CaptureWatch`). */
  readonly capture?: CaptureFiguresSource | null;
}

/** The alert settings of a configuration. */
export function alertSettingsOf(config: Config): AlertSettings {
  return {
    webhookUrl: config.alertWebhook,
    errorRatePercent: config.alertErrorRate,
    queueSize: config.alertQueueSize,
    breakerOpenSeconds: config.alertBreakerOpenSeconds,
    lagP99Ms: config.alertLagP99Ms,
    cooldownSeconds: config.alertCooldownSeconds,
    checkpointBehindSeconds: 2 * config.checkpointIntervalSeconds,
  };
}

/** Whether a configuration shares metrics through Redis by default. */
export function sharesThroughRedis(config: Config, worker: boolean): boolean {
  return config.queueConnection === 'redis' && (config.method === 'queue' || worker);
}

/**
 * Starts monitoring a process: counts what its delivery and worker report, shares it through
 * Redis with the queue, evaluates alerts. The Redis connection reconnects on its own and never
 * makes a caller wait; while Redis is away the snapshot shows this process alone.
 *
 * @example
 * const { activityLog, config, collector } = composeActivityLog();
 * const monitoring = startMonitoring({ config, collector });
 * app.get('/perf', async () => monitoring.snapshot());
 */
export function startMonitoring(options: MonitoringOptions): Monitoring {
  const shared = options.shared ?? sharesThroughRedis(options.config, (options.worker ?? null) !== null);
  const redis = shared
    ? createRedisClient(options.config.redis, 'metrics', { onError: () => undefined })
    : null;
  return assembleMonitoring(options, redis);
}

/**
 * Monitoring that only reads (the `status` command): connects to Redis first, failing with
 * `QUEUE_UNAVAILABLE` when it does not answer, and counts nothing itself.
 */
export async function connectMonitoringReader(config: Config): Promise<Monitoring> {
  if (!sharesThroughRedis(config, false)) return assembleMonitoring({ config, alerts: false }, null);
  const redis = createRedisClient(config.redis, 'command', { lazyConnect: true });
  await connectRedis(redis, config.redis);
  return assembleMonitoring({ config, alerts: false, capture: new CaptureWatch(config.database) }, redis);
}

function assembleMonitoring(options: MonitoringOptions, redis: RedisClient | null): Monitoring {
  const { config } = options;
  const worker = options.worker ?? null;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const collector = options.collector ?? new MetricsCollector();
  if (worker !== null) {
    collector.listen(worker.bus);
    collector.include({ worker });
  }
  const counting = options.collector !== undefined || worker !== null;
  const heartbeatTtlMs = options.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
  return new Monitoring({
    config,
    collector,
    // A given collector belongs to its activity log, which closes it.
    releaseCollector: () => (options.collector === undefined ? collector.close() : undefined),
    redis,
    reader: redis === null ? null : new ClusterReader(redis, config.queueName, heartbeatTtlMs),
    publisher:
      redis === null || !counting
        ? null
        : (onError) =>
            new MetricsPublisher({
              redis,
              queueName: config.queueName,
              collector,
              heartbeatTtlMs,
              ...(options.publishIntervalMs === undefined
                ? {}
                : { publishIntervalMs: options.publishIntervalMs }),
              onError,
            }),
    notifier: new AlertNotifier({
      settings: alertSettingsOf(config),
      state:
        redis === null
          ? new MemoryAlertState()
          : new RedisAlertState(redis, (rule) => metricsKeys(config.queueName).alert(rule)),
      queueName: config.queueName,
      log,
    }),
    counting,
    integrity: options.integrity ?? null,
    capture: options.capture ?? null,
    alertIntervalMs:
      (options.alerts ?? counting) ? (options.alertIntervalMs ?? DEFAULT_ALERT_INTERVAL_MS) : null,
    log,
  });
}
