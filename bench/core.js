// Core benchmark: log() cost in `batch` mode against a build-and-serialize baseline, and `batch`
// ingest rate against a raw multi-row INSERT and against one INSERT per activity, all on MariaDB
// with the full index set, in one run. Usage: npm run bench (or node bench/core.js after a build).
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { createActivityLog, loadConfig } from '../dist/index.js';
import { createStore } from '../dist/store/create-store.js';
import { machine, median, percentile, printTable, ratio, rounds } from './stats.js';

const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const TABLE = 'bench_activity_log';
const ROWS = Number(process.env.BENCH_ROWS ?? 50_000);
const SINGLE_ROWS = Number(process.env.BENCH_SINGLE_ROWS ?? 5_000);
const CALLS = Number(process.env.BENCH_CALLS ?? 100_000);

const user = { type: 'User', id: 17 };
const order = { type: 'Order', id: 4242 };
const properties = { attributes: { total: 10.5, status: 'paid' }, old: { total: 9.99, status: 'open' } };

function input(i) {
  return {
    description: 'updated order',
    logName: 'orders',
    event: 'updated',
    subject: order,
    causer: user,
    properties,
    ipAddress: '203.0.113.9',
    url: `https://shop.example/orders/${i}`,
    method: 'PATCH',
  };
}

/** Baseline: build the same row object by hand and serialize it — what any logger must at least do. */
function baseline(i) {
  const row = {
    id: `0190a0b0-0000-7000-8000-${String(i).padStart(12, '0')}`,
    log_name: 'orders',
    description: 'updated order',
    subject_type: order.type,
    subject_id: String(order.id),
    event: 'updated',
    causer_type: user.type,
    causer_id: String(user.id),
    properties: JSON.stringify(properties),
    batch_uuid: null,
    ip_address: '203.0.113.9',
    url: `https://shop.example/orders/${i}`,
    method: 'PATCH',
    user_agent: null,
    created_at: new Date(),
  };
  return JSON.stringify(row);
}

async function freshStore() {
  const store = createStore(
    loadConfig({ env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: TABLE } }).database,
  );
  const connection = await mysql.createConnection(MYSQL_URL);
  await connection.query(`DROP TABLE IF EXISTS \`${TABLE}\``);
  await connection.query(`DROP TABLE IF EXISTS \`${TABLE}_migrations\``);
  await store.migrate();
  return { store, connection };
}

function openLog(extra = {}) {
  return createActivityLog({
    env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: TABLE },
    config: { method: 'batch', batchSize: 1000, ...extra },
  });
}

