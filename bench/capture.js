// Change capture benchmark (PostgreSQL and MariaDB): how fast one bulk UPDATE becomes stored
// activities, against raw multi-row INSERTs of activities of the same shape, and what capture and
// tagging add to the application's own write transactions. Usage: npm run bench -- capture (after
// a build); BENCH_CAPTURE_DIALECTS=postgres or mariadb runs one of them.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { createActivityLog, loadConfig } from '../dist/index.js';
import { runCapture, setUpCapture } from '../dist/runtime/run-capture.js';
import { createStore } from '../dist/store/create-store.js';
import { machine, median, printTable, ratio } from './stats.js';

const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const DIALECTS = (process.env.BENCH_CAPTURE_DIALECTS ?? 'postgres,mariadb').split(',');
const ROWS = Number(process.env.BENCH_CAPTURE_ROWS ?? 100_000);
const TRANSACTIONS = Number(process.env.BENCH_CAPTURE_TRANSACTIONS ?? 2_000);
const ROUNDS = Number(process.env.BENCH_CAPTURE_ROUNDS ?? 3);
const SOURCE = `bench_capture_orders_${process.pid}`;
const TABLE = `bench_capture_activity_${process.pid}`;
const SLOT = `bench_capture_${process.pid}`;

/** What differs between the two databases: their SQL, their client, their clean-up. */
const DATABASES = {
  postgres: {
    url: PG_URL,
    async connect() {
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      return {
        executor: client,
        query: async (text, params = []) => (await client.query(text, params)).rows,
        end: () => client.end(),
      };
    },
    quote: (name) => `"${name}"`,
    placeholders: (base, count) => Array.from({ length: count }, (_, i) => `$${base + i + 1}`),
    createSource: `CREATE TABLE "${SOURCE}" (id integer PRIMARY KEY, status text NOT NULL, total numeric(12,2) NOT NULL)`,
    fillSource: `INSERT INTO "${SOURCE}" SELECT g, 'new', g FROM generate_series(1, ${ROWS}) AS g`,
    truncate: (table) => `TRUNCATE "${table}"`,
    ignoreDuplicates: (insert) => `${insert} ON CONFLICT DO NOTHING`,
    propertiesCast: '::jsonb',
    updateOne: `UPDATE "${SOURCE}" SET total = total + 1 WHERE id = $1`,
    async dropCapture(db) {
      await db.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [
        SLOT,
      ]);
      await db.query(`DROP PUBLICATION IF EXISTS "${SLOT}"`);
      await db
        .query('DELETE FROM activity_log_capture_positions WHERE slot = $1', [SLOT])
        .catch(() => undefined);
      await db.query('DELETE FROM activity_log_capture_stats WHERE slot = $1', [SLOT]).catch(() => undefined);
    },
  },
  mariadb: {
    url: MYSQL_URL,
    async connect() {
      const connection = await mysql.createConnection(MYSQL_URL);
      return {
        executor: connection,
        query: async (text, params = []) => (await connection.query(text, params))[0],
        end: () => connection.end(),
      };
    },
    quote: (name) => `\`${name}\``,
    placeholders: (_base, count) => Array.from({ length: count }, () => '?'),
    createSource: `CREATE TABLE \`${SOURCE}\` (id INT PRIMARY KEY, status VARCHAR(20) NOT NULL, total DECIMAL(12,2) NOT NULL) ENGINE=InnoDB`,
    // The Sequence engine's seq_1_to_N table, built into MariaDB.
    fillSource: `INSERT INTO \`${SOURCE}\` SELECT seq, 'new', seq FROM seq_1_to_${ROWS}`,
    truncate: (table) => `TRUNCATE \`${table}\``,
    ignoreDuplicates: (insert) => insert.replace(/^INSERT/, 'INSERT IGNORE'),
    propertiesCast: '',
    updateOne: `UPDATE \`${SOURCE}\` SET total = total + 1 WHERE id = ?`,
    async dropCapture(db) {
      await db
        .query('DELETE FROM activity_log_capture_positions WHERE slot = ?', [SLOT])
        .catch(() => undefined);
      await db.query('DELETE FROM activity_log_capture_stats WHERE slot = ?', [SLOT]).catch(() => undefined);
    },
  },
};

