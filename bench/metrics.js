// Monitoring benchmark: (1) log() cost with the metrics collector listening vs without, same run,
// blocks interleaved; (2) batch ingest end to end with and without it (the collector's work at
// flush time: counters, windows, one lag observation per activity); (3) how long `serve` takes
// to aggregate the reports of 20 live processes from Redis into one snapshot.
// Usage: npm run bench -- metrics (or node bench/metrics.js after a build).
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { connectMonitoringReader } from '../dist/entry/monitoring.js';
import { composeActivityLog, loadConfig } from '../dist/index.js';
import { MetricsCollector } from '../dist/metrics/collector.js';
import { MetricsPublisher, removeMetricsKeys } from '../dist/metrics/redis-metrics.js';
import { CircuitBreaker } from '../dist/resilience/breaker.js';
import { baseline, input } from './lib/workload.js';
import { machine, median, percentile, printTable, ratio } from './stats.js';

const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const CALLS = Number(process.env.BENCH_CALLS ?? 100_000);
const INGEST = Number(process.env.BENCH_ROWS ?? 50_000);
const PROCESSES = 20;
const READS = 50;

async function openLog(spoolDir) {
  return composeActivityLog({
    env: { DATABASE_URL: 'sqlite::memory:' },
    config: { method: 'batch', batchSize: 1000, spoolDir },
  });
}

