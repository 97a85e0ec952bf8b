import { describe, expect } from 'vitest';
import {
  type AlertAction,
  AlertNotifier,
  type AlertRule,
  type AlertSettings,
  type AlertStateStore,
  evaluateRules,
  MemoryAlertState,
} from '../../src/metrics/alerts.js';
import { MetricsCollector, type ProcessReport } from '../../src/metrics/collector.js';
import { LAG_BUCKETS_MS, LagHistogram, lagQuantileMs } from '../../src/metrics/lag-histogram.js';
import type { HistoryMinute } from '../../src/metrics/minute-history.js';
import { lagHistogramText, PrometheusExporter } from '../../src/metrics/prometheus.js';
import { SecondBuckets } from '../../src/metrics/second-buckets.js';
import {
  composeSnapshot,
  type IntegrityJson,
  type PerformanceData,
  TOTAL_NAMES,
  totalsOf,
  type VerifyJson,
} from '../../src/metrics/snapshot.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { MemoryStore } from '../helpers/memory-sink.js';
import { idlePerformanceData, integrityWith } from '../helpers/performance-data.js';
import { parsePrometheus } from '../helpers/prometheus-text.js';
import { SNAPSHOT_NUMBER_FIELDS } from '../helpers/snapshot-fields.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const T0 = Date.UTC(2026, 10, 29, 1, 0, 0);

function report(overrides: Partial<ProcessReport> = {}): ProcessReport {
  const empty = { counts: new Array(LAG_BUCKETS_MS.length + 1).fill(0), sumMs: 0, count: 0 };
  return {
    id: 'p1',
    roles: ['app'],
    host: 'h',
    pid: 1,
    started_at_ms: T0,
    heartbeat_at_ms: T0,
    counters: {
      accepted: 0,
      enqueued: 0,
      stored: 0,
      dequeued: 0,
      writeAttempts: 0,
      writeFailures: 0,
      retries: 0,
      spooled: 0,
      replayed: 0,
      dropped: 0,
      failedJobs: 0,
    },
    stored_last_minute: 0,
    attempts_last_5m: 0,
    failures_last_5m: 0,
    buffered: 0,
    spool: null,
    breakers: [],
    lag: { total: empty, recent: empty },
    history: [],
    memory_mb: 10,
    ...overrides,
  };
}

function compose(reports: ProcessReport[], queue: Parameters<typeof composeSnapshot>[0]['queue'] = null) {
  const totals = Object.fromEntries(TOTAL_NAMES.map((name) => [name, 0])) as ReturnType<typeof totalsOf>;
  for (const part of reports) for (const name of TOTAL_NAMES) totals[name] += totalsOf(part)[name];
  return composeSnapshot({
    method: queue === null ? 'batch' : 'queue',
    source: queue === null ? 'process' : 'redis',
    reports,
    totals,
    queue,
    history: [],
    memoryMb: 12.5,
    nowMs: T0 + 30_000,
  });
}

describe('sliding windows', () => {
  it('sums per-second counts over the trailing span and forgets older seconds', () => {
    const buckets = new SecondBuckets(60);
    buckets.add(10, T0);
    buckets.add(5, T0 + 500);
    buckets.add(7, T0 + 30_000);
    expect(buckets.sum(60, T0 + 30_000)).toBe(22);
    expect(buckets.sum(10, T0 + 30_000)).toBe(7);
    expect(buckets.sum(60, T0 + 60_000)).toBe(7);
    buckets.add(1, T0 + 120_000);
    expect(buckets.sum(60, T0 + 120_000)).toBe(1);
  });
});

describe('lag histogram', () => {
  it('answers quantiles inside the right bucket and null without data', () => {
    const histogram = new LagHistogram();
    expect(lagQuantileMs(histogram.report(T0).recent, 0.5)).toBeNull();
    for (let i = 0; i < 98; i++) histogram.observe(3, T0);
    histogram.observe(4000, T0);
    histogram.observe(4000, T0);
    const { recent, total } = histogram.report(T0);
    expect(recent.count).toBe(100);
    const p50 = lagQuantileMs(recent, 0.5)!;
    expect(p50).toBeGreaterThan(2);
    expect(p50).toBeLessThanOrEqual(5);
    const p99 = lagQuantileMs(recent, 0.99)!;
    expect(p99).toBeGreaterThan(2500);
    expect(p99).toBeLessThanOrEqual(5000);
    // Ten minutes later the recent window is empty, the total is not.
    expect(histogram.report(T0 + 10 * 60_000).recent.count).toBe(0);
    expect(total.count).toBe(100);
  });
});

