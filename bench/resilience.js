// Resilience benchmark, all in one run against MariaDB: the cost of log() in `batch` mode while the
// database is healthy, refused and blackholed (through a small TCP fault proxy in this script), and
// how fast the spool drains once the database is back, against raw 1000-row INSERTs of the same
// rows. Usage: npm run bench -- resilience (or node bench/resilience.js after a build).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { createStoreSink } from '../dist/delivery/store-sink.js';
import { composeActivityLog, loadConfig } from '../dist/index.js';
import { CircuitBreaker } from '../dist/resilience/breaker.js';
import { ResilientSink, resilienceOf } from '../dist/resilience/resilient-sink.js';
import { Spool } from '../dist/resilience/spool.js';
import { createStore } from '../dist/store/create-store.js';
import { input, sampleRows, timeMultiRowInserts } from './lib/workload.js';
import { machine, median, percentile, printTable, ratio, rounds } from './stats.js';

const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const TABLE = 'bench_resilience';
const CALLS = Number(process.env.BENCH_CALLS ?? 100_000);
const DRAIN_ROWS = Number(process.env.BENCH_ROWS ?? 50_000);
const BATCH = 1000;

/** Forwards to MariaDB (`pass`), closes its port (`refuse`) or accepts and never answers (`blackhole`). */
async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  let mode = 'pass';
  let server = null;
  const accept = (client) => {
    sockets.add(client);
    client.on('error', () => undefined);
    client.on('close', () => sockets.delete(client));
    if (mode !== 'pass') return client.on('data', () => undefined);
    const upstream = new Socket();
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', drop).on('close', drop);
    client.on('close', drop);
    upstream.connect(Number(port || 3306), hostname);
    client.on('data', (chunk) => mode === 'pass' && upstream.write(chunk));
    upstream.on('data', (chunk) => mode === 'pass' && client.write(chunk));
  };
  const listen = (listenPort) =>
    new Promise((resolve) => {
      server = createServer(accept);
      server.listen(listenPort, '127.0.0.1', () => resolve(server.address().port));
    });
  const proxyPort = await listen(0);
  const cut = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    port: proxyPort,
    async set(next) {
      mode = next;
      if (next === 'refuse') {
        cut();
        if (server !== null) await new Promise((resolve) => server.close(resolve));
        server = null;
      } else if (server === null) {
        await listen(proxyPort);
      }
    },
    async close() {
      cut();
      if (server !== null) await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function freshTable() {
  const store = createStore(
    loadConfig({ env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: TABLE } }).database,
  );
  const connection = await mysql.createConnection(MYSQL_URL);
  await connection.query(`DROP TABLE IF EXISTS \`${TABLE}\``);
  await connection.query(
    `DROP TABLE IF EXISTS \`${TABLE}_migrations\`, \`${TABLE}_seals\`, \`${TABLE}_seals_pruned\``,
  );
  await store.migrate();
  await store.close();
  return connection;
}

function openLog(proxyPort, spoolDir) {
  return composeActivityLog({
    env: { DATABASE_URL: `mysql://root@127.0.0.1:${proxyPort}/test`, ACTIVITY_LOG_TABLE: TABLE },
    config: {
      method: 'batch',
      batchSize: BATCH,
      breakerCooldownMs: 1000,
      spoolDir,
      database: { connectTimeoutMs: 1000, queryTimeoutMs: 2000 },
    },
  });
}