/** Per-call cost of log() (batch mode, real MariaDB behind it) and of the baseline, interleaved in blocks. */
async function logCost() {
  const { store, connection } = await freshStore();
  await store.close();
  const activityLog = openLog();
  const ours = [];
  const base = [];
  let sink = 0;
  for (let block = 0; block < CALLS / 1000; block++) {
    for (let i = 0; i < 1000; i++) {
      const t0 = process.hrtime.bigint();
      sink += baseline(i).length;
      base.push(Number(process.hrtime.bigint() - t0));
      const t1 = process.hrtime.bigint();
      activityLog.log(input(i));
      ours.push(Number(process.hrtime.bigint() - t1));
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await activityLog.close();
  await connection.end();
  if (sink === 0) throw new Error('unreachable');
  return {
    oursMedianNs: median(ours),
    oursP99Ns: percentile(ours, 99),
    baseMedianNs: median(base),
    baseP99Ns: percentile(base, 99),
  };
}

function rowValues(activityLogRow) {
  return [
    activityLogRow.id,
    activityLogRow.logName,
    activityLogRow.description,
    activityLogRow.subjectType,
    activityLogRow.subjectId,
    activityLogRow.event,
    activityLogRow.causerType,
    activityLogRow.causerId,
    JSON.stringify(activityLogRow.properties),
    activityLogRow.batchUuid,
    activityLogRow.ipAddress,
    activityLogRow.url,
    activityLogRow.method,
    activityLogRow.userAgent,
    activityLogRow.createdAt,
  ];
}

const COLUMNS =
  'id, log_name, description, subject_type, subject_id, event, causer_type, causer_id, properties, batch_uuid, ip_address, url, method, user_agent, created_at';

/** Rows of the same shape the logger makes, built once outside the timed part of the baselines. */
async function sampleRows(count) {
  const { buildActivity } = await import('../dist/core/build-activity.js');
  const { defaultModelResolver } = await import('../dist/core/activity.js');
  const options = { resolveModel: defaultModelResolver, isSecretKey: () => false };
  return Array.from({ length: count }, (_, i) => rowValues(buildActivity(input(i), undefined, options)));
}

async function rawMultiRow() {
  const { store, connection } = await freshStore();
  await store.close();
  const rows = await sampleRows(ROWS);
  const placeholders = `(${COLUMNS.split(',')
    .map(() => '?')
    .join(', ')})`;
  const started = performance.now();
  for (let i = 0; i < rows.length; i += 1000) {
    const chunk = rows.slice(i, i + 1000);
    await connection.query(
      `INSERT INTO \`${TABLE}\` (${COLUMNS}) VALUES ${chunk.map(() => placeholders).join(', ')}`,
      chunk.flat(),
    );
  }
  const seconds = (performance.now() - started) / 1000;
  await connection.end();
  return rows.length / seconds;
}

async function singleRow() {
  const { store, connection } = await freshStore();
  await store.close();
  const rows = await sampleRows(SINGLE_ROWS);
  const placeholders = COLUMNS.split(',')
    .map(() => '?')
    .join(', ');
  const started = performance.now();
  for (const row of rows) {
    await connection.execute(`INSERT INTO \`${TABLE}\` (${COLUMNS}) VALUES (${placeholders})`, row);
  }
  const seconds = (performance.now() - started) / 1000;
  await connection.end();
  return rows.length / seconds;
}

async function batchIngest() {
  const { store, connection } = await freshStore();
  await store.close();
  const activityLog = openLog();
  const started = performance.now();
  for (let i = 0; i < ROWS; i++) {
    activityLog.log(input(i));
    if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
  }
  await activityLog.flush();
  const seconds = (performance.now() - started) / 1000;
  await activityLog.close();
  const [[{ n }]] = await connection.query(`SELECT COUNT(*) AS n FROM \`${TABLE}\``);
  await connection.query(`DROP TABLE IF EXISTS \`${TABLE}\``);
  await connection.query(`DROP TABLE IF EXISTS \`${TABLE}_migrations\``);
  await connection.end();
  if (Number(n) !== ROWS) throw new Error(`batch ingest stored ${n} rows, expected ${ROWS}`);
  return ROWS / seconds;
}

export async function run({ repeats = 3 } = {}) {
  // One untimed warm-up of each, then rounds in which the designs take turns, so a noisy
  // neighbour slows every design alike rather than whichever happened to run at the time.
  await logCost();
  await rawMultiRow();
  await batchIngest();
  const cost = [];
  const raw = [];
  const single = [];
  const batch = [];
  await rounds(repeats, async () => {
    cost.push(await logCost());
    raw.push(await rawMultiRow());
    single.push(await singleRow());
    batch.push(await batchIngest());
  });
  const oursMedian = median(cost.map((c) => c.oursMedianNs));
  const baseMedian = median(cost.map((c) => c.baseMedianNs));
  const oursP99 = median(cost.map((c) => c.oursP99Ns));
  const baseP99 = median(cost.map((c) => c.baseP99Ns));
  const results = {
    machine: machine(),
    logCostNs: { median: oursMedian, p99: oursP99, baselineMedian: baseMedian, baselineP99: baseP99 },
    logCostRatio: { median: ratio(oursMedian, baseMedian), p99: ratio(oursP99, baseP99) },
    ingestRowsPerSecond: { batch: median(batch), rawMultiRow: median(raw), singleRowInserts: median(single) },
    samples: {
      batch: batch.map(Math.round),
      rawMultiRow: raw.map(Math.round),
      singleRowInserts: single.map(Math.round),
    },
  };
  results.ingestRatio = {
    batchVsRaw: ratio(results.ingestRowsPerSecond.batch, results.ingestRowsPerSecond.rawMultiRow),
    batchVsSingle: ratio(results.ingestRowsPerSecond.batch, results.ingestRowsPerSecond.singleRowInserts),
  };
  printTable('Core (MariaDB, full index set)', [
    ['log() median ns (batch mode)', oursMedian, `baseline ${baseMedian}`, `${results.logCostRatio.median}×`],
    ['log() p99 ns (batch mode)', oursP99, `baseline ${baseP99}`, `${results.logCostRatio.p99}×`],
    ['batch ingest rows/s', Math.round(results.ingestRowsPerSecond.batch), '', ''],
    [
      'raw 1000-row INSERT rows/s',
      Math.round(results.ingestRowsPerSecond.rawMultiRow),
      'batch vs raw',
      `${results.ingestRatio.batchVsRaw}×`,
    ],
    [
      'one INSERT per activity rows/s',
      Math.round(results.ingestRowsPerSecond.singleRowInserts),
      'batch vs single',
      `${results.ingestRatio.batchVsSingle}×`,
    ],
  ]);
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  run().then(
    (results) => console.log(JSON.stringify(results, null, 2)),
    (error) => {
      console.error(`bench: ${error.message}`);
      process.exitCode = 1;
    },
  );
}