describe('composeSnapshot', () => {
  it('has exactly the fields of DESIGN, with the documented types', () => {
    const { success, data } = compose([report()]);
    expect(success).toBe(true);
    for (const key of SNAPSHOT_NUMBER_FIELDS) {
      expect(typeof data[key], key).toBe('number');
    }
    expect(data.circuit_breaker).toEqual({ state: 'closed', failure_count: 0, is_allowed: true });
    expect(data.memory_usage).toBe(12.5);
    expect(data.history).toHaveLength(60);
    expect(data.lag_ms).toEqual({ p50: null, p99: null });
  });

  it('defines the rates: stored per second over 60 s, percent of failed attempts over 5 min', () => {
    const { data } = compose([
      report({ stored_last_minute: 600, attempts_last_5m: 180, failures_last_5m: 9 }),
      report({ id: 'p2', stored_last_minute: 300, attempts_last_5m: 20, failures_last_5m: 1 }),
    ]);
    expect(data.processing_rate).toBe(15);
    expect(data.error_rate).toBe(5);
  });

  it('adds buffers, queued activities and the spool into queue_size, counting a shared spool directory once', () => {
    const spool = { dir: '/spool', activities: 4, bytes: 1000, oldest_at_ms: T0 };
    const { data } = compose(
      [
        report({ buffered: 3, spool, counters: { ...report().counters, enqueued: 100 } }),
        report({
          id: 'p2',
          roles: ['worker'],
          spool: { ...spool, activities: 1, bytes: 1000 },
          counters: { ...report().counters, dequeued: 60 },
        }),
      ],
      { waiting: 2, delayed: 1, active: 1, failed: 5, storedActivities: 60 },
    );
    expect(data.queue_size).toBe(3 + 40 + 5);
    expect(data.spool).toEqual({ activities: 5, bytes: 1000, oldest_age_seconds: 30 });
    expect(data.pending_jobs).toBe(3);
    expect(data.failed_jobs).toBe(5);
    expect(data.total_processed).toBe(60);
    expect(data.workers.map((worker) => worker.id)).toEqual(['p2']);
  });

  it('reports the worst store breaker at the top and every breaker by name', () => {
    const breaker = (state: 'closed' | 'open' | 'half_open', failures: number, since: number | null) => ({
      name: 'store',
      state,
      failure_count: failures,
      is_allowed: state === 'closed',
      not_closed_since_ms: since,
    });
    const { data } = compose([
      report({ breakers: [breaker('closed', 1, null), { ...breaker('closed', 0, null), name: 'queue' }] }),
      report({ id: 'p2', breakers: [breaker('open', 5, T0)] }),
    ]);
    expect(data.circuit_breaker).toEqual({ state: 'open', failure_count: 5, is_allowed: false });
    expect(data.breakers.store).toMatchObject({ state: 'open', processes: 2, open_for_seconds: 30 });
    expect(data.breakers.queue).toMatchObject({ state: 'closed', open_for_seconds: null });
  });
});

