import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { BreakerState } from '../resilience/breaker.js';
import type { CaptureJson } from './capture-figures.js';
import { LAG_BUCKETS_MS, type LagBuckets } from './lag-histogram.js';
import { type IntegrityJson, type PerformanceData, TOTAL_NAMES, type TotalName } from './snapshot.js';

/** Prefix of every metric of this library (the default process metrics keep their usual names). */
export const METRIC_PREFIX = 'activity_log_';

/** Help text of each `activity_log_<name>_total` counter. */
const COUNTER_HELP: Readonly<Record<TotalName, string>> = {
  accepted: 'Activities handed to the delivery by log()',
  enqueued: 'Activities put on the queue by producers',
  stored: 'Activities written to the store (same as total_processed)',
  dequeued: 'Activities that left the queue: stored, or in a job failed for good',
  write_attempts: 'Write attempts (batches, job groups) to the store or the queue',
  write_failures: 'Write attempts that failed',
  retries: 'Failed attempts whose activities were kept for another attempt',
  spooled: 'Activities written to the local spool instead of their destination',
  replayed: 'Activities replayed from the spool to their destination',
  dropped: 'Activities dropped because the spool was full',
};

const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];

/** Metrics of the snapshot, in Prometheus' names. */
export interface PrometheusInput {
  readonly data: PerformanceData;
  /** The lag histogram since start, summed over the live processes. */
  readonly lagTotal: LagBuckets;
}

/**
 * Renders the performance figures as Prometheus text with `prom-client`: one counter per total
 * (`activity_log_<name>_total`), gauges for the snapshot's fields, the circuit breakers as a
 * labelled gauge, the lag histogram in seconds, and prom-client's default process metrics.
 *
 * @example
 * const exporter = new PrometheusExporter();
 * reply.type(exporter.contentType).send(await exporter.render({ data, lagTotal }));
 */
export class PrometheusExporter {
  readonly registry = new Registry();
  readonly #counters = new Map<TotalName, Counter>();
  readonly #gauges: Record<string, Gauge>;
  readonly #breakerState: Gauge<'breaker' | 'state'>;
  readonly #breakerFailures: Gauge<'breaker'>;

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    for (const name of TOTAL_NAMES) {
      this.#counters.set(
        name,
        new Counter({
          name: `${METRIC_PREFIX}${name}_total`,
          help: COUNTER_HELP[name],
          registers: [this.registry],
        }),
      );
    }
    const gauge = (name: string, help: string) =>
      new Gauge({ name: `${METRIC_PREFIX}${name}`, help, registers: [this.registry] });
    this.#gauges = {
      queue_size: gauge('queue_size', 'Activities accepted but not yet stored (buffers + queue + spool)'),
      processing_rate: gauge('processing_rate', 'Activities stored per second, mean of the last 60 s'),
      error_rate: gauge('error_rate', 'Percent of write attempts that failed in the last 5 minutes'),
      pending_jobs: gauge('pending_jobs', 'Queue jobs waiting, delayed ones included'),
      failed_jobs: gauge('failed_jobs', 'Queue jobs failed'),
      memory_usage: gauge('memory_usage_megabytes', 'Resident memory of the reporting process, MB'),
      spool_activities: gauge('spool_activities', 'Activities waiting in the spool'),
      spool_bytes: gauge('spool_bytes', 'Bytes of the spool segments'),
      spool_oldest_age: gauge('spool_oldest_age_seconds', 'Age of the oldest spooled activity'),
      lag_p50: gauge('lag_p50_seconds', 'Median lag from log() to the stored row, last 5 minutes'),
      lag_p99: gauge('lag_p99_seconds', '99th percentile lag from log() to the stored row, last 5 minutes'),
      workers: gauge('workers', 'Live queue worker processes'),
      processes: gauge('processes', 'Live processes reporting metrics'),
    };
    this.#breakerState = new Gauge({
      name: `${METRIC_PREFIX}circuit_breaker_state`,
      help: 'Circuit breaker state: 1 for the current state of each breaker, 0 for the others',
      labelNames: ['breaker', 'state'],
      registers: [this.registry],
    });
    this.#breakerFailures = new Gauge({
      name: `${METRIC_PREFIX}circuit_breaker_failures`,
      help: 'Consecutive failures counted by each circuit breaker',
      labelNames: ['breaker'],
      registers: [this.registry],
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(input: PrometheusInput): Promise<string> {
    const { data } = input;
    for (const [name, counter] of this.#counters) {
      counter.reset();
      counter.inc(name === 'stored' ? data.total_processed : data.totals[name]);
    }
    const g = this.#gauges;
    g.queue_size!.set(data.queue_size);
    g.processing_rate!.set(data.processing_rate);
    g.error_rate!.set(data.error_rate);
    g.pending_jobs!.set(data.pending_jobs);
    g.failed_jobs!.set(data.failed_jobs);
    g.memory_usage!.set(data.memory_usage);
    g.spool_activities!.set(data.spool.activities);
    g.spool_bytes!.set(data.spool.bytes);
    g.spool_oldest_age!.set(data.spool.oldest_age_seconds ?? 0);
    g.lag_p50!.set((data.lag_ms.p50 ?? 0) / 1000);
    g.lag_p99!.set((data.lag_ms.p99 ?? 0) / 1000);
    g.workers!.set(data.workers.length);
    g.processes!.set(data.processes);
    this.#breakerState.reset();
    this.#breakerFailures.reset();
    const breakers = { store: data.circuit_breaker, ...data.breakers };
    for (const [breaker, value] of Object.entries(breakers)) {
      for (const state of BREAKER_STATES)
        this.#breakerState.set({ breaker, state }, value.state === state ? 1 : 0);
      this.#breakerFailures.set({ breaker }, value.failure_count);
    }
    const integrity = data.integrity === null ? '' : integrityMetricsText(data.integrity);
    return `${await this.registry.metrics()}${lagHistogramText(input.lagTotal)}${integrity}${captureMetricsText(data.capture)}`;
  }
}

