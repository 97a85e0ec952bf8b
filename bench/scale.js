// Scale-out benchmark, in one run, on MariaDB and PostgreSQL, unpartitioned and partitioned by month:
// - seeds BENCH_SCALE_ROWS rows (default 10,000,000) generated server-side (MariaDB: INSERT … SELECT
//   from the Sequence engine; PostgreSQL: INSERT … SELECT FROM generate_series) into a table made by
//   the library's own migrate, the unpartitioned table's secondary indexes dropped during the load
//   and re-created after with their original definitions (checked identical); the partitioned copy
//   is filled from it by INSERT … SELECT;
// - query() latency (p50/p99) per indexed filter, two combined filters and keyset pages 1, 6 and 11
//   months back, with and without a filter;
// - ingest (store.insertMany of 1000-row batches) into the seeded table against an empty one of the
//   same layout;
// - the export route (GET /api/backoffice/activity-logs/export.ndjson of an `activity-log serve`
//   process): rows/s and the server's peak RSS;
// - prune of the three oldest months: partition drop against chunked DELETE, with a concurrent
//   writer's batch latency.
// The unpartitioned table (`bench_scale_<rows>`) is reused by a later run when it holds the right
// row count (the bench removes what it added and re-seeds what prune removed); BENCH_SCALE_KEEP=1
// keeps it at the end (default: every bench_scale_ table is dropped).
// Usage: npm run bench -- scale   (or node bench/scale.js after a build)
import { fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { buildActivity } from '../dist/core/build-activity.js';
import { loadConfig } from '../dist/index.js';
import { DIALECT_REGISTRY } from '../dist/store/dialect-registry.js';
import { KyselyStore, sealOptionsOf } from '../dist/store/kysely-store.js';
import { encodeCursor } from '../dist/store/query-cursor.js';
import { input } from './lib/workload.js';
import { machine, percentile, printTable, ratio } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', 'bin', 'activity-log.js');
const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROWS = Number(process.env.BENCH_SCALE_ROWS ?? 10_000_000);
const KEEP = process.env.BENCH_SCALE_KEEP === '1';
const ROUNDS = Number(process.env.BENCH_SCALE_QUERY_ROUNDS ?? 50);
const INGEST_ROWS = Number(process.env.BENCH_SCALE_INGEST_ROWS ?? 50_000);
const EXPORT_ROWS = Math.min(Number(process.env.BENCH_SCALE_EXPORT_ROWS ?? 1_000_000), Math.floor(ROWS / 2));
const DIALECTS = (process.env.BENCH_SCALE_DIALECTS ?? 'mysql,postgres').split(',');
const PORT = Number(process.env.BENCH_SCALE_PORT ?? 7240);
const OUT = process.env.BENCH_SCALE_OUT ?? join(tmpdir(), `bench-scale-${process.pid}.json`);
const CHUNK = 1_000_000;
const DAY = 86_400_000;
const SPAN = 365 * DAY;
const GOAL_MS = 50;
const BUILD_OPTIONS = { resolveModel: (model) => model, isSecretKey: () => false };
const EVENTS = [
  'created',
  'updated',
  'deleted',
  'viewed',
  'exported',
  'login',
  'logout',
  'approved',
  'rejected',
  'restored',
];
const RARE_URL = 'https://shop.example/admin/rare-export';
const COLUMNS =
  'id, log_name, description, subject_type, subject_id, event, causer_type, causer_id, properties, batch_uuid, ip_address, url, method, user_agent, created_at';

function log(message) {
  console.log(`scale: ${message}`);
}

/** The raw connection of a dialect: run(sql), plus the SQL that differs. */
async function connect(dialect) {
  if (dialect === 'mysql') {
    const connection = await mysql.createConnection({
      uri: MYSQL_URL,
      multipleStatements: false,
      timezone: 'Z',
    });
    await connection.query('SET SESSION max_statement_time = 0').catch(() => {});
    return {
      dialect,
      url: MYSQL_URL,
      run: async (text) => (await connection.query(text))[0],
      close: () => connection.end(),
      exists: async (table) =>
        (
          await connection.query(
            'SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
            [table],
          )
        )[0][0].n > 0,
      drop: async (table) => {
        await connection.query(
          `DROP TABLE IF EXISTS \`${table}\`, \`${table}_migrations\`, \`${table}_seals\``,
        );
      },
    };
  }
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await client.query('SET statement_timeout = 0');
  return {
    dialect,
    url: PG_URL,
    run: async (text) => (await client.query(text)).rows,
    close: () => client.end(),
    exists: async (table) => (await client.query('SELECT to_regclass($1) AS t', [table])).rows[0].t !== null,
    drop: async (table) => {
      await client.query(`DROP TABLE IF EXISTS "${table}", "${table}_migrations", "${table}_seals" CASCADE`);
    },
  };
}

function q(db, name) {
  return db.dialect === 'mysql' ? `\`${name}\`` : `"${name}"`;
}

/** The SELECT producing rows n in [from, to) of the seeded data, every value computed by the server. */
function seedSelect(db, from, to, startMs) {
  const ms = `(${startMs} + FLOOR(n * ${SPAN} / ${ROWS}))`;
  if (db.dialect === 'mysql') {
    const h = `LPAD(LOWER(HEX(${ms})), 12, '0')`;
    const hex = (v, w) => `LPAD(LOWER(HEX(${v})), ${w}, '0')`;
    const events = EVENTS.map((e) => `'${e}'`).join(',');
    return `SELECT CONCAT(SUBSTR(${h},1,8),'-',SUBSTR(${h},9,4),'-7',${hex('n % 4096', 3)},'-8',${hex('FLOOR(n / 4096) % 4096', 3)},'-',${hex('n', 12)}),
      CONCAT('log_', n % 50), 'bench activity', CONCAT('App\\\\Models\\\\Model', (n * 7919 % 100000) % 10), CAST(n * 7919 % 100000 AS CHAR),
      ELT(n % 10 + 1, ${events}), 'App\\\\Models\\\\User', CAST(n * 104729 % 10000 AS CHAR), '{"attributes":{"status":"paid"}}',
      IF(n % 3 = 0, CONCAT('00000000-0000-7000-8000-', ${hex('FLOOR(n / 100)', 12)}), NULL),
      CONCAT('10.', FLOOR((n * 2654435761 % 50000) / 65536) % 256, '.', FLOOR((n * 2654435761 % 50000) / 256) % 256, '.', (n * 2654435761 % 50000) % 256),
      IF(n % 100000 = 7, '${RARE_URL}', CONCAT('https://shop.example/orders/', n % 1000)),
      ELT(n % 20 + 1, 'GET','GET','GET','GET','GET','GET','GET','GET','GET','GET','GET','GET','POST','POST','POST','POST','POST','PUT','PATCH','DELETE'),
      'Mozilla/5.0 (bench)', FROM_UNIXTIME(${ms} / 1000)
      FROM (SELECT seq + ${from} AS n FROM seq_0_to_${CHUNK - 1} WHERE seq < ${to - from}) s`;
  }
  const hex = (v, w) => `lpad(to_hex((${v})::bigint), ${w}, '0')`;
  const h = hex(ms, 12);
  return `SELECT substr(${h},1,8)||'-'||substr(${h},9,4)||'-7'||${hex('n % 4096', 3)}||'-8'||${hex('(n / 4096) % 4096', 3)}||'-'||${hex('n', 12)},
    'log_' || (n % 50), 'bench activity', 'App\\Models\\Model' || ((n * 7919 % 100000) % 10), (n * 7919 % 100000)::text,
    (ARRAY[${EVENTS.map((e) => `'${e}'`).join(',')}])[n % 10 + 1], 'App\\Models\\User', (n * 104729 % 10000)::text, '{"attributes":{"status":"paid"}}'::jsonb,
    CASE WHEN n % 3 = 0 THEN '00000000-0000-7000-8000-' || ${hex('n / 100', 12)} END,
    '10.' || ((n * 2654435761 % 50000) / 65536 % 256) || '.' || ((n * 2654435761 % 50000) / 256 % 256) || '.' || ((n * 2654435761 % 50000) % 256),
    CASE WHEN n % 100000 = 7 THEN '${RARE_URL}' ELSE 'https://shop.example/orders/' || (n % 1000) END,
    (ARRAY['GET','GET','GET','GET','GET','GET','GET','GET','GET','GET','GET','GET','POST','POST','POST','POST','POST','PUT','PATCH','DELETE'])[n % 20 + 1],
    'Mozilla/5.0 (bench)', to_timestamp(${ms} / 1000.0)
    FROM generate_series(${from}::bigint, ${to - 1}::bigint) AS n`;
}

async function seedRange(db, table, from, to, startMs) {
  let last = Date.now();
  for (let a = from; a < to; a += CHUNK) {
    const b = Math.min(to, a + CHUNK);
    await db.run(`INSERT INTO ${q(db, table)} (${COLUMNS}) ${seedSelect(db, a, b, startMs)}`);
    if (Date.now() - last > 3000 || b === to) {
      log(`${db.dialect} ${table}: ${b.toLocaleString('en')} / ${to.toLocaleString('en')} rows`);
      last = Date.now();
    }
  }
}

/** Secondary index definitions, to drop before a load and re-create identically after. */
async function secondaryIndexes(db, table) {
  if (db.dialect === 'mysql') {
    const rows = await db.run(`SHOW INDEX FROM ${q(db, table)}`);
    const byName = new Map();
    for (const row of rows) {
      if (row.Key_name === 'PRIMARY') continue;
      const parts = byName.get(row.Key_name) ?? [];
      parts[row.Seq_in_index - 1] =
        `\`${row.Column_name}\`${row.Sub_part === null ? '' : `(${row.Sub_part})`}`;
      byName.set(row.Key_name, parts);
    }
    return [...byName].map(([name, parts]) => ({
      name,
      definition: parts.join(', '),
      drop: `ALTER TABLE ${q(db, table)} DROP INDEX \`${name}\``,
      create: `ALTER TABLE ${q(db, table)} ADD INDEX \`${name}\` (${parts.join(', ')})`,
    }));
  }
  const rows = await db.run(
    `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = '${table}' AND indexname <> '${table}_pkey' ORDER BY indexname`,
  );
  return rows.map((row) => ({
    name: row.indexname,
    definition: row.indexdef,
    drop: `DROP INDEX "${row.indexname}"`,
    create: row.indexdef,
  }));
}

function storeOf(dialect, table, partition, startMs) {
  const env = {
    DATABASE_URL: dialect === 'mysql' ? MYSQL_URL : PG_URL,
    ACTIVITY_LOG_TABLE: table,
    ACTIVITY_LOG_PARTITION: partition,
  };
  const config = loadConfig({ env }).database;
  const start = new Date(startMs);
  const firstPeriod = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), 1));
  return {
    env,
    store: new KyselyStore(
      DIALECT_REGISTRY[config.connection].create(config),
      config.table,
      sealOptionsOf(config),
      {
        partition: config.partition,
        partitionsAhead: config.partitionsAhead,
        firstPeriod,
      },
    ),
  };
}

