// Queue benchmark, in one run on MariaDB with the full index set and Redis on loopback:
// - end-to-end activities/s from log() in this (producer) process to rows committed by one and by
//   two `activity-log work` processes;
// - against (a) raw 1000-row multi-row INSERTs through mysql2 and (b) the naive design: one BullMQ
//   job per activity and one single-row INSERT per job, with the same number of worker processes;
// - log() cost per call in queue mode against building and serializing the same object.
// Usage: npm run bench -- queue   (or node bench/queue.js after a build)
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { QUEUE_PREFIX, storedCounterKey } from '../dist/delivery/queue-keys.js';
import { createActivityLog, loadConfig } from '../dist/index.js';
import { createStore } from '../dist/store/create-store.js';
import { COLUMNS, input, logCostAgainstBaseline, sampleRows, timeMultiRowInserts } from './lib/workload.js';
import { machine, median, printTable, ratio, rounds } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', 'bin', 'activity-log.js');
const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const TABLE = 'bench_queue_activity_log';
const ROWS = Number(process.env.BENCH_QUEUE_ROWS ?? 100_000);
const NAIVE_ROWS = Number(process.env.BENCH_QUEUE_NAIVE_ROWS ?? 20_000);
const RAW_ROWS = Number(process.env.BENCH_QUEUE_RAW_ROWS ?? 50_000);
const CALLS = Number(process.env.BENCH_CALLS ?? 100_000);
/** Activities per job and per INSERT in the queue runs, the same as the raw baseline's 1000 rows. */
const BATCH_SIZE = Number(process.env.BENCH_QUEUE_BATCH_SIZE ?? 1000);

function benchEnv(queueName) {
  return {
    DATABASE_URL: MYSQL_URL,
    ACTIVITY_LOG_TABLE: TABLE,
    QUEUE_CONNECTION: 'redis',
    REDIS_URL,
    ACTIVITY_LOG_METHOD: 'queue',
    ACTIVITY_LOG_QUEUE_NAME: queueName,
    ACTIVITY_LOG_BATCH_SIZE: String(BATCH_SIZE),
  };
}

let queueSeq = 0;
function freshQueueName(label) {
  return `bench-${label}-${process.pid}-${queueSeq++}`;
}

/** Drops and re-creates the table with the library's migration (so the full index set). */
async function freshTable() {
  const connection = await mysql.createConnection(MYSQL_URL);
  await connection.query(`DROP TABLE IF EXISTS \`${TABLE}\``);
  await connection.query(
    `DROP TABLE IF EXISTS \`${TABLE}_migrations\`, \`${TABLE}_seals\`, \`${TABLE}_seals_pruned\``,
  );
  const store = createStore(loadConfig({ env: benchEnv('unused') }).database);
  await store.migrate();
  await store.close();
  return connection;
}

async function dropTable(connection) {
  await connection.query(`DROP TABLE IF EXISTS \`${TABLE}\``);
  await connection.query(
    `DROP TABLE IF EXISTS \`${TABLE}_migrations\`, \`${TABLE}_seals\`, \`${TABLE}_seals_pruned\``,
  );
  await connection.end();
}

async function obliterate(queueName) {
  const queue = new Queue(queueName, { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX });
  await queue.obliterate({ force: true });
  await queue.close();
  const redis = new Redis(REDIS_URL);
  await redis.del(storedCounterKey(queueName));
  await redis.quit();
}

/** Starts `count` processes running `args` and resolves once each printed `ready`. */
async function startProcesses(count, args, env, ready) {
  const children = [];
  for (let i = 0; i < count; i++) {
    const child = spawn(process.execPath, args, {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let errors = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      errors += chunk;
    });
    // The SIGTERM at the end is expected; anything else a worker says is shown.
    child.once('exit', (code) => {
      const unexpected = errors
        .split('\n')
        .filter((line) => line !== '' && !line.includes('SIGTERM: finishing the jobs in hand'));
      if (code !== 0 || unexpected.length > 0) process.stderr.write(`${unexpected.join('\n')}\n`);
    });
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (chunk) => {
        output += chunk;
        if (output.includes(ready)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
    });
    children.push(child);
  }
  return children;
}

async function stopProcesses(children) {
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', resolve);
          child.kill('SIGTERM');
        }),
    ),
  );
}

async function waitUntil(check, what, timeoutMs = 300_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`bench: timed out waiting for ${what}`);
}

