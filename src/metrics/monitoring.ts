import type { Redis } from 'ioredis';
import type { Config } from '../config/config.js';
import type { Delivery } from '../core/delivery.js';
import type { ActivityLog } from '../core/logger.js';
import { metricsKeys } from '../delivery/queue-keys.js';
import { closeRedis, connectRedis, createRedisClient, whenConnected } from '../delivery/redis-connection.js';
import type { ActivityWorker } from '../delivery/worker.js';
import {
  AlertNotifier,
  type AlertPayload,
  type AlertSettings,
  MemoryAlertState,
  RedisAlertState,
} from './alerts.js';
import { MetricsCollector, type ProcessReport, roundTo } from './collector.js';
import { mergeLagBuckets } from './lag-histogram.js';
import { PrometheusExporter } from './prometheus.js';
import {
  ClusterReader,
  type ClusterState,
  DEFAULT_HEARTBEAT_TTL_MS,
  MetricsPublisher,
  recordQueueSize,
} from './redis-metrics.js';
import { composeSnapshot, type PerformanceSnapshot, type SnapshotInput, totalsOf } from './snapshot.js';

/** Alerts are evaluated this often by default. */
export const DEFAULT_ALERT_INTERVAL_MS = 15_000;

export interface MonitoringOptions {
  readonly config: Config;
  /** Counted: its delivery's events, breaker and spool. */
  readonly activityLog?: ActivityLog | undefined;
  /** Counted: its stored and failed jobs, and its store breaker. */
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
  };
}

/**
 * Monitoring of one process: a {@link MetricsCollector} on its delivery and worker, and — with
 * the queue — a publisher that shares its figures through Redis and a reader that adds up every
 * live process's. Serves the performance snapshot, the Prometheus text and the alerts.
 *
 * @example
 * const monitoring = startMonitoring({ config: activityLog.config, activityLog });
 * const { data } = await monitoring.snapshot();
 * await monitoring.close();
 */
export class Monitoring {
  readonly collector: MetricsCollector;
  readonly config: Config;
  readonly #redis: Redis | null;
  readonly #publisher: MetricsPublisher | null;
  readonly #reader: ClusterReader | null;
  #exporter: PrometheusExporter | null = null;
  readonly #notifier: AlertNotifier;
  readonly #counting: boolean;
  readonly #log: (line: string) => void;
  #alertTimer: NodeJS.Timeout | null = null;
  #alertRun: Promise<unknown> | null = null;
  #lastRedisWarningMs = 0;
  #closed = false;
  readonly #delivery: Delivery | null;