/** Per-call cost of log() in blocks of 1000 calls, once the database is in the given state and the breaker has noticed. */
async function logCost(state) {
  const connection = await freshTable();
  const proxy = await startProxy(MYSQL_URL);
  const spoolDir = await mkdtemp(join(tmpdir(), 'activity-log-bench-'));
  const { activityLog, delivery } = openLog(proxy.port, spoolDir);
  await proxy.set(state);
  const breaker = resilienceOf(delivery).breaker;
  const deadline = Date.now() + 30_000;
  for (let i = 0; state !== 'pass' ? breaker.state === 'closed' && Date.now() < deadline : i < 5000; i++) {
    activityLog.log(input(i));
    if (i % 1000 === 999) await sleep(10);
  }
  if (state !== 'pass' && breaker.state === 'closed')
    throw new Error(`the breaker did not open with MariaDB ${state}d`);
  const costs = [];
  for (let block = 0; block < CALLS / 1000; block++) {
    for (let i = 0; i < 1000; i++) {
      const t0 = process.hrtime.bigint();
      activityLog.log(input(i));
      costs.push(Number(process.hrtime.bigint() - t0));
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await activityLog.close();
  await proxy.close();
  await rm(spoolDir, { recursive: true, force: true });
  await connection.end();
  return { medianNs: median(costs), p99Ns: percentile(costs, 99), breaker: breaker.state };
}

/** The raw baseline: the same rows in BATCH-row multi-row INSERTs through mysql2, nothing else. */
async function rawMultiRow() {
  const connection = await freshTable();
  const rows = await sampleRows(DRAIN_ROWS);
  const rate = await timeMultiRowInserts(connection, TABLE, rows, BATCH);
  await connection.end();
  return rate;
}

/**
 * Spools DRAIN_ROWS activities through a refused database (as an outage would), then times the
 * drain once it is back: claiming the segments, reading, checking and parsing every record, the
 * multi-row INSERTs through the breaker, and deleting each segment once stored.
 */
async function spoolDrain() {
  const connection = await freshTable();
  const proxy = await startProxy(MYSQL_URL);
  const spoolDir = await mkdtemp(join(tmpdir(), 'activity-log-bench-'));
  await proxy.set('refuse');
  const { activityLog: down } = openLog(proxy.port, spoolDir);
  for (let i = 0; i < DRAIN_ROWS; i++) {
    down.log(input(i));
    if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
  }
  await down.close();
  await proxy.close();

  const config = loadConfig({ env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: TABLE } });
  const spool = new Spool({ dir: spoolDir, maxBytes: 1024 ** 3 });
  const waiting = (await spool.status()).activities;
  const sink = new ResilientSink({
    target: createStoreSink(createStore(config.database)),
    breaker: new CircuitBreaker({ name: 'store', failureThreshold: 5, cooldownMs: 1000, timeoutMs: 10_000 }),
    spool,
    replayBatchSize: BATCH,
    replayOnStart: false,
  });
  const started = performance.now();
  const result = await sink.replayNow();
  const seconds = (performance.now() - started) / 1000;
  await sink.close();
  const [[{ n }]] = await connection.query(`SELECT COUNT(*) AS n FROM \`${TABLE}\``);
  await connection.end();
  await rm(spoolDir, { recursive: true, force: true });
  if (waiting !== DRAIN_ROWS || Number(n) !== DRAIN_ROWS || !result?.complete) {
    throw new Error(`spool drain: ${waiting} spooled, ${n} stored, expected ${DRAIN_ROWS}`);
  }
  return DRAIN_ROWS / seconds;
}

export async function run({ repeats = 3 } = {}) {
  const cost = { pass: [], refuse: [], blackhole: [] };
  for (let round = 0; round < repeats; round++) {
    for (const state of ['pass', 'refuse', 'blackhole']) cost[state].push(await logCost(state));
  }
  const raw = await rounds(repeats, rawMultiRow);
  const drain = await rounds(repeats, spoolDrain);
  const summary = (state) => ({
    median: median(cost[state].map((c) => c.medianNs)),
    p99: median(cost[state].map((c) => c.p99Ns)),
  });
  const healthy = summary('pass');
  const refused = summary('refuse');
  const blackholed = summary('blackhole');
  const results = {
    machine: machine(),
    logCostNs: { healthy, refused, blackholed },
    logCostRatio: {
      refusedMedian: ratio(refused.median, healthy.median),
      refusedP99: ratio(refused.p99, healthy.p99),
      blackholedMedian: ratio(blackholed.median, healthy.median),
      blackholedP99: ratio(blackholed.p99, healthy.p99),
    },
    rowsPerSecond: { spoolDrain: median(drain), rawMultiRow: median(raw) },
  };
  results.drainRatio = ratio(results.rowsPerSecond.spoolDrain, results.rowsPerSecond.rawMultiRow);
  printTable('Resilience (MariaDB behind a TCP fault proxy, batch mode, breaker open during the faults)', [
    [
      'log() median ns',
      `healthy ${healthy.median}`,
      `refused ${refused.median} (${results.logCostRatio.refusedMedian}×)`,
      `blackholed ${blackholed.median} (${results.logCostRatio.blackholedMedian}×)`,
    ],
    [
      'log() p99 ns',
      `healthy ${healthy.p99}`,
      `refused ${refused.p99} (${results.logCostRatio.refusedP99}×)`,
      `blackholed ${blackholed.p99} (${results.logCostRatio.blackholedP99}×)`,
    ],
    [
      'spool drain rows/s',
      Math.round(results.rowsPerSecond.spoolDrain),
      `raw ${BATCH}-row INSERT ${Math.round(results.rowsPerSecond.rawMultiRow)}`,
      `${results.drainRatio}×`,
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
