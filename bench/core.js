// Core benchmark: log() cost in `batch` mode against a build-and-serialize baseline, and `batch`
// ingest rate against a raw multi-row INSERT and against one INSERT per activity, all on MariaDB
// with the full index set, in one run. Usage: npm run bench (or node bench/core.js after a build).
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { createActivityLog, loadConfig } from '../dist/index.js';
import { createStore } from '../dist/store/create-store.js';
import { COLUMNS, input, logCostAgainstBaseline, sampleRows, timeMultiRowInserts } from './lib/workload.js';
import { machine, median, printTable, ratio, rounds } from './stats.js';

const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const TABLE = 'bench_activity_log';
const ROWS = Number(process.env.BENCH_ROWS ?? 50_000);
const SINGLE_ROWS = Number(process.env.BENCH_SINGLE_ROWS ?? 5_000);
const CALLS = Number(process.env.BENCH_CALLS ?? 100_000);

async function freshStore() {
  const store = createStore(
    loadConfig({ env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: TABLE } }).database,
  );
  const connection = await mysql.createConnection(MYSQL_URL);
  await connection.query(`DROP TABLE IF EXISTS \`${TABLE}\``);
  await connection.query(
    `DROP TABLE IF EXISTS \`${TABLE}_migrations\`, \`${TABLE}_seals\`, \`${TABLE}_seals_pruned\``,
  );
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
  const cost = await logCostAgainstBaseline(activityLog, CALLS);
  await activityLog.close();
  await connection.end();
  return cost;
}

/** The raw baseline: the same rows in 1000-row multi-row INSERTs through mysql2, nothing else. */
async function rawMultiRow() {
  const { store, connection } = await freshStore();
  await store.close();
  const rows = await sampleRows(ROWS);
  const rate = await timeMultiRowInserts(connection, TABLE, rows);
  await connection.end();
  return rate;
}

async function singleRow() {
  const { store, connection } = await freshStore();
  await store.close();
  const rows = await sampleRows(SINGLE_ROWS);
  const columns = COLUMNS.join(', ');
  const placeholders = COLUMNS.map(() => '?').join(', ');
  const started = performance.now();
  for (const row of rows) {
    await connection.execute(`INSERT INTO \`${TABLE}\` (${columns}) VALUES (${placeholders})`, row);
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
  await connection.query(
    `DROP TABLE IF EXISTS \`${TABLE}_migrations\`, \`${TABLE}_seals\`, \`${TABLE}_seals_pruned\``,
  );
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