async function count(db, table) {
  const rows = await db.run(`SELECT COUNT(*) AS n FROM ${q(db, table)}`);
  return Number(rows[0].n);
}

/** Seeds (or reuses) the unpartitioned table; returns the first row's time. */
async function seedFlat(db, table) {
  if ((await db.exists(table)) && (await count(db, table)) === ROWS) {
    const rows = await db.run(`SELECT MIN(created_at) AS t FROM ${q(db, table)}`);
    log(`${db.dialect} ${table}: reusing ${ROWS.toLocaleString('en')} rows`);
    return { startMs: new Date(rows[0].t).getTime(), seconds: 0, reused: true };
  }
  await db.drop(table);
  const startMs = Math.floor((Date.now() - SPAN - DAY) / 1000) * 1000;
  const { store } = storeOf(db.dialect, table, 'none', startMs);
  await store.migrate();
  await store.close();
  const began = performance.now();
  const indexes = await secondaryIndexes(db, table);
  for (const index of indexes) await db.run(index.drop);
  await seedRange(db, table, 0, ROWS, startMs);
  const loaded = performance.now();
  for (const index of indexes) {
    await db.run(index.create);
    log(`${db.dialect} ${table}: index ${index.name} re-created`);
  }
  const after = await secondaryIndexes(db, table);
  const same =
    JSON.stringify(after.map((i) => [i.name, i.definition])) ===
    JSON.stringify(indexes.map((i) => [i.name, i.definition]));
  if (!same) throw new Error(`${table}: re-created indexes differ from the migrated ones`);
  if (db.dialect === 'postgres') await db.run(`VACUUM ANALYZE "${table}"`);
  else await db.run(`ANALYZE TABLE \`${table}\``);
  const done = performance.now();
  return {
    startMs,
    reused: false,
    loadSeconds: (loaded - began) / 1000,
    indexSeconds: (done - loaded) / 1000,
    seconds: (done - began) / 1000,
  };
}