/**
 * The lag histogram in Prometheus' text format. Written out directly: prom-client histograms only
 * take single observations, and this one is the sum of other processes' bucket counts.
 */
export function lagHistogramText(lag: LagBuckets): string {
  const name = `${METRIC_PREFIX}lag_seconds`;
  const lines = [
    `# HELP ${name} Lag from log() to the committed row, since each live process started`,
    `# TYPE ${name} histogram`,
  ];
  let cumulative = 0;
  for (let index = 0; index < LAG_BUCKETS_MS.length; index++) {
    cumulative += lag.counts[index] ?? 0;
    lines.push(`${name}_bucket{le="${LAG_BUCKETS_MS[index]! / 1000}"} ${cumulative}`);
  }
  cumulative += lag.counts[LAG_BUCKETS_MS.length] ?? 0;
  lines.push(`${name}_bucket{le="+Inf"} ${cumulative}`);
  lines.push(`${name}_sum ${lag.sumMs / 1000}`);
  lines.push(`${name}_count ${lag.count}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The seal chain's metrics in Prometheus' text format. Written out directly, so that a value not
 * known yet (no checkpoint, no verification finished) is absent rather than a misleading 0.
 */
export function integrityMetricsText(integrity: IntegrityJson): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number | null) => {
    if (value === null) return;
    const full = `${METRIC_PREFIX}${name}`;
    lines.push(`# HELP ${full} ${help}`, `# TYPE ${full} ${type}`, `${full} ${value}`);
  };
  const { checkpoint, verify } = integrity;
  const verified = verify.status !== 'never' && verify.at !== null;
  metric('seals_written_total', 'counter', 'Seals in the seal chain', integrity.seals_written);
  metric('rows_sealed_total', 'counter', 'Rows closed by the seals of the chain', integrity.rows_sealed);
  metric(
    'checkpoint_age_seconds',
    'gauge',
    'Age of the newest signed checkpoint',
    checkpoint?.age_seconds ?? null,
  );
  metric(
    'checkpoint_behind_seconds',
    'gauge',
    'How long the oldest seal no checkpoint covers has gone without one (0: the checkpoint is at the head)',
    integrity.checkpoint_behind_seconds,
  );
  metric(
    'verify_last_success',
    'gauge',
    'Whether the last scheduled verification found the seal chain intact (1) or not (0)',
    verified ? (verify.status === 'ok' ? 1 : 0) : null,
  );
  metric(
    'verify_last_timestamp_seconds',
    'gauge',
    'When the last scheduled verification finished, Unix time',
    verified ? Date.parse(verify.at!) / 1000 : null,
  );
  metric(
    'verify_last_problems',
    'gauge',
    'Problems the last scheduled verification found',
    verified ? verify.problems : null,
  );
  metric(
    'verify_last_rows',
    'gauge',
    'Rows the last scheduled verification checked',
    verified ? verify.rows : null,
  );
  metric(
    'verify_last_duration_seconds',
    'gauge',
    'How long the last scheduled verification took',
    verified && verify.duration_ms !== null ? verify.duration_ms / 1000 : null,
  );
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** The states `activity_log_capture_state` has a series for. */
const CAPTURE_STATES: readonly CaptureJson['state'][] = [
  'starting',
  'streaming',
  'reconnecting',
  'stalled',
  'stopping',
  'stopped',
  'stale',
];

/** Prometheus label values escape backslash, double quote and newline. */
function labelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * Change capture's metrics, one series per stream (`source`, `slot`, `kind` labels). Written out
 * directly, so that a figure the source did not give (no lag measured yet) is absent, not 0.
 */
export function captureMetricsText(capture: readonly CaptureJson[]): string {
  if (capture.length === 0) return '';
  const lines: string[] = [];
  const metric = (
    name: string,
    type: 'counter' | 'gauge',
    help: string,
    value: (entry: CaptureJson) => number | null,
  ) => {
    const full = `${METRIC_PREFIX}capture_${name}`;
    lines.push(`# HELP ${full} ${help}`, `# TYPE ${full} ${type}`);
    for (const entry of capture) {
      const v = value(entry);
      if (v !== null) lines.push(`${full}{${labelsOf(entry)}} ${v}`);
    }
  };
  metric(
    'up',
    'gauge',
    'Whether the capture of this stream reports fresh figures and reads (1) or not (0)',
    (e) => (e.live ? 1 : 0),
  );
  const state = `${METRIC_PREFIX}capture_state`;
  lines.push(
    `# HELP ${state} Capture state: 1 for the current state of each stream, 0 for the others`,
    `# TYPE ${state} gauge`,
  );
  for (const entry of capture) {
    for (const name of CAPTURE_STATES)
      lines.push(`${state}{${labelsOf(entry)},state="${name}"} ${entry.state === name ? 1 : 0}`);
  }
  metric(
    'lag_bytes',
    'gauge',
    'Change stream written by the source and not yet confirmed durable',
    (e) => e.lag_bytes,
  );
  metric(
    'lag_seconds',
    'gauge',
    'Seconds since the commit of the oldest change not yet durable',
    (e) => e.lag_seconds,
  );
  metric(
    'retained_bytes',
    'gauge',
    'WAL (PostgreSQL) or binary log (MariaDB/MySQL) the source keeps behind the slot',
    (e) => e.retained_bytes,
  );
  metric(
    'events_per_second',
    'gauge',
    'Row changes captured per second, mean of the last 60 s',
    (e) => e.events_per_second,
  );
  metric(
    'activities_total',
    'counter',
    'Activities made from row changes since the capture process started',
    (e) => e.activities,
  );
  metric(
    'position_saved_timestamp_seconds',
    'gauge',
    'When the durable position was last saved, Unix time',
    (e) => (e.position_saved_at === null ? null : Date.parse(e.position_saved_at) / 1000),
  );
  metric(
    'report_age_seconds',
    'gauge',
    'Age of the figures the capture process last wrote',
    (e) => e.report_age_seconds,
  );
  return `${lines.join('\n')}\n`;
}

function labelsOf(entry: CaptureJson): string {
  return `source="${labelValue(entry.source)}",slot="${labelValue(entry.slot)}",kind="${labelValue(entry.kind)}"`;
}