describe('MetricsCollector on a real delivery', () => {
  async function setUp(defer: TestScope['defer'], store: MemoryStore, flushIntervalMs = 5) {
    const spoolDir = await temporaryDirectory(defer, 'metrics-spool-');
    const { activityLog, collector } = composeActivityLog({
      env: {},
      store,
      config: {
        method: 'batch',
        spoolDir,
        batchSize: 10,
        flushIntervalMs,
        breakerFailures: 2,
        breakerCooldownMs: 60_000,
      },
    });
    // Closing the activity log closes the collector it counts into too.
    defer(() => activityLog.close());
    return { activityLog, collector };
  }

  it('counts accepted and stored activities, write attempts and the lag of each one', async ({ defer }) => {
    const { activityLog, collector } = await setUp(defer, new MemoryStore());
    for (let i = 0; i < 25; i++) await activityLog.log({ description: `a${i}` });
    await activityLog.flush();
    const current = await collector.report();
    expect(current.counters).toMatchObject({ accepted: 25, stored: 25, writeFailures: 0 });
    expect(current.counters.writeAttempts).toBeGreaterThanOrEqual(3);
    expect(current.stored_last_minute).toBe(25);
    expect(current.lag.total.count).toBe(25);
    expect(current.breakers).toEqual([
      { name: 'store', state: 'closed', failure_count: 0, is_allowed: true, not_closed_since_ms: null },
    ]);
  });

  it('counts a sync delivery once per write, through its resilient sink', async ({ defer }) => {
    const spoolDir = await temporaryDirectory(defer, 'metrics-sync-');
    const { activityLog, collector } = composeActivityLog({
      env: {},
      store: new MemoryStore(),
      config: { method: 'sync', spoolDir },
    });
    defer(() => activityLog.close());
    for (let i = 0; i < 3; i++) await activityLog.log({ description: `s${i}` });
    expect(collector.counters).toMatchObject({ accepted: 3, stored: 3, writeAttempts: 3, writeFailures: 0 });
    expect((await collector.report()).buffered).toBe(0);
  });

  it("keeps the lag of the activities stored each minute, with p50/p99 at the buckets' resolution", async ({
    defer,
  }) => {
    const spoolDir = await temporaryDirectory(defer, 'metrics-history-lag-');
    let clockMs = T0 + 10_000;
    const collector = new MetricsCollector({ nowMs: () => clockMs });
    const { activityLog } = composeActivityLog({
      env: {},
      store: new MemoryStore(),
      config: { method: 'sync', spoolDir },
      collector,
    });
    defer(async () => {
      collector.close();
      await activityLog.close();
    });
    const logWithLag = (lagMs: number) => activityLog.log({ description: 'lag', createdAt: clockMs - lagMs });
    // Minute T0: 98 in the 2–5 ms bucket, 2 in the 2.5–5 s bucket.
    for (let i = 0; i < 98; i++) await logWithLag(3);
    for (let i = 0; i < 2; i++) await logWithLag(4000);
    // The next minute: 10 in the 25–50 ms bucket.
    clockMs = T0 + 70_000;
    for (let i = 0; i < 10; i++) await logWithLag(40);
    const current = await collector.report();
    const { data } = composeSnapshot({
      method: 'sync',
      source: 'process',
      reports: [current],
      totals: totalsOf(current),
      queue: null,
      history: current.history,
      memoryMb: 1,
      nowMs: clockMs,
    });
    const [previous, last] = data.history.slice(-2) as [HistoryMinute, HistoryMinute];
    expect(previous).toMatchObject({
      minute: new Date(T0).toISOString(),
      throughput: 100,
      lag_p50_ms: 4, // 2 + 3 × 50/98
      lag_p99_ms: 3750, // 2500 + 2500 × 1/2
    });
    expect(last).toMatchObject({ throughput: 10, lag_p50_ms: 38, lag_p99_ms: 50 });
    expect(
      data.history.slice(0, -2).every((minute) => minute.lag_p50_ms === null && minute.lag_p99_ms === null),
    ).toBe(true);
  });

  it('counts failed writes, spooled activities and the open breaker', async ({ defer }) => {
    const store = new MemoryStore();
    store.failNext = 1000;
    const { activityLog, collector } = await setUp(defer, store, 60_000);
    for (let i = 0; i < 30; i++) await activityLog.log({ description: `b${i}` });
    await activityLog.flush();
    // Fewer than a batch, with a long flush interval: these stay in the buffer.
    for (let i = 0; i < 4; i++) await activityLog.log({ description: `c${i}` });
    const current = await collector.report();
    expect(current.buffered).toBe(4);
    expect(current.counters.writeFailures).toBe(2);
    expect(current.counters.spooled).toBe(30);
    expect(current.counters.stored).toBe(0);
    const { data } = compose([current]);
    expect(data.error_rate).toBe(100);
    expect(data.circuit_breaker.state).toBe('open');
    expect(data.spool.activities).toBe(30);
    expect(data.queue_size).toBe(34);
    expect(data.spool.bytes).toBeGreaterThan(0);
  });
});