async function seedPartitioned(db, flat, table, startMs) {
  await db.drop(table);
  const { store } = storeOf(db.dialect, table, 'month', startMs);
  await store.migrate();
  await store.close();
  const began = performance.now();
  let last = Date.now();
  for (let a = 0; a < ROWS; a += CHUNK) {
    const from = new Date(startMs + Math.floor((a * SPAN) / ROWS)).toISOString();
    const to = new Date(startMs + Math.floor((Math.min(ROWS, a + CHUNK) * SPAN) / ROWS)).toISOString();
    const last_ = a + CHUNK >= ROWS;
    const range =
      db.dialect === 'mysql'
        ? [from.replace('T', ' ').replace('Z', ''), to.replace('T', ' ').replace('Z', '')]
        : [from, to];
    await db.run(
      `INSERT INTO ${q(db, table)} SELECT * FROM ${q(db, flat)} WHERE created_at >= '${range[0]}'${last_ ? '' : ` AND created_at < '${range[1]}'`}`,
    );
    if (Date.now() - last > 3000 || last_) {
      log(
        `${db.dialect} ${table}: ${Math.min(ROWS, a + CHUNK).toLocaleString('en')} / ${ROWS.toLocaleString('en')} rows`,
      );
      last = Date.now();
    }
  }
  if (db.dialect === 'postgres') await db.run(`VACUUM ANALYZE "${table}"`);
  else await db.run(`ANALYZE TABLE \`${table}\``);
  const copied = await count(db, table);
  if (copied !== ROWS) throw new Error(`${table}: ${copied} rows copied, expected ${ROWS}`);
  return { seconds: (performance.now() - began) / 1000 };
}

