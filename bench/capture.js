// Change capture benchmark (PostgreSQL): how fast one bulk UPDATE becomes stored activities,
// against raw multi-row INSERTs of activities of the same shape, and what capture and tagging add
// to the application's own write transactions. Usage: npm run bench -- capture (after a build).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createActivityLog, loadConfig } from '../dist/index.js';
import { runCapture, setUpCapture } from '../dist/runtime/run-capture.js';
import { createStore } from '../dist/store/create-store.js';
import { machine, median, printTable, ratio } from './stats.js';

const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROWS = Number(process.env.BENCH_CAPTURE_ROWS ?? 100_000);
const TRANSACTIONS = Number(process.env.BENCH_CAPTURE_TRANSACTIONS ?? 2_000);
const ROUNDS = Number(process.env.BENCH_CAPTURE_ROUNDS ?? 3);
const SOURCE = `bench_capture_orders_${process.pid}`;
const TABLE = `bench_capture_activity_${process.pid}`;
const SLOT = `bench_capture_${process.pid}`;

function env(spoolDir) {
  return {
    DATABASE_URL: PG_URL,
    ACTIVITY_LOG_TABLE: TABLE,
    ACTIVITY_LOG_METHOD: 'batch',
    ACTIVITY_LOG_BATCH_SIZE: '1000',
    ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    ACTIVITY_LOG_CAPTURE_SOURCE: PG_URL,
    ACTIVITY_LOG_CAPTURE_TABLES: SOURCE,
    ACTIVITY_LOG_CAPTURE_SLOT: SLOT,
    ACTIVITY_LOG_CAPTURE_SUBJECTS: `${SOURCE}:Order`,
  };
}

function startCapture(config) {
  let stop = () => undefined;
  const stopRequested = new Promise((resolve) => {
    stop = resolve;
  });
  const running = runCapture(config, {
    from: 'saved',
    print: () => undefined,
    warn: () => undefined,
    stopRequested,
  });
  return async () => {
    stop();
    return running;
  };
}

async function count(db) {
  const result = await db.query(`SELECT count(*)::int AS n FROM "${TABLE}"`);
  return result.rows[0].n;
}

/** `activity-log capture` in a process of its own, as it runs in production; resolves once it reads. */
async function spawnCapture(spoolDir) {
  const bin = fileURLToPath(new URL('../bin/activity-log.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'capture'], {
    env: { PATH: process.env.PATH ?? '', ...env(spoolDir) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      if (chunk.includes('capture started')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`capture exited with ${code}`)));
  });
  return async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
}

/** Rows/s from the COMMIT of one UPDATE of every row to the last of its activities stored. */
async function captureRound(db, config) {
  await db.query(`TRUNCATE "${TABLE}"`);
  const stop = startCapture(config);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const started = performance.now();
  await db.query(`UPDATE "${SOURCE}" SET total = total + 1, status = 'round'`);
  while ((await count(db)) < ROWS) await new Promise((resolve) => setTimeout(resolve, 20));
  const seconds = (performance.now() - started) / 1000;
  await stop();
  return ROWS / seconds;
}

/** The raw baseline: activities of the same shape in 1000-row INSERTs through pg, nothing else. */
async function rawRound(db) {
  await db.query(`TRUNCATE "${TABLE}"`);
  const createdAt = new Date();
  const batch = randomUUID();
  const started = performance.now();
  for (let first = 1; first <= ROWS; first += 1000) {
    const values = [];
    const params = [];
    for (let id = first; id < first + 1000 && id <= ROWS; id++) {
      const properties = JSON.stringify({
        attributes: { total: `${id + 1}.00`, status: 'round' },
        old: { total: `${id}.00`, status: 'new' },
        capture: { source: 'postgres', table: SOURCE, position: '0/1', index: id },
      });
      const base = params.length;
      values.push(
        `($${base + 1}, 'capture', $${base + 2}, 'Order', $${base + 3}, 'updated', $${base + 4}::jsonb, $${base + 5}, $${base + 6})`,
      );
      params.push(randomUUID(), `updated Order ${id}`, String(id), properties, batch, createdAt);
    }
    await db.query(
      `INSERT INTO "${TABLE}" (id, log_name, description, subject_type, subject_id, event, properties, batch_uuid, created_at) VALUES ${values.join(', ')} ON CONFLICT DO NOTHING`,
      params,
    );
  }
  return ROWS / ((performance.now() - started) / 1000);
}