/** Per-call log() cost, blocks of 1000 calls alternating between a log with the collector and one without. */
async function logCost(spoolDir) {
  const off = await openLog(join(spoolDir, 'off'));
  const on = await openLog(join(spoolDir, 'on'));
  await Promise.all([off.store.migrate(), on.store.migrate()]);
  // Without: the log's collector stops listening; with: it counts, as it does by default.
  off.collector.close();
  const collector = on.collector;
  const samples = { off: [], on: [], base: [] };
  let sink = 0;
  for (let block = 0; block < (2 * CALLS) / 1000; block++) {
    const [name, log] = block % 2 === 0 ? ['off', off.activityLog] : ['on', on.activityLog];
    for (let i = 0; i < 1000; i++) {
      const t0 = process.hrtime.bigint();
      sink += baseline(i).length;
      samples.base.push(Number(process.hrtime.bigint() - t0));
      const t1 = process.hrtime.bigint();
      log.log(input(i));
      samples[name].push(Number(process.hrtime.bigint() - t1));
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (sink === 0) throw new Error('unreachable');
  await Promise.all([off.activityLog.close(), on.activityLog.close()]);
  const counted = collector.counters.stored;
  if (counted !== CALLS) throw new Error(`collector counted ${counted} stored, expected ${CALLS}`);
  return {
    offMedianNs: median(samples.off),
    onMedianNs: median(samples.on),
    offP99Ns: percentile(samples.off, 99),
    onP99Ns: percentile(samples.on, 99),
    baseMedianNs: median(samples.base),
  };
}

/** log() + flush of INGEST activities into SQLite in memory, activities per second. */
async function ingest(spoolDir, withMetrics) {
  const { activityLog, store, collector } = await openLog(spoolDir);
  await store.migrate();
  if (!withMetrics) collector.close();
  const started = performance.now();
  for (let i = 0; i < INGEST; i++) {
    activityLog.log(input(i));
    if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
  }
  await activityLog.flush();
  const seconds = (performance.now() - started) / 1000;
  await activityLog.close();
  return INGEST / seconds;
}

/** A stand-in for a worker process: its collector filled with an hour of history and lag. */
function busyCollector(index, nowMs) {
  let clock = nowMs - 59 * 60_000;
  const collector = new MetricsCollector({ nowMs: () => clock });
  const bus = new EventEmitter();
  const breaker = new CircuitBreaker({
    name: 'store',
    failureThreshold: 5,
    cooldownMs: 10_000,
    timeoutMs: 1000,
  });
  collector.listen(bus);
  collector.include({ worker: { breaker } });
  const activities = Array.from({ length: 500 }, (_, i) => ({ createdAt: new Date(clock - (i % 97) * 7) }));
  for (let minute = 0; minute < 60; minute++) {
    clock = nowMs - (59 - minute) * 60_000;
    const stored = { sink: 'worker', destination: 'store', by: 'worker', replayed: false, durationMs: 5 };
    bus.emit('stored', { ...stored, count: 500 + index, activities });
    if (minute % 7 === 0) {
      const failed = { sink: 'worker', destination: 'store', by: 'worker', error: new Error('bench') };
      bus.emit('writeFailed', { ...failed, count: 10, willRetry: true, failedJobs: 0 });
    }
  }
  clock = nowMs;
  return collector;
}

/** Median time of a full snapshot (reports of PROCESSES processes, totals, history, job counts). */
async function aggregation() {
  const queueName = `bench-metrics-${process.pid}`;
  const config = loadConfig({
    env: {
      QUEUE_CONNECTION: 'redis',
      REDIS_URL,
      ACTIVITY_LOG_METHOD: 'queue',
      ACTIVITY_LOG_QUEUE_NAME: queueName,
    },
  });
  const redis = new Redis(REDIS_URL);
  const nowMs = Date.now();
  const publishers = [];
  for (let i = 0; i < PROCESSES; i++) {
    const publisher = new MetricsPublisher({ redis, queueName, collector: busyCollector(i, nowMs) });
    await publisher.publish();
    publishers.push(publisher);
  }
  const reader = await connectMonitoringReader(config);
  const times = [];
  let reportBytes = 0;
  for (let i = 0; i < READS + 5; i++) {
    const started = performance.now();
    const { data } = await reader.snapshot();
    const elapsed = performance.now() - started;
    if (data.workers.length !== PROCESSES) throw new Error(`saw ${data.workers.length} workers`);
    if (i >= 5) times.push(elapsed);
    reportBytes = JSON.stringify(data).length;
  }
  await reader.close();
  for (const publisher of publishers) await publisher.close();
  await removeMetricsKeys(redis, queueName);
  redis.disconnect();
  return { medianMs: median(times), p99Ms: percentile(times, 99), snapshotBytes: reportBytes };
}

export async function run() {
  const spoolDir = await mkdtemp(join(tmpdir(), 'bench-metrics-'));
  try {
    await logCost(join(spoolDir, 'warm'));
    const cost = await logCost(join(spoolDir, 'cost'));
    await ingest(join(spoolDir, 'warm-ingest'), false);
    const off = [];
    const on = [];
    for (let round = 0; round < 3; round++) {
      off.push(await ingest(join(spoolDir, `off-${round}`), false));
      on.push(await ingest(join(spoolDir, `on-${round}`), true));
    }
    const aggregated = await aggregation();
    const result = {
      machine: machine(),
      logCost: { ...cost, ratio: ratio(cost.onMedianNs, cost.offMedianNs), target: '≤ 1.1×' },
      ingest: {
        offPerSecond: Math.round(median(off)),
        onPerSecond: Math.round(median(on)),
        ratio: ratio(median(on), median(off)),
        samples: { off: off.map(Math.round), on: on.map(Math.round) },
      },
      aggregation: { processes: PROCESSES, ...aggregated, target: '< 50 ms median' },
    };
    printTable('monitoring', [
      ['log() median, metrics off', `${cost.offMedianNs} ns`],
      ['log() median, metrics on', `${cost.onMedianNs} ns`, `${result.logCost.ratio}×`],
      ['log() p99 off / on', `${cost.offP99Ns} / ${cost.onP99Ns} ns`],
      [
        'ingest off / on',
        `${result.ingest.offPerSecond} / ${result.ingest.onPerSecond} /s`,
        `${result.ingest.ratio}×`,
      ],
      [
        `snapshot of ${PROCESSES} processes`,
        `${aggregated.medianMs.toFixed(1)} ms median`,
        `p99 ${aggregated.p99Ms.toFixed(1)} ms`,
      ],
    ]);
    return result;
  } finally {
    await rm(spoolDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await run(), null, 2));
}