function env(database, spoolDir) {
  return {
    DATABASE_URL: database.url,
    ACTIVITY_LOG_TABLE: TABLE,
    ACTIVITY_LOG_METHOD: 'batch',
    ACTIVITY_LOG_BATCH_SIZE: '1000',
    ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    ACTIVITY_LOG_CAPTURE_SOURCE: database.url,
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

async function count(database, db) {
  const rows = await db.query(`SELECT count(*) AS n FROM ${database.quote(TABLE)}`);
  return Number(rows[0].n);
}

/** `activity-log capture` in a process of its own, as it runs in production; resolves once it reads. */
async function spawnCapture(database, spoolDir) {
  const bin = fileURLToPath(new URL('../bin/activity-log.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'capture'], {
    env: { PATH: process.env.PATH ?? '', ...env(database, spoolDir) },
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
async function captureRound(database, db, config) {
  await db.query(database.truncate(TABLE));
  const stop = startCapture(config);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const started = performance.now();
  await db.query(`UPDATE ${database.quote(SOURCE)} SET total = total + 1, status = 'round'`);
  while ((await count(database, db)) < ROWS) await new Promise((resolve) => setTimeout(resolve, 20));
  const seconds = (performance.now() - started) / 1000;
  await stop();
  return ROWS / seconds;
}

/** The raw baseline: activities of the same shape in 1000-row INSERTs through the driver, nothing else. */
async function rawRound(database, db) {
  await db.query(database.truncate(TABLE));
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
        capture: { source: 'bench', table: SOURCE, position: '0/1', index: id },
      });
      const [pId, pDescription, pSubject, pProperties, pBatch, pCreatedAt] = database.placeholders(
        params.length,
        6,
      );
      values.push(
        `(${pId}, 'capture', ${pDescription}, 'Order', ${pSubject}, 'updated', ${pProperties}${database.propertiesCast}, ${pBatch}, ${pCreatedAt})`,
      );
      params.push(randomUUID(), `updated Order ${id}`, String(id), properties, batch, createdAt);
    }
    const columns = [
      'id',
      'log_name',
      'description',
      'subject_type',
      'subject_id',
      'event',
      'properties',
      'batch_uuid',
      'created_at',
    ];
    await db.query(
      database.ignoreDuplicates(
        `INSERT INTO ${database.quote(TABLE)} (${columns.map(database.quote).join(', ')}) VALUES ${values.join(', ')}`,
      ),
      params,
    );
  }
  return ROWS / ((performance.now() - started) / 1000);
}

/** Median microseconds of one application transaction (BEGIN, [tag,] one UPDATE, COMMIT). */
async function transactions(database, db, activityLog, tagged) {
  const times = [];
  for (let i = 0; i < TRANSACTIONS; i++) {
    const id = 1 + (i % ROWS);
    const started = performance.now();
    await db.query('BEGIN');
    if (tagged) await activityLog.tagTransaction(db.executor, { causer: { type: 'User', id: 7 } });
    await db.query(database.updateOne, [id]);
    await db.query('COMMIT');
    times.push((performance.now() - started) * 1000);
  }
  return median(times);
}

async function runDialect(name) {
  const database = DATABASES[name];
  const spoolDir = mkdtempSync(join(tmpdir(), 'bench-capture-'));
  const config = loadConfig({ env: env(database, spoolDir) });
  const db = await database.connect();
  const activityLog = createActivityLog({ env: env(database, spoolDir) });
  try {
    await db.query(`DROP TABLE IF EXISTS ${database.quote(SOURCE)}`);
    await db.query(database.createSource);
    await db.query(database.fillSource);
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
      raw.push(await rawRound(database, db));
      capture.push(await captureRound(database, db, config));
      // Transactions with the capture idle, with a capture process reading, and tagged; the idle
      // figure is the mean of one run before the capture process starts (right after the bulk
      // round, while the server still writes it out) and one after it stops.
      const before = await transactions(database, db, activityLog, false);
      const stop = await spawnCapture(database, spoolDir);
      whileCapturing.push(await transactions(database, db, activityLog, false));
      tagged.push(await transactions(database, db, activityLog, true));
      await stop();
      plain.push((before + (await transactions(database, db, activityLog, false))) / 2);
    }
    printTable(`capture (${name}): measure | median | ratio`, [
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
    return {
      rawRowsPerSecond: raw,
      captureRowsPerSecond: capture,
      transactionMicros: { plain, whileCapturing, tagged },
    };
  } finally {
    await activityLog.close();
    await database.dropCapture(db);
    for (const table of [SOURCE, TABLE, `${TABLE}_seals`, `${TABLE}_seals_pruned`, `${TABLE}_migrations`]) {
      await db.query(`DROP TABLE IF EXISTS ${database.quote(table)}`);
    }
    await db.end();
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

export async function run() {
  const result = { machine: machine(), rows: ROWS, transactions: TRANSACTIONS };
  for (const name of DIALECTS) {
    if (DATABASES[name] === undefined) {
      throw new Error(`BENCH_CAPTURE_DIALECTS: ${name} is not one of ${Object.keys(DATABASES).join(', ')}`);
    }
    result[name] = await runDialect(name);
  }
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await run(), null, 2));
}
