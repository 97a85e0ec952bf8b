// Tamper-evidence benchmark, in one run:
// - end-to-end activities/s through the queue (log() in this process, two `activity-log work`
//   processes, MariaDB) with ACTIVITY_LOG_SEAL=on against the same run with it off, taking turns;
// - log() cost per call in queue mode with sealing on and off (sealing happens at write time only);
// - `activity-log verify` rows/s on MariaDB and PostgreSQL against a plain keyset scan of the same
//   rows in the same order through the same driver, nothing checked.
// Usage: npm run bench -- seal   (or node bench/seal.js after a build)
// - the store alone with several writer processes on MariaDB (no queue, no Redis): unsealed,
//   sealed, and sealed with the chain head taken before every INSERT (writers one at a time),
//   taking turns;
// - the statements alone (part heads): several mysql2 connections running a sealed insert's
//   statements with prebuilt 1000-row batches and no hashing, the head taken before the INSERT
//   against the INSERT first with a placeholder seal_seq stamped once the head is held, and
//   without any head (the rows' INSERT with their seal columns, nothing locked): how far MariaDB
//   itself overlaps the writers, with nothing else on the CPU;
// BENCH_SEAL_PARTS=verify runs the verify part alone (default ingest,writers,heads,verify);
// BENCH_VERIFY_BASELINE_BIN=path/to/activity-log.js also times that build's verify in the same
// rounds (e.g. a build of an earlier commit), reported as `baseline`; BENCH_VERIFY_THREADS=N also
// times `verify --threads=N`, reported as `threads`.
import { execFile, fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { buildActivity } from '../dist/core/build-activity.js';
import { createActivityLog, loadConfig } from '../dist/index.js';
import { createStore } from '../dist/store/create-store.js';
import { input, logCostAgainstBaseline } from './lib/workload.js';
import { queueEndToEnd } from './queue.js';
import { machine, median, printTable, ratio, rounds } from './stats.js';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', 'bin', 'activity-log.js');
const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const VERIFY_ROWS = Number(process.env.BENCH_VERIFY_ROWS ?? 200_000);
const CALLS = Number(process.env.BENCH_CALLS ?? 100_000);
const VERIFY_TABLE = process.env.BENCH_VERIFY_TABLE ?? 'bench_verify_activity_log';
const PARTS = (process.env.BENCH_SEAL_PARTS ?? 'ingest,writers,heads,verify').split(',');
const WRITER_TABLE = 'bench_seal_writers';
const WRITER_BATCHES = Number(process.env.BENCH_WRITER_BATCHES ?? 20);
const WRITER_BATCH_SIZE = 1000;
const BASELINE_BIN = process.env.BENCH_VERIFY_BASELINE_BIN ?? null;
const THREADS = process.env.BENCH_VERIFY_THREADS ?? null;
const BUILD_OPTIONS = { resolveModel: (model) => model, isSecretKey: () => false };

/** log() cost in queue mode (no worker behind it) with sealing as given. */
async function logCost(seal) {
  const activityLog = createActivityLog({
    env: {
      QUEUE_CONNECTION: 'redis',
      REDIS_URL,
      ACTIVITY_LOG_METHOD: 'queue',
      ACTIVITY_LOG_QUEUE_NAME: `bench-seal-cost-${process.pid}`,
      ACTIVITY_LOG_SEAL: seal,
      DATABASE_URL: MYSQL_URL,
    },
  });
  const cost = await logCostAgainstBaseline(activityLog, CALLS);
  await activityLog.close();
  return cost;
}

/** Drops the verify table, then stores `VERIFY_ROWS` sealed rows in 1000-row batches. */
async function seedSealed(url, drop) {
  await drop();
  const env = { DATABASE_URL: url, ACTIVITY_LOG_TABLE: VERIFY_TABLE, ACTIVITY_LOG_SEAL: 'on' };
  const store = createStore(loadConfig({ env }).database);
  await store.migrate();
  for (let n = 0; n < VERIFY_ROWS; ) {
    const batch = [];
    for (let i = 0; i < 1000 && n < VERIFY_ROWS; i++)
      batch.push(buildActivity(input(n++), undefined, BUILD_OPTIONS));
    await store.insertMany(batch);
  }
  await store.close();
  return env;
}

/** Rows/s of `activity-log verify` over the seeded table, checked to report it intact. */
async function verifyRate(env, bin = BIN, args = []) {
  const started = performance.now();
  const { stdout } = await execFileAsync(process.execPath, [bin, 'verify', '--json', ...args], {
    env: { PATH: process.env.PATH, ...env },
    maxBuffer: 64 * 2 ** 20,
  });
  const seconds = (performance.now() - started) / 1000;
  const report = JSON.parse(stdout);
  if (report.intact !== true || report.rows !== VERIFY_ROWS) {
    throw new Error(`verify did not report ${VERIFY_ROWS} intact rows: ${stdout.slice(0, 300)}`);
  }
  return VERIFY_ROWS / seconds;
}

/** Rows/s of reading every row in verify's order, 5000 per keyset page, in a fresh process's place. */
async function scanRate(query) {
  const started = performance.now();
  let rows = 0;
  let after = null;
  for (;;) {
    const page = await query(after);
    if (page.length === 0) break;
    rows += page.length;
    const last = page.at(-1);
    after = [last.seal_seq, last.id];
  }
  if (rows !== VERIFY_ROWS) throw new Error(`the scan read ${rows} rows, expected ${VERIFY_ROWS}`);
  return rows / ((performance.now() - started) / 1000);
}

async function verifyAgainstScan(name, repeats) {
  if (name === 'MariaDB') {
    const connection = await mysql.createConnection(MYSQL_URL);
    const drop = () =>
      connection.query(
        `DROP TABLE IF EXISTS \`${VERIFY_TABLE}\`, \`${VERIFY_TABLE}_seals\`, \`${VERIFY_TABLE}_migrations\`, \`${VERIFY_TABLE}_seals_pruned\``,
      );
    const env = await seedSealed(MYSQL_URL, drop);
    const query = async (after) =>
      (
        await connection.query(
          `SELECT * FROM \`${VERIFY_TABLE}\` ${after ? 'WHERE seal_seq >= ? AND (seal_seq > ? OR id > ?)' : ''} ORDER BY seal_seq, id LIMIT 5000`,
          after ? [after[0], after[0], after[1]] : [],
        )
      )[0];
    const result = await alternate(env, query, repeats);
    await drop();
    await connection.end();
    return result;
  }
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  const drop = () =>
    client.query(
      `DROP TABLE IF EXISTS "${VERIFY_TABLE}", "${VERIFY_TABLE}_seals", "${VERIFY_TABLE}_migrations", "${VERIFY_TABLE}_seals_pruned"`,
    );
  const env = await seedSealed(PG_URL, drop);
  const query = async (after) =>
    (
      await client.query(
        `SELECT * FROM "${VERIFY_TABLE}" ${after ? 'WHERE seal_seq >= $1 AND (seal_seq > $1 OR id > $2)' : ''} ORDER BY seal_seq, id LIMIT 5000`,
        after ?? [],
      )
    ).rows;
  const result = await alternate(env, query, repeats);
  await drop();
  await client.end();
  return result;
}

async function alternate(env, query, repeats) {
  await scanRate(query); // warms the buffer pool
  const scans = [];
  const verifies = [];
  const baselines = [];
  const threaded = [];
  for (let round = 0; round < repeats; round++) {
    scans.push(await scanRate(query));
    verifies.push(await verifyRate(env));
    if (BASELINE_BIN !== null) baselines.push(await verifyRate(env, BASELINE_BIN));
    if (THREADS !== null) threaded.push(await verifyRate(env, BIN, [`--threads=${THREADS}`]));
  }
  return {
    scan: median(scans),
    verify: median(verifies),
    ...(BASELINE_BIN === null ? {} : { baseline: median(baselines) }),
    ...(THREADS === null ? {} : { threads: median(threaded) }),
    samples: {
      scans,
      verifies,
      ...(BASELINE_BIN === null ? {} : { baselines }),
      ...(THREADS === null ? {} : { threaded }),
    },
  };
}

/**
 * Rows/s of `writers` processes storing 1000-row batches into one fresh MariaDB table at once,
 * timed from when all have built their batches to when the last is done.
 */
async function writersRate(writers, env) {
  const connection = await mysql.createConnection(MYSQL_URL);
  const drop = () =>
    connection.query(
      `DROP TABLE IF EXISTS \`${WRITER_TABLE}\`, \`${WRITER_TABLE}_seals\`, \`${WRITER_TABLE}_migrations\`, \`${WRITER_TABLE}_seals_pruned\``,
    );
  await drop();
  const base = { PATH: process.env.PATH, DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: WRITER_TABLE, ...env };
  const store = createStore(loadConfig({ env: base }).database);
  await store.migrate();
  await store.close();
  const children = Array.from({ length: writers }, (_, w) =>
    fork(join(here, 'lib', 'seal-writer.js'), [], {
      env: {
        ...base,
        BENCH_WRITER_OFFSET: String(w * WRITER_BATCHES * WRITER_BATCH_SIZE),
        BENCH_WRITER_BATCHES: String(WRITER_BATCHES),
        BENCH_WRITER_BATCH_SIZE: String(WRITER_BATCH_SIZE),
      },
    }),
  );
  const message = (child) =>
    new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => code !== 0 && reject(new Error(`a writer exited with code ${code}`)));
    });
  await Promise.all(children.map(message));
  const started = performance.now();
  const done = children.map(message);
  for (const child of children) child.send({ go: true });
  const stored = (await Promise.all(done)).reduce((sum, m) => sum + m.stored, 0);
  const seconds = (performance.now() - started) / 1000;
  const expected = writers * WRITER_BATCHES * WRITER_BATCH_SIZE;
  if (stored !== expected) throw new Error(`the writers stored ${stored} rows, expected ${expected}`);
  await drop();
  await connection.end();
  return stored / seconds;
}

