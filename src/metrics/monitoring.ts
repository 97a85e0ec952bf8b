import type { Config } from '../config/config.js';
import { closeRedis, type RedisClient, whenConnected } from '../delivery/redis-connection.js';
import type { AlertNotifier, AlertPayload } from './alerts.js';
import { type CaptureReport, captureJsonOf } from './capture-figures.js';
import { type MetricsCollector, type ProcessReport, roundTo } from './collector.js';
import { mergeLagBuckets } from './lag-histogram.js';
import { PrometheusExporter } from './prometheus.js';
import {
  type ClusterReader,
  type ClusterState,
  type MetricsPublisher,
  recordQueueSize,
} from './redis-metrics.js';
import {
  composeSnapshot,
  type IntegrityJson,
  type PerformanceSnapshot,
  type SnapshotInput,
  totalsOf,
} from './snapshot.js';

/** What the snapshot's `integrity` is read from: the seal chain a process watches. */
export interface IntegritySource {
  /** The figures now; never rejects (what cannot be read is said in them). */
  figures(nowMs: number): Promise<IntegrityJson>;
}

/** Where the snapshot's `capture` is read from: the figures capture processes wrote. */
export interface CaptureFiguresSource {
  /** Every stream's last report; never rejects (nothing is shown when they cannot be read). */
  reports(): Promise<readonly CaptureReport[]>;
  /** Called when the monitoring closes. */
  close(): Promise<void>;
}

/** What a {@link Monitoring} is made of; `startMonitoring` assembles them. */
export interface MonitoringParts {
  readonly config: Config;
  /** Counts this process; another monitoring of the same activity log may share it. */
  readonly collector: MetricsCollector;
  /** Called once on close, instead of closing a collector others may still use. */
  readonly releaseCollector: () => void;
  /** The connection figures are shared through; closed with the monitoring. Null: this process only. */
  readonly redis: RedisClient | null;
  /** Adds up every live process's figures (with `redis`). */
  readonly reader: ClusterReader | null;
  /** Publishes this process's figures (with `redis`, when it counts anything); started here. */
  readonly publisher: ((onError: (error: unknown) => void) => MetricsPublisher) | null;
  readonly notifier: AlertNotifier;
  /** Whether this process counts anything itself: its own report is part of the snapshot. */
  readonly counting: boolean;
  /** Evaluate the alert rules this often; null: only when {@link Monitoring.checkAlerts} is called. */
  readonly alertIntervalMs: number | null;
  /** Where warning lines go. */
  readonly log: (line: string) => void;
  /** The seal chain this process watches (`integrity` in the snapshot); null: none. */
  readonly integrity?: IntegritySource | null;
  /** The capture processes' figures (the snapshot's `capture`); null: none shown. */
  readonly capture?: CaptureFiguresSource | null;
}

/**
 * Monitoring of one process: a {@link MetricsCollector} on its delivery and worker, and — with
 * the queue — a publisher that shares its figures through Redis and a reader that adds up every
 * live process's. Serves the performance snapshot, the Prometheus text and the alerts.
 *
 * @example
 * const monitoring = startMonitoring({ config, delivery });
 * const { data } = await monitoring.snapshot();
 * await monitoring.close();
 */
export class Monitoring {
  readonly collector: MetricsCollector;
  readonly config: Config;
  readonly #redis: RedisClient | null;
  readonly #publisher: MetricsPublisher | null;
  readonly #reader: ClusterReader | null;
  #exporter: PrometheusExporter | null = null;
  readonly #notifier: AlertNotifier;
  readonly #counting: boolean;
  readonly #log: (line: string) => void;
  readonly #releaseCollector: () => void;
  readonly #integrity: IntegritySource | null;
  readonly #capture: CaptureFiguresSource | null;
  #alertTimer: NodeJS.Timeout | null = null;
  #alertRun: Promise<unknown> | null = null;
  #lastRedisWarningMs = 0;
  #closed = false;

  constructor(parts: MonitoringParts) {
    this.config = parts.config;
    this.collector = parts.collector;
    this.#releaseCollector = parts.releaseCollector;
    this.#counting = parts.counting;
    this.#log = parts.log;
    this.#redis = parts.redis;
    this.#reader = parts.reader;
    this.#publisher =
      parts.publisher?.((error) => this.#warnRedis('could not publish metrics to Redis', error)) ?? null;
    this.#publisher?.start();
    this.#notifier = parts.notifier;
    this.#integrity = parts.integrity ?? null;
    this.#capture = parts.capture ?? null;
    if (parts.alertIntervalMs !== null) {
      this.#alertTimer = setInterval(() => {
        if (this.#alertRun === null) void this.checkAlertsSoon();
      }, parts.alertIntervalMs);
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

  /**
   * Evaluates the alert rules now, or right after the evaluation in progress (evaluations never
   * overlap): for a change worth telling at once, such as a verification that failed.
   */
  checkAlertsSoon(): Promise<void> {
    const run: Promise<void> = (this.#alertRun ?? Promise.resolve())
      .then(async () => {
        if (!this.#closed) await this.checkAlerts();
      })
      .catch((error: unknown) => this.#warnRedis('could not evaluate alerts', error))
      .finally(() => {
        if (this.#alertRun === run) this.#alertRun = null;
      });
    this.#alertRun = run;
    return run;
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
      await this.#capture?.close().catch(() => undefined);
    } finally {
      this.#releaseCollector();
      if (this.#redis !== null) await closeRedis(this.#redis);
    }
  }

  async #gather(): Promise<SnapshotInput> {
    const nowMs = Date.now();
    const own = await this.collector.report();
    const memoryMb = roundTo(process.memoryUsage.rss() / (1024 * 1024), 1);
    const method = this.config.method;
    const [integrity, written] = await Promise.all([
      this.#integrity?.figures(nowMs) ?? null,
      this.#capture?.reports() ?? [],
    ]);
    // A capture process's figures come through Redis with its report and from the activity
    // database; the freshest of each stream is shown.
    const captureOf = (reports: readonly ProcessReport[]) =>
      captureJsonOf([...written, ...reports.flatMap((report) => report.capture ?? [])], nowMs);
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
          integrity,
          capture: captureOf(reports),
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
      integrity,
      capture: captureOf([own]),
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