async function timed(fn) {
  const began = performance.now();
  await fn();
  return performance.now() - began;
}

/** The query cases: each indexed filter, two combined, and keyset depths. */
function queryCases(startMs) {
  const endMs = startMs + SPAN;
  const cursorAt = (months) =>
    encodeCursor({ createdAtMs: endMs - months * 30 * DAY, id: 'ffffffff-ffff-7fff-bfff-ffffffffffff' });
  const n = 12_345 % ROWS;
  return [
    ['first page', {}],
    ['logName', { logName: 'log_7' }],
    ['event', { event: 'viewed' }],
    [
      'subject',
      {
        subjectType: `App\\Models\\Model${((n * 7919) % 100000) % 10}`,
        subjectId: String((n * 7919) % 100000),
      },
    ],
    ['causer', { causerType: 'App\\Models\\User', causerId: '42' }],
    [
      'batchUuid',
      {
        batchUuid: `00000000-0000-7000-8000-${Math.floor(300 / 100)
          .toString(16)
          .padStart(12, '0')}`,
      },
    ],
    ['ipAddress', { ipAddress: '10.0.1.2' }],
    ['url', { url: 'https://shop.example/orders/17' }],
    ['url (rare)', { url: RARE_URL }],
    ['method', { method: 'DELETE' }],
    ['logName+event', { logName: 'log_7', event: 'created' }],
    ['causer+method', { causerType: 'App\\Models\\User', causerId: '42', method: 'POST' }],
    ['keyset 1 month', { cursor: cursorAt(1) }],
    ['keyset 6 months', { cursor: cursorAt(6) }],
    ['keyset 11 months', { cursor: cursorAt(11) }],
    ['keyset 1 month + logName', { cursor: cursorAt(1), logName: 'log_7' }],
    ['keyset 6 months + logName', { cursor: cursorAt(6), logName: 'log_7' }],
    ['keyset 11 months + logName', { cursor: cursorAt(11), logName: 'log_7' }],
  ];
}

async function queries(store, startMs) {
  const results = {};
  for (const [name, query] of queryCases(startMs)) {
    let rows = 0;
    const times = [];
    for (let i = 0; i < ROUNDS; i++) {
      times.push(
        await timed(async () => {
          rows = (await store.query({ ...query, limit: 50 })).data.length;
        }),
      );
    }
    results[name] = {
      p50Ms: round(percentile(times, 50)),
      p99Ms: round(percentile(times, 99)),
      rows,
      meetsGoal: percentile(times, 99) < GOAL_MS,
    };
  }
  return results;
}

function round(value) {
  return Math.round(value * 10) / 10;
}

function freshBatch(from, size) {
  const batch = [];
  for (let i = 0; i < size; i++) batch.push(buildActivity(input(from + i), undefined, BUILD_OPTIONS));
  return batch;
}