/**
 * Rows/s of `writers` mysql2 connections each running a sealed insert's statements over its share
 * of 40 prebuilt 1000-row batches: `first` locks the head, then INSERTs with the seal's seq;
 * `behind` INSERTs with a placeholder, then locks and stamps; `none` only INSERTs.
 */
async function headStatementsRate(writers, mode) {
  const { COLUMNS, sampleRows } = await import('./lib/workload.js');
  const table = 'bench_seal_heads';
  const admin = await mysql.createConnection(MYSQL_URL);
  const drop = () =>
    admin.query(
      `DROP TABLE IF EXISTS \`${table}\`, \`${table}_seals\`, \`${table}_migrations\`, \`${table}_seals_pruned\``,
    );
  await drop();
  const store = createStore(
    loadConfig({ env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: table, ACTIVITY_LOG_SEAL: 'on' } })
      .database,
  );
  await store.migrate();
  await store.close();
  const sample = await sampleRows(1000);
  const columns = [...COLUMNS, 'seal_salt', 'seal_seq'];
  const insert = `INSERT INTO \`${table}\` (${columns.join(', ')}) VALUES ${sample
    .map(() => `(${columns.map(() => '?').join(', ')})`)
    .join(', ')} ON DUPLICATE KEY UPDATE id = id RETURNING id, seal_salt`;
  const BATCHES = 40;
  const batches = Array.from({ length: BATCHES }, (_, b) =>
    sample.flatMap((row, i) => {
      const values = [...row];
      values[0] = `0190a0b0-0000-7000-8000-${String(b * 1000 + i).padStart(12, '0')}`;
      return [...values, `${String(b).padStart(16, '0')}${String(i).padStart(16, '0')}`, 0];
    }),
  );
  const lock = async (c) => {
    await c.query(`UPDATE \`${table}_seals\` SET seq = seq WHERE seq = 0`);
    await c.query(
      `SELECT * FROM \`${table}_seals\` WHERE seq = 0 OR seq = (SELECT MAX(seq) FROM \`${table}_seals\`) ORDER BY seq DESC FOR UPDATE`,
    );
  };
  const setSeq = (params, value) => {
    for (let i = columns.length - 1; i < params.length; i += columns.length) params[i] = value;
  };
  let nextSeq = 1;
  const connections = await Promise.all(
    Array.from({ length: writers }, () => mysql.createConnection(MYSQL_URL)),
  );
  const started = performance.now();
  await Promise.all(
    connections.map(async (c, w) => {
      for (let b = w; b < BATCHES; b += writers) {
        const params = batches[b];
        await c.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
        await c.query('BEGIN');
        let seq = 0;
        if (mode === 'first') {
          await lock(c);
          seq = nextSeq++;
          setSeq(params, seq);
          await c.query(insert, params);
        } else if (mode === 'behind') {
          setSeq(params, -(b + 1));
          await c.query(insert, params);
          await lock(c);
          seq = nextSeq++;
          await c.query(`UPDATE \`${table}\` SET seal_seq = ? WHERE seal_seq = ? LIMIT 1000`, [
            seq,
            -(b + 1),
          ]);
        } else {
          setSeq(params, 0);
          await c.query(insert, params);
        }
        if (seq > 0) {
          await c.query(
            `INSERT INTO \`${table}_seals\` (seq, root, row_count, prev_hash, hash, sealed_at, erasable_fields) VALUES (?, ?, 1000, ?, ?, NOW(3), '')`,
            [seq, 'a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)],
          );
        }
        await c.query('COMMIT');
      }
    }),
  );
  const rate = (BATCHES * 1000) / ((performance.now() - started) / 1000);
  for (const c of connections) await c.end();
  await drop();
  await admin.end();
  return rate;
}