/** Median microseconds of one application transaction (BEGIN, [tag,] one UPDATE, COMMIT). */
async function transactions(db, activityLog, tagged) {
  const times = [];
  for (let i = 0; i < TRANSACTIONS; i++) {
    const id = 1 + (i % ROWS);
    const started = performance.now();
    await db.query('BEGIN');
    if (tagged) await activityLog.tagTransaction(db, { causer: { type: 'User', id: 7 } });
    await db.query(`UPDATE "${SOURCE}" SET total = total + 1 WHERE id = $1`, [id]);
    await db.query('COMMIT');
    times.push((performance.now() - started) * 1000);
  }
  return median(times);
}

export async function run() {
  const spoolDir = mkdtempSync(join(tmpdir(), 'bench-capture-'));
  const config = loadConfig({ env: env(spoolDir) });
  const db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  const activityLog = createActivityLog({ env: env(spoolDir) });
  try {
    await db.query(`DROP TABLE IF EXISTS "${SOURCE}"`);
    await db.query(
      `CREATE TABLE "${SOURCE}" (id integer PRIMARY KEY, status text NOT NULL, total numeric(12,2) NOT NULL)`,
    );
    await db.query(`INSERT INTO "${SOURCE}" SELECT g, 'new', g FROM generate_series(1, $1::int) AS g`, [
      ROWS,
    ]);
    const store = createStore(config.database);
    await store.migrate();
    await store.close();
    await setUpCapture(config, () => undefined);

    const capture = [];
    const raw = [];
    const plain = [];
    const whileCapturing = [];
    const tagged = [];
    for (let round = 0; round < ROUNDS; round++) {
      raw.push(await rawRound(db));
      capture.push(await captureRound(db, config));
      // Transactions with the slot idle, with a capture process reading it, and tagged; the idle
      // slot's figure is the mean of one run before the capture process starts (right after the
      // bulk round, while the server still writes it out) and one after it stops.
      const before = await transactions(db, activityLog, false);
      const stop = await spawnCapture(spoolDir);
      whileCapturing.push(await transactions(db, activityLog, false));
      tagged.push(await transactions(db, activityLog, true));
      await stop();
      plain.push((before + (await transactions(db, activityLog, false))) / 2);
    }
    const result = {
      machine: machine(),
      rows: ROWS,
      transactions: TRANSACTIONS,
      rawRowsPerSecond: raw,
      captureRowsPerSecond: capture,
      transactionMicros: { plain, whileCapturing, tagged },
    };
    printTable('capture (PostgreSQL): measure | median | ratio', [
      ['raw 1000-row INSERT of the activities', `${Math.round(median(raw))} rows/s`, ''],
      [
        `capture of one UPDATE of ${ROWS} rows, commit to stored`,
        `${Math.round(median(capture))} rows/s`,
        `${ratio(median(capture), median(raw))}× raw`,
      ],
      ['app transaction, capture not running', `${Math.round(median(plain))} µs`, ''],
      [
        'app transaction, capture running',
        `${Math.round(median(whileCapturing))} µs`,
        `${ratio(median(whileCapturing), median(plain))}× not running`,
      ],
      [
        'app transaction, tagged, capture running',
        `${Math.round(median(tagged))} µs`,
        `${ratio(median(tagged), median(whileCapturing))}× untagged`,
      ],
    ]);
    return result;
  } finally {
    await activityLog.close();
    await db.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
      SLOT,
    ]);
    await db.query(`DROP PUBLICATION IF EXISTS "${SLOT}"`);
    await db
      .query(`DELETE FROM activity_log_capture_positions WHERE slot = $1`, [SLOT])
      .catch(() => undefined);
    await db.query(`DROP TABLE IF EXISTS "${SOURCE}", "${TABLE}", "${TABLE}_seals", "${TABLE}_migrations"`);
    await db.end();
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await run(), null, 2));
}