/**
 * Ours: log() in this process → BullMQ jobs of BATCH_SIZE → `workers` work processes → rows;
 * `settings` are added to the environment of both sides (e.g. `ACTIVITY_LOG_SEAL`).
 */
export async function queueEndToEnd(workers, settings = {}) {
  const connection = await freshTable();
  const queueName = freshQueueName('queue');
  const env = { ...benchEnv(queueName), ...settings };
  const children = await startProcesses(workers, [BIN, 'work'], env, 'worker started');
  const redis = new Redis(REDIS_URL);
  const activityLog = createActivityLog({ env });
  const started = performance.now();
  for (let i = 0; i < ROWS; i++) {
    activityLog.log(input(i));
    if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
  }
  await activityLog.close();
  await waitUntil(
    async () => Number(await redis.get(storedCounterKey(queueName))) >= ROWS,
    'the workers to store every activity',
  );
  const seconds = (performance.now() - started) / 1000;
  await stopProcesses(children);
  await redis.quit();
  const [[{ n }]] = await connection.query(`SELECT COUNT(*) AS n FROM \`${TABLE}\``);
  if (Number(n) !== ROWS) throw new Error(`queue run stored ${n} rows, expected ${ROWS}`);
  await obliterate(queueName);
  await dropTable(connection);
  return ROWS / seconds;
}

/** The naive design's worker: one job per activity, one single-row INSERT per job. */
async function naiveWorker(queueName) {
  const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 2 });
  const placeholders = COLUMNS.map(() => '?').join(', ');
  const sql = `INSERT IGNORE INTO \`${TABLE}\` (${COLUMNS.join(', ')}) VALUES (${placeholders})`;
  const worker = new Worker(
    queueName,
    async (job) => {
      const row = job.data;
      await pool.execute(
        sql,
        COLUMNS.map((column) =>
          column === 'properties'
            ? JSON.stringify(row.properties)
            : column === 'created_at'
              ? new Date(row.created_at)
              : row[column],
        ),
      );
    },
    {
      connection: { url: REDIS_URL, maxRetriesPerRequest: null },
      prefix: QUEUE_PREFIX,
      removeOnComplete: { count: 0 },
    },
  );
  await worker.waitUntilReady();
  console.log('naive worker started');
  process.once('SIGTERM', async () => {
    await worker.close();
    await pool.end();
  });
}