  constructor(options: MonitoringOptions, redis: Redis | null) {
    const { config } = options;
    this.config = config;
    this.#log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.#delivery = options.activityLog?.delivery ?? null;
    this.collector = this.#delivery === null ? new MetricsCollector() : acquireCollector(this.#delivery);
    if (options.worker !== undefined && options.worker !== null) this.collector.watchWorker(options.worker);
    this.#counting = options.activityLog !== undefined || (options.worker ?? null) !== null;
    this.#redis = redis;
    const heartbeatTtlMs = options.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
    this.#reader = redis === null ? null : new ClusterReader(redis, config.queueName, heartbeatTtlMs);
    this.#publisher =
      redis === null || !this.#counting
        ? null
        : new MetricsPublisher({
            redis,
            queueName: config.queueName,
            collector: this.collector,
            heartbeatTtlMs,
            ...(options.publishIntervalMs === undefined
              ? {}
              : { publishIntervalMs: options.publishIntervalMs }),
            onError: (error) => this.#warnRedis('could not publish metrics to Redis', error),
          });
    this.#publisher?.start();
    this.#notifier = new AlertNotifier({
      settings: alertSettingsOf(config),
      state:
        redis === null
          ? new MemoryAlertState()
          : new RedisAlertState(redis, (rule) => metricsKeys(config.queueName).alert(rule)),
      queueName: config.queueName,
      log: this.#log,
    });
    if (options.alerts ?? this.#counting) {
      this.#alertTimer = setInterval(() => {
        if (this.#alertRun === null)
          this.#alertRun = this.checkAlerts()
            .catch((error: unknown) => this.#warnRedis('could not evaluate alerts', error))
            .finally(() => {
              this.#alertRun = null;
            });
      }, options.alertIntervalMs ?? DEFAULT_ALERT_INTERVAL_MS);
      this.#alertTimer.unref();
    }
  }

  /** Whether figures come from every process through Redis. */
  get shared(): boolean {
    return this.#redis !== null;
  }

  /** The performance snapshot (`GET /api/backoffice/activity-logs/performance`). */
  async snapshot(): Promise<PerformanceSnapshot> {
    return composeSnapshot(await this.#gather());
  }

  /** The Prometheus text (`GET /metrics`). */
  async prometheus(): Promise<string> {
    const input = await this.#gather();
    const data = composeSnapshot(input).data;
    return this.#prometheusExporter().render({
      data,
      lagTotal: mergeLagBuckets(input.reports.map((report) => report.lag.total)),
    });
  }

  get prometheusContentType(): string {
    return this.#prometheusExporter().contentType;
  }

  /** Made on first use: the default process metrics start observing the event loop. */
  #prometheusExporter(): PrometheusExporter {
    this.#exporter ??= new PrometheusExporter();
    return this.#exporter;
  }

  /** Evaluates the alert rules now; records the queue size in the history as it goes. */
  async checkAlerts(): Promise<AlertPayload[]> {
    const { data } = await this.snapshot();
    if (this.#redis !== null && data.source === 'redis') {
      await recordQueueSize(this.#redis, this.config.queueName, data.queue_size, Date.now()).catch(
        () => undefined,
      );
    } else {
      this.collector.recordQueueSize(data.queue_size);
    }
    return this.#notifier.check(data);
  }

  /** Publishes a last time, removes this process's heartbeat and stops every timer. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#alertTimer !== null) clearInterval(this.#alertTimer);
    await this.#alertRun;
    try {
      await this.#publisher?.close();
      await this.#reader?.close().catch(() => undefined);
    } finally {
      if (this.#delivery === null) this.collector.close();
      else releaseCollector(this.#delivery);
      if (this.#redis !== null) await closeRedis(this.#redis);
    }
  }

  async #gather(): Promise<SnapshotInput> {
    const nowMs = Date.now();
    const own = await this.collector.report();
    const memoryMb = roundTo(process.memoryUsage.rss() / (1024 * 1024), 1);
    const method = this.config.method;
    if (this.#reader !== null) {
      let cluster: ClusterState | null = null;
      try {
        await whenConnected(this.#redis!, 1000);
        cluster = await this.#reader.read(nowMs);
      } catch (error) {
        this.#warnRedis('could not read metrics from Redis; showing this process only', error);
      }
      if (cluster !== null) {
        const reports: ProcessReport[] = cluster.reports.filter((report) => report.id !== own.id);
        if (this.#counting) reports.push(own);
        return {
          method,
          source: 'redis',
          reports,
          totals: cluster.totals,
          queue: cluster.queue,
          history: cluster.history,
          memoryMb,
          nowMs,
        };
      }
    }
    return {
      method,
      source: 'process',
      reports: [own],
      totals: totalsOf(own),
      queue: null,
      history: own.history,
      memoryMb,
      nowMs,
    };
  }

  #warnRedis(message: string, error: unknown): void {
    if (this.#closed) return;
    const nowMs = Date.now();
    // One line a minute at most while Redis is away.
    if (nowMs - this.#lastRedisWarningMs < 60_000) return;
    this.#lastRedisWarningMs = nowMs;
    this.#log(`activity-log: warning: ${message}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * One collector per delivery, shared by every monitoring of it (a server and the application's
 * own `startMonitoring`), so each activity is counted once, under one process id.
 */
const COLLECTORS = new WeakMap<Delivery, { readonly collector: MetricsCollector; users: number }>();

function acquireCollector(delivery: Delivery): MetricsCollector {
  let shared = COLLECTORS.get(delivery);
  if (shared === undefined) {
    const collector = new MetricsCollector();
    collector.watchDelivery(delivery);
    shared = { collector, users: 0 };
    COLLECTORS.set(delivery, shared);
  }
  shared.users++;
  return shared.collector;
}

function releaseCollector(delivery: Delivery): void {
  const shared = COLLECTORS.get(delivery);
  if (shared === undefined || --shared.users > 0) return;
  COLLECTORS.delete(delivery);
  shared.collector.close();
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
 * const monitoring = startMonitoring({ config, activityLog, worker });
 * app.get('/perf', async () => monitoring.snapshot());
 */
export function startMonitoring(options: MonitoringOptions): Monitoring {
  const shared = options.shared ?? sharesThroughRedis(options.config, (options.worker ?? null) !== null);
  const redis = shared
    ? createRedisClient(options.config.redis, 'metrics', { onError: () => undefined })
    : null;
  return new Monitoring(options, redis);
}

/**
 * Monitoring that only reads (the `status` command): connects to Redis first, failing with
 * `QUEUE_UNAVAILABLE` when it does not answer, and counts nothing itself.
 */
export async function connectMonitoringReader(config: Config): Promise<Monitoring> {
  if (!sharesThroughRedis(config, false)) return new Monitoring({ config, alerts: false }, null);
  const redis = createRedisClient(config.redis, 'command', { lazyConnect: true });
  await connectRedis(redis, config.redis);
  return new Monitoring({ config, alerts: false }, redis);
}