describe('Prometheus text', () => {
  it('carries the snapshot counters and gauges under activity_log_ names, and a parsable lag histogram', async () => {
    const histogram = new LagHistogram();
    histogram.observe(3, T0);
    histogram.observe(700, T0);
    const base = report();
    const { data } = compose([
      report({
        counters: {
          ...base.counters,
          accepted: 7,
          stored: 5,
          writeAttempts: 4,
          writeFailures: 1,
          dropped: 2,
        },
        stored_last_minute: 120,
        attempts_last_5m: 4,
        failures_last_5m: 1,
        breakers: [
          { name: 'store', state: 'open', failure_count: 5, is_allowed: false, not_closed_since_ms: T0 },
        ],
      }),
    ]);
    const text = await new PrometheusExporter().render({ data, lagTotal: histogram.report(T0).total });
    const samples = parsePrometheus(text);
    expect(samples.get('activity_log_accepted_total')).toBe(7);
    expect(samples.get('activity_log_stored_total')).toBe(data.total_processed);
    expect(samples.get('activity_log_write_failures_total')).toBe(1);
    expect(samples.get('activity_log_dropped_total')).toBe(data.dropped_total);
    expect(samples.get('activity_log_processing_rate')).toBe(data.processing_rate);
    expect(samples.get('activity_log_error_rate')).toBe(25);
    expect(samples.get('activity_log_circuit_breaker_state{breaker="store",state="open"}')).toBe(1);
    expect(samples.get('activity_log_circuit_breaker_state{breaker="store",state="closed"}')).toBe(0);
    expect(samples.get('activity_log_lag_seconds_bucket{le="0.005"}')).toBe(1);
    expect(samples.get('activity_log_lag_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(samples.get('activity_log_lag_seconds_count')).toBe(2);
    expect(samples.has('process_resident_memory_bytes')).toBe(true);
  });

  it('carries the seal chain as activity_log_ metrics, leaving out what is not known yet', async () => {
    const exporter = new PrometheusExporter({ defaultMetrics: false });
    const lagTotal = new LagHistogram().report(T0).total;
    const without = parsePrometheus(await exporter.render({ data: idlePerformanceData(null), lagTotal }));
    expect([...without.keys()].filter((name) => /seal|checkpoint|verify/.test(name))).toEqual([]);
    const never: VerifyJson = {
      status: 'never',
      at: null,
      duration_ms: null,
      seals: 0,
      rows: 0,
      problems: 0,
      first_problem: null,
      interval_seconds: 600,
      running: true,
      error: null,
    };
    const fresh = parsePrometheus(
      await exporter.render({ data: idlePerformanceData(integrityWith(never)), lagTotal }),
    );
    expect(fresh.get('activity_log_seals_written_total')).toBe(4);
    expect(fresh.get('activity_log_rows_sealed_total')).toBe(2000);
    expect(fresh.has('activity_log_checkpoint_age_seconds')).toBe(false);
    expect(fresh.has('activity_log_verify_last_success')).toBe(false);
    const failed = integrityWith(
      {
        ...never,
        status: 'failed',
        at: '2026-12-03T06:00:10.000Z',
        duration_ms: 2500,
        seals: 4,
        rows: 2000,
        problems: 2,
        first_problem: 'rows of seal 3 are missing',
        running: false,
      },
      {
        checkpoint: { seq: 3, issued_at: '2026-12-03T05:00:00.000Z', age_seconds: 3600, source: 'dir' },
        checkpoint_behind_seconds: 120,
      },
    );
    const samples = parsePrometheus(await exporter.render({ data: idlePerformanceData(failed), lagTotal }));
    expect(samples.get('activity_log_checkpoint_age_seconds')).toBe(3600);
    expect(samples.get('activity_log_checkpoint_behind_seconds')).toBe(120);
    expect(samples.get('activity_log_verify_last_success')).toBe(0);
    expect(samples.get('activity_log_verify_last_timestamp_seconds')).toBe(
      Date.UTC(2026, 11, 3, 6, 0, 10) / 1000,
    );
    expect(samples.get('activity_log_verify_last_problems')).toBe(2);
    expect(samples.get('activity_log_verify_last_rows')).toBe(2000);
    expect(samples.get('activity_log_verify_last_duration_seconds')).toBe(2.5);
    const ok = integrityWith({ ...failed.verify, status: 'ok', problems: 0, first_problem: null });
    const intact = parsePrometheus(await exporter.render({ data: idlePerformanceData(ok), lagTotal }));
    expect(intact.get('activity_log_verify_last_success')).toBe(1);
  });

  it('writes cumulative histogram buckets', () => {
    const histogram = new LagHistogram();
    for (const lag of [1, 1, 40, 10_000_000]) histogram.observe(lag, T0);
    const samples = parsePrometheus(lagHistogramText(histogram.report(T0).total));
    expect(samples.get('activity_log_lag_seconds_bucket{le="0.001"}')).toBe(2);
    expect(samples.get('activity_log_lag_seconds_bucket{le="0.05"}')).toBe(3);
    expect(samples.get('activity_log_lag_seconds_bucket{le="3600"}')).toBe(3);
    expect(samples.get('activity_log_lag_seconds_bucket{le="+Inf"}')).toBe(4);
  });
});

const SETTINGS: AlertSettings = {
  webhookUrl: null,
  errorRatePercent: 5,
  queueSize: 100,
  breakerOpenSeconds: 60,
  lagP99Ms: 1000,
  cooldownSeconds: 300,
};

describe('alert rules', () => {
  function data(overrides: Partial<PerformanceData>): PerformanceData {
    return { ...compose([report()]).data, ...overrides };
  }

  it('fires each rule past its threshold only', () => {
    const firing = (d: PerformanceData, dropped = 0) =>
      evaluateRules(d, SETTINGS, dropped)
        .filter((result) => result.firing)
        .map((result) => result.rule);
    expect(firing(data({}))).toEqual([]);
    expect(firing(data({ error_rate: 5 }))).toEqual([]);
    expect(firing(data({ error_rate: 5.01 }))).toEqual(['error_rate']);
    expect(firing(data({ queue_size: 101 }))).toEqual(['queue_size']);
    expect(firing(data({}), 1)).toEqual(['spool_drop']);
    expect(firing(data({ lag_ms: { p50: 10, p99: 1001 } }))).toEqual(['lag_p99']);
    const breakers = {
      store: {
        state: 'open' as const,
        failure_count: 5,
        is_allowed: false,
        processes: 1,
        open_for_seconds: 59,
      },
    };
    expect(firing(data({ breakers }))).toEqual([]);
    expect(firing(data({ breakers: { store: { ...breakers.store, open_for_seconds: 60 } } }))).toEqual([
      'breaker_open',
    ]);
    expect(firing(data({ method: 'queue', pending_jobs: 3, workers: [] }))).toEqual(['no_worker']);
    expect(firing(data({ method: 'queue', pending_jobs: 0, workers: [] }))).toEqual([]);
  });

  it('fires checkpoint_behind only past twice the checkpoint interval, and verify_failed on a failed verify', () => {
    const settings: AlertSettings = { ...SETTINGS, checkpointBehindSeconds: 7200 };
    const verify: VerifyJson = {
      status: 'ok',
      at: '2026-12-03T06:00:00.000Z',
      duration_ms: 10,
      seals: 4,
      rows: 2000,
      problems: 0,
      first_problem: null,
      interval_seconds: 600,
      running: false,
      error: null,
    };
    const firing = (integrity: IntegrityJson | null, alertSettings = settings) =>
      evaluateRules(idlePerformanceData(integrity), alertSettings, 0)
        .filter((result) => result.firing)
        .map((result) => result.rule);
    expect(firing(null)).toEqual([]);
    expect(firing(integrityWith(verify, { checkpoint_behind_seconds: null }))).toEqual([]);
    expect(firing(integrityWith(verify, { checkpoint_behind_seconds: 7200 }))).toEqual([]);
    expect(firing(integrityWith(verify, { checkpoint_behind_seconds: 7201 }))).toEqual(['checkpoint_behind']);
    // Settings made before the rule existed never fire it.
    expect(firing(integrityWith(verify, { checkpoint_behind_seconds: 1e9 }), SETTINGS)).toEqual([]);
    expect(firing(integrityWith({ ...verify, status: 'failed', problems: 1, first_problem: 'x' }))).toEqual([
      'verify_failed',
    ]);
    expect(firing(integrityWith({ ...verify, status: 'never' }))).toEqual([]);
  });

  it('notifies on firing, again only after the cooldown, and once on resolving', async () => {
    const state = new MemoryAlertState();
    expect(await state.transition('error_rate', true, 0, 1000)).toBe('fire');
    expect(await state.transition('error_rate', true, 500, 1000)).toBe('none');
    expect(await state.transition('error_rate', true, 1000, 1000)).toBe('renotify');
    expect(await state.transition('error_rate', false, 1100, 1000)).toBe('resolve');
    expect(await state.transition('error_rate', false, 1200, 1000)).toBe('none');
    // Flapping back within the cooldown does not notify again at once.
    expect(await state.transition('error_rate', true, 1300, 1000)).toBe('none');
    expect(await state.transition('error_rate', true, 2000, 1000)).toBe('renotify');
  });

  /** Shared state that can be made unreachable, as Redis during an outage. */
  class FlakyState implements AlertStateStore {
    readonly shared = new MemoryAlertState();
    down = false;
    transition(rule: AlertRule, firing: boolean, nowMs: number, cooldownMs: number): Promise<AlertAction> {
      if (this.down) return Promise.reject(new Error('Connection is closed.'));
      return this.shared.transition(rule, firing, nowMs, cooldownMs);
    }
  }

  function notifier(state: AlertStateStore, clock: { ms: number }, lines: string[] = []) {
    return new AlertNotifier({
      settings: SETTINGS,
      state,
      queueName: 'activity-logs',
      log: (line) => lines.push(line),
      nowMs: () => clock.ms,
    });
  }

  it('still alerts while the shared alert state is unreachable, and resolves what it raised alone', async () => {
    const state = new FlakyState();
    const clock = { ms: 1_000_000 };
    const lines: string[] = [];
    const alerts = notifier(state, clock, lines);
    state.down = true;
    const fired = await alerts.check(data({ error_rate: 50 }));
    expect(fired.map((alert) => [alert.rule, alert.status])).toEqual([['error_rate', 'firing']]);
    expect(lines.filter((line) => line.includes('alert state is unreachable'))).toHaveLength(1);
    await alerts.check(data({ error_rate: 50 }));
    expect(lines.filter((line) => line.includes('alert state is unreachable'))).toHaveLength(1);
    // Back, and the condition is over: the alert raised alone is resolved.
    state.down = false;
    clock.ms += 10_000;
    const resolved = await alerts.check(data({ error_rate: 0 }));
    expect(resolved.map((alert) => [alert.rule, alert.status])).toEqual([['error_rate', 'resolved']]);
    expect(await alerts.check(data({ error_rate: 0 }))).toEqual([]);
  });

  it('does not read the switch between cluster and process totals as dropped activities', async () => {
    const alerts = notifier(new MemoryAlertState(), { ms: 1_000_000 });
    expect(await alerts.check(data({ source: 'redis', dropped_total: 40 }))).toEqual([]);
    expect(await alerts.check(data({ source: 'process', dropped_total: 0 }))).toEqual([]);
    expect(await alerts.check(data({ source: 'redis', dropped_total: 40 }))).toEqual([]);
    const fired = await alerts.check(data({ source: 'redis', dropped_total: 41 }));
    expect(fired.map((alert) => [alert.rule, alert.value])).toEqual([['spool_drop', 1]]);
  });
});