async function ingest(store) {
  const began = performance.now();
  for (let n = 0; n < INGEST_ROWS; n += 1000)
    await store.insertMany(freshBatch(n, Math.min(1000, INGEST_ROWS - n)));
  return Math.round(INGEST_ROWS / ((performance.now() - began) / 1000));
}

async function removeAdded(db, table, startMs) {
  const end = new Date(startMs + SPAN + DAY / 2).toISOString();
  await db.run(
    `DELETE FROM ${q(db, table)} WHERE created_at > '${db.dialect === 'mysql' ? end.replace('T', ' ').replace('Z', '') : end}'`,
  );
}

/** Export via the route of an `activity-log serve` process: rows/s and the server's peak RSS. */
async function exportRoute(dialect, table, startMs) {
  const token = `bench-scale-${process.pid}`;
  const env = {
    ...process.env,
    DATABASE_URL: dialect === 'mysql' ? MYSQL_URL : PG_URL,
    ACTIVITY_LOG_TABLE: table,
    ACTIVITY_LOG_ADMIN_TOKEN: token,
    PORT: String(PORT),
    HOST: '127.0.0.1',
  };
  const server = fork(BIN, ['serve'], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    for (let i = 0; ; i++) {
      const up = await get(`/health`, token).then(
        () => true,
        () => false,
      );
      if (up) break;
      if (i > 100) throw new Error('export: the server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const from = new Date(startMs + SPAN - Math.ceil((EXPORT_ROWS * SPAN) / ROWS)).toISOString();
    let peakKiB = 0;
    const watch = setInterval(() => {
      const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'));
      peakKiB = Math.max(peakKiB, Number(match?.[1] ?? 0));
    }, 100);
    const began = performance.now();
    const lines = await get(
      `/api/backoffice/activity-logs/export.ndjson?from=${encodeURIComponent(from)}`,
      token,
      true,
    );
    const seconds = (performance.now() - began) / 1000;
    clearInterval(watch);
    return {
      rows: lines,
      seconds: round(seconds),
      rowsPerSecond: Math.round(lines / seconds),
      serverPeakRssMiB: Math.round(peakKiB / 1024),
    };
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
}

function get(path, token, countLines = false) {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: PORT, path, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET ${path}: ${res.statusCode}`));
          return;
        }
        let lines = 0;
        res.on('data', (chunk) => {
          if (countLines) for (const byte of chunk) if (byte === 10) lines++;
        });
        res.on('end', () => resolve(lines));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Prunes the three oldest months with a writer inserting 1000-row batches meanwhile. */
async function pruneWithWriter(dialect, table, partition, startMs) {
  const { store } = storeOf(dialect, table, partition, startMs);
  const { store: writer } = storeOf(dialect, table, partition, startMs);
  const start = new Date(startMs);
  const before = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 4, 1));
  let stop = false;
  const latencies = [];
  const writing = (async () => {
    for (let n = 0; !stop; n += 1000) {
      const batch = freshBatch(n, 1000);
      latencies.push(await timed(() => writer.insertMany(batch)));
    }
  })();
  const began = performance.now();
  const deleted = await store.prune({ before, chunkSize: 10_000 });
  const seconds = (performance.now() - began) / 1000;
  stop = true;
  await writing;
  await store.close();
  await writer.close();
  return {
    method: partition === 'none' ? 'chunked DELETE' : 'partition drop',
    rows: deleted,
    seconds: round(seconds),
    rowsPerSecond: Math.round(deleted / seconds),
    before: before.toISOString(),
    writerBatches: latencies.length,
    writerP99Ms: round(percentile(latencies, 99)),
    writerP50Ms: round(percentile(latencies, 50)),
  };
}

async function servers(db) {
  if (db.dialect === 'mysql') {
    const rows = await db.run('SELECT VERSION() AS v, @@innodb_buffer_pool_size AS b');
    return { version: rows[0].v, innodb_buffer_pool_size: Number(rows[0].b) };
  }
  const v = await db.run('SHOW server_version');
  const b = await db.run('SHOW shared_buffers');
  return { version: v[0].server_version, shared_buffers: b[0].shared_buffers };
}

async function runDialect(dialect, phases) {
  const db = await connect(dialect);
  const flat = `bench_scale_${ROWS}`;
  const month = `bench_scale_${ROWS}_month`;
  const emptyFlat = `bench_scale_empty_${process.pid}`;
  const emptyMonth = `bench_scale_empty_${process.pid}_month`;
  const result = { server: await servers(db) };
  try {
    let t = performance.now();
    const seeded = await seedFlat(db, flat);
    const { startMs } = seeded;
    result.seed = { flat: seeded, month: await seedPartitioned(db, flat, month, startMs) };
    phases[`${dialect} seed`] = (performance.now() - t) / 1000;
    for (const [layout, table, partition, empty] of [
      ['none', flat, 'none', emptyFlat],
      ['month', month, 'month', emptyMonth],
    ]) {
      const out = {};
      t = performance.now();
      const { store } = storeOf(dialect, table, partition, startMs);
      out.queries = await queries(store, startMs);
      phases[`${dialect} ${layout} queries`] = (performance.now() - t) / 1000;
      t = performance.now();
      const full = await ingest(store);
      await store.close();
      await removeAdded(db, table, startMs);
      await db.drop(empty);
      const { store: fresh } = storeOf(dialect, empty, partition, Date.now());
      await fresh.migrate();
      const base = await ingest(fresh);
      await fresh.close();
      await db.drop(empty);
      out.ingest = {
        seededRowsPerSecond: full,
        emptyRowsPerSecond: base,
        ratio: ratio(full, base),
        meetsGoal: full / base >= 0.5,
      };
      phases[`${dialect} ${layout} ingest`] = (performance.now() - t) / 1000;
      t = performance.now();
      out.export = await exportRoute(dialect, table, startMs);
      phases[`${dialect} ${layout} export`] = (performance.now() - t) / 1000;
      t = performance.now();
      out.prune = await pruneWithWriter(dialect, table, partition, startMs);
      await removeAdded(db, table, startMs);
      phases[`${dialect} ${layout} prune`] = (performance.now() - t) / 1000;
      result[layout] = out;
    }
    // Give the unpartitioned table back the months prune removed, so a later run can reuse it.
    if (KEEP) {
      t = performance.now();
      const cut = new Date(result.none.prune.before).getTime();
      await seedRange(db, flat, 0, Math.ceil(((cut - startMs) * ROWS) / SPAN), startMs);
      const n = await count(db, flat);
      if (n !== ROWS) log(`${dialect} ${flat}: ${n} rows after restoring, a later run will seed again`);
      phases[`${dialect} restore`] = (performance.now() - t) / 1000;
    }
  } finally {
    await db.drop(month);
    await db.drop(emptyFlat);
    await db.drop(emptyMonth);
    if (!KEEP) await db.drop(flat);
    await db.close();
  }
  return result;
}

export async function run() {
  const started = new Date().toISOString();
  const phases = {};
  const result = {
    rows: ROWS,
    started,
    machine: { ...machine(), loadAverage: loadavg().map((l) => Math.round(l * 100) / 100) },
  };
  for (const dialect of DIALECTS) result[dialect] = await runDialect(dialect, phases);
  result.phaseSeconds = Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(v)]));
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  for (const dialect of DIALECTS) {
    const r = result[dialect];
    for (const layout of ['none', 'month']) {
      printTable(
        `${dialect} ${layout === 'none' ? 'unpartitioned' : 'partitioned by month'}, ${ROWS.toLocaleString('en')} rows: query() (p50 / p99 ms, goal p99 < ${GOAL_MS})`,
        Object.entries(r[layout].queries).map(([name, v]) => [
          name.padEnd(28),
          `${v.p50Ms} / ${v.p99Ms}`,
          `${v.rows} rows`,
          v.meetsGoal ? 'ok' : 'MISSES',
        ]),
      );
      const { ingest: i, export: e, prune: p } = r[layout];
      printTable(`${dialect} ${layout}: ingest, export, prune`, [
        [
          'ingest rows/s seeded / empty',
          `${i.seededRowsPerSecond} / ${i.emptyRowsPerSecond}`,
          `${i.ratio}x`,
          i.meetsGoal ? 'ok' : 'MISSES',
        ],
        [
          'export',
          `${e.rows} rows`,
          `${e.rowsPerSecond} rows/s`,
          `server peak RSS ${e.serverPeakRssMiB} MiB`,
        ],
        [
          `prune (${p.method})`,
          `${p.rows} rows`,
          `${p.rowsPerSecond} rows/s`,
          `writer p99 ${p.writerP99Ms} ms over ${p.writerBatches} batches`,
        ],
      ]);
    }
  }
  printTable('phases (s)', Object.entries(result.phaseSeconds));
  console.log(`\nscale: results written to ${OUT}`);
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