export async function run({ repeats = 3 } = {}) {
  const results = {
    machine: machine(),
    settings: { verifyRows: VERIFY_ROWS, calls: CALLS, repeats, parts: PARTS },
  };
  const rows = [];
  if (PARTS.includes('ingest')) {
    const costOff = await rounds(repeats, () => logCost('off'));
    const costOn = await rounds(repeats, () => logCost('on'));
    await queueEndToEnd(2, { ACTIVITY_LOG_SEAL: 'on' }); // warm-up, untimed
    const unsealed = [];
    const sealed = [];
    for (let round = 0; round < repeats; round++) {
      unsealed.push(await queueEndToEnd(2, { ACTIVITY_LOG_SEAL: 'off' }));
      sealed.push(await queueEndToEnd(2, { ACTIVITY_LOG_SEAL: 'on' }));
    }
    const logOff = median(costOff.map((c) => c.oursMedianNs));
    const logOn = median(costOn.map((c) => c.oursMedianNs));
    Object.assign(results, {
      queueTwoWorkersActivitiesPerSecond: { unsealed: median(unsealed), sealed: median(sealed) },
      sealedVsUnsealed: ratio(median(sealed), median(unsealed)),
      logMedianNs: { unsealed: logOff, sealed: logOn, ratio: ratio(logOn, logOff) },
      samples: { unsealed, sealed },
    });
    rows.push(
      ['queue, 2 workers, unsealed activities/s', Math.round(median(unsealed)), '', ''],
      [
        'queue, 2 workers, sealed activities/s',
        Math.round(median(sealed)),
        `${results.sealedVsUnsealed}× unsealed`,
        '',
      ],
      ['log() median ns, queue mode', `off ${logOff}`, `on ${logOn}`, `${results.logMedianNs.ratio}×`],
    );
  }
  if (PARTS.includes('writers')) {
    const variants = {
      unsealed: { ACTIVITY_LOG_SEAL: 'off' },
      sealed: { ACTIVITY_LOG_SEAL: 'on' },
      headFirst: { ACTIVITY_LOG_SEAL: 'on', BENCH_WRITER_HEAD_FIRST: '1' },
    };
    results.writers = {};
    for (const writers of [2, 4]) {
      const samples = { unsealed: [], sealed: [], headFirst: [] };
      for (let round = 0; round < repeats; round++) {
        for (const [name, env] of Object.entries(variants))
          samples[name].push(await writersRate(writers, env));
      }
      const m = Object.fromEntries(Object.entries(samples).map(([name, rates]) => [name, median(rates)]));
      results.writers[writers] = { ...m, samples };
      rows.push(
        [`store, ${writers} writers, unsealed rows/s`, Math.round(m.unsealed), '', ''],
        [
          `store, ${writers} writers, sealed rows/s`,
          Math.round(m.sealed),
          `${ratio(m.sealed, m.unsealed)}× unsealed`,
          '',
        ],
        [
          `store, ${writers} writers, sealed, head first rows/s`,
          Math.round(m.headFirst),
          `${ratio(m.headFirst, m.unsealed)}× unsealed`,
          `sealed ${ratio(m.sealed, m.headFirst)}× head first`,
        ],
      );
    }
  }
  if (PARTS.includes('heads')) {
    results.heads = {};
    for (const writers of [2, 4]) {
      const samples = { first: [], behind: [], none: [] };
      for (let round = 0; round < repeats; round++) {
        for (const mode of Object.keys(samples)) samples[mode].push(await headStatementsRate(writers, mode));
      }
      const m = Object.fromEntries(Object.entries(samples).map(([mode, rates]) => [mode, median(rates)]));
      results.heads[writers] = { ...m, samples };
      rows.push(
        [`statements, ${writers} connections, no head rows/s`, Math.round(m.none), '', ''],
        [
          `statements, ${writers} connections, head first rows/s`,
          Math.round(m.first),
          `${ratio(m.first, m.none)}× no head`,
          '',
        ],
        [
          `statements, ${writers} connections, INSERT then head rows/s`,
          Math.round(m.behind),
          `${ratio(m.behind, m.none)}× no head`,
          `${ratio(m.behind, m.first)}× head first`,
        ],
      );
    }
  }
  if (PARTS.includes('verify')) {
    const mariadb = await verifyAgainstScan('MariaDB', repeats);
    const postgres = await verifyAgainstScan('PostgreSQL', repeats);
    Object.assign(results, {
      verifyRowsPerSecond: { mariadb, postgres },
      verifyVsScan: {
        mariadb: ratio(mariadb.verify, mariadb.scan),
        postgres: ratio(postgres.verify, postgres.scan),
      },
    });
    for (const [name, result] of [
      ['MariaDB', mariadb],
      ['PostgreSQL', postgres],
    ]) {
      rows.push([
        `verify rows/s, ${name}`,
        Math.round(result.verify),
        `scan ${Math.round(result.scan)}`,
        `${ratio(result.verify, result.scan)}×`,
      ]);
      if (result.threads !== undefined) {
        rows.push([
          `verify --threads=${THREADS} rows/s, ${name}`,
          Math.round(result.threads),
          `scan ${Math.round(result.scan)}`,
          `${ratio(result.threads, result.scan)}×`,
        ]);
      }
      if (result.baseline !== undefined) {
        rows.push([
          `baseline verify rows/s, ${name}`,
          Math.round(result.baseline),
          `scan ${Math.round(result.scan)}`,
          `${ratio(result.baseline, result.scan)}×`,
        ]);
      }
    }
  }
  printTable(
    `Tamper evidence (${PARTS.join(', ')}; verify on ${VERIFY_ROWS} rows; medians of ${repeats})`,
    rows,
  );
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