/** Naive: one job per log() (64 enqueues in flight, as from concurrent requests) → one INSERT each. */
async function naiveEndToEnd(workers) {
  const connection = await freshTable();
  const queueName = freshQueueName('naive');
  const children = await startProcesses(
    workers,
    [fileURLToPath(import.meta.url), '--naive-worker', queueName],
    {},
    'naive worker started',
  );
  const { buildActivity } = await import('../dist/core/build-activity.js');
  const { defaultModelResolver } = await import('../dist/core/activity.js');
  const { activityToJson } = await import('../dist/core/activity-json.js');
  const options = { resolveModel: defaultModelResolver, isSecretKey: () => false };
  const queue = new Queue(queueName, { connection: { url: REDIS_URL }, prefix: QUEUE_PREFIX });
  await queue.waitUntilReady();
  const started = performance.now();
  const inFlight = new Set();
  for (let i = 0; i < NAIVE_ROWS; i++) {
    const job = queue
      .add('activity', activityToJson(buildActivity(input(i), undefined, options)), {
        removeOnComplete: true,
      })
      .finally(() => inFlight.delete(job));
    inFlight.add(job);
    if (inFlight.size >= 64) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await waitUntil(async () => {
    const [[{ n }]] = await connection.query(`SELECT COUNT(*) AS n FROM \`${TABLE}\``);
    return Number(n) >= NAIVE_ROWS;
  }, 'the naive workers to store every activity');
  const seconds = (performance.now() - started) / 1000;
  await stopProcesses(children);
  await queue.close();
  await obliterate(queueName);
  await dropTable(connection);
  return NAIVE_ROWS / seconds;
}

/** Baseline (a): 1000-row multi-row INSERTs of prepared rows through mysql2, nothing else. */
async function rawMultiRow() {
  const connection = await freshTable();
  const rows = await sampleRows(RAW_ROWS);
  const rate = await timeMultiRowInserts(connection, TABLE, rows);
  await dropTable(connection);
  return rate;
}

/** Per-call cost of log() in queue mode (Redis and a worker-less queue behind it) against the baseline. */
async function logCost() {
  const queueName = freshQueueName('cost');
  const activityLog = createActivityLog({ env: benchEnv(queueName) });
  const cost = await logCostAgainstBaseline(activityLog, CALLS);
  await activityLog.close();
  await obliterate(queueName);
  return cost;
}

export async function run({ repeats = 3 } = {}) {
  const cost = await rounds(repeats, logCost);
  // One untimed round warms MariaDB's buffer pool and the disk; then the designs take turns in
  // every round, so drift in the machine's speed affects them alike.
  await rawMultiRow();
  await queueEndToEnd(1);
  await naiveEndToEnd(1);
  const raw = [];
  const queue1 = [];
  const queue2 = [];
  const naive1 = [];
  const naive2 = [];
  for (let round = 0; round < repeats; round++) {
    raw.push(await rawMultiRow());
    queue1.push(await queueEndToEnd(1));
    naive1.push(await naiveEndToEnd(1));
    queue2.push(await queueEndToEnd(2));
    naive2.push(await naiveEndToEnd(2));
  }

  const oursMedian = median(cost.map((c) => c.oursMedianNs));
  const baseMedian = median(cost.map((c) => c.baseMedianNs));
  const oursP99 = median(cost.map((c) => c.oursP99Ns));
  const baseP99 = median(cost.map((c) => c.baseP99Ns));
  const rates = {
    rawMultiRow: median(raw),
    queueOneWorker: median(queue1),
    queueTwoWorkers: median(queue2),
    naiveOneWorker: median(naive1),
    naiveTwoWorkers: median(naive2),
  };
  const results = {
    machine: machine(),
    settings: { rows: ROWS, naiveRows: NAIVE_ROWS, rawRows: RAW_ROWS, batchSize: BATCH_SIZE, repeats },
    logCostNs: { median: oursMedian, p99: oursP99, baselineMedian: baseMedian, baselineP99: baseP99 },
    logCostRatio: { median: ratio(oursMedian, baseMedian), p99: ratio(oursP99, baseP99) },
    endToEndActivitiesPerSecond: rates,
    samples: { rawMultiRow: raw, queue1, queue2, naive1, naive2 },
    ratios: {
      oneWorkerVsRaw: ratio(rates.queueOneWorker, rates.rawMultiRow),
      twoWorkersVsRaw: ratio(rates.queueTwoWorkers, rates.rawMultiRow),
      oneWorkerVsNaive: ratio(rates.queueOneWorker, rates.naiveOneWorker),
      twoWorkersVsNaive: ratio(rates.queueTwoWorkers, rates.naiveTwoWorkers),
    },
  };
  printTable(`Queue (MariaDB, full index set; Redis on loopback; medians of ${repeats})`, [
    ['log() median ns (queue mode)', oursMedian, `baseline ${baseMedian}`, `${results.logCostRatio.median}×`],
    ['log() p99 ns (queue mode)', oursP99, `baseline ${baseP99}`, `${results.logCostRatio.p99}×`],
    ['raw 1000-row INSERT rows/s (a)', Math.round(rates.rawMultiRow), '', ''],
    [
      'queue, 1 worker, activities/s',
      Math.round(rates.queueOneWorker),
      `vs (a) ${results.ratios.oneWorkerVsRaw}×`,
      `vs (b) ${results.ratios.oneWorkerVsNaive}×`,
    ],
    [
      'queue, 2 workers, activities/s',
      Math.round(rates.queueTwoWorkers),
      `vs (a) ${results.ratios.twoWorkersVsRaw}×`,
      `vs (b) ${results.ratios.twoWorkersVsNaive}×`,
    ],
    ['naive, 1 worker, activities/s (b)', Math.round(rates.naiveOneWorker), '', ''],
    ['naive, 2 workers, activities/s (b)', Math.round(rates.naiveTwoWorkers), '', ''],
  ]);
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--naive-worker') {
    naiveWorker(process.argv[3]).catch((error) => {
      console.error(`bench: naive worker: ${error.message}`);
      process.exit(1);
    });
  } else {
    run().then(
      (results) => console.log(JSON.stringify(results, null, 2)),
      (error) => {
        console.error(`bench: ${error.message}`);
        process.exitCode = 1;
      },
    );
  }
}
