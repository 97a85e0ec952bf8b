// The incident, reproduced: response times of a small Fastify + Sequelize application on MariaDB
// (bench/lib/incident-app.js, a child process) under open-loop load at stepped rates, with no
// activity logging, with the incident's design (one awaited INSERT per model event through the
// app's own pool), and with each of our methods — `sync`, `batch`, `queue` (one `work` process),
// and `batch` while the activity database is cut for part of the run. MariaDB and Redis sit one
// network hop away behind a latency proxy (bench/lib/latency-proxy.js). At every rate the
// variants take turns, each in a fresh application process. Per variant and rate: p50, p99 and
// max latency from the scheduled send time, failed requests, the application's CPU time and
// event-loop delay, and the activities stored against those logged.
// Usage: npm run bench -- incident   (or node bench/incident.js after a build)
import { fork, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { QUEUE_PREFIX, storedCounterKey, storedJobsKey } from '../dist/delivery/queue-keys.js';
import { loadConfig } from '../dist/index.js';
import { createStore } from '../dist/store/create-store.js';
import { writeIncidentChart } from './lib/incident-chart.js';
import { openLoop } from './lib/open-loop.js';
import { machine, median, percentile, printTable, ratio } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', 'bin', 'activity-log.js');
const APP = join(here, 'lib', 'incident-app.js');
const PROXY = join(here, 'lib', 'latency-proxy.js');

const env = process.env;
const QUICK = env.BENCH_INCIDENT_QUICK === '1';
const MYSQL = new URL(env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test');
const REDIS = new URL(env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379');
/** Seconds of measured load per variant and rate. */
const SECONDS = Number(env.BENCH_INCIDENT_SECONDS ?? (QUICK ? 3 : 5));
/** Rounds of every variant at every rate; figures are the medians of the rounds. */
const ROUNDS = Number(env.BENCH_INCIDENT_ROUNDS ?? (QUICK ? 1 : 3));
const WARMUP_SECONDS = Number(env.BENCH_INCIDENT_WARMUP_SECONDS ?? (QUICK ? 1 : 2));
const RATES = (env.BENCH_INCIDENT_RATES ?? (QUICK ? '100,300' : '50,100,200,300')).split(',').map(Number);
const ALL_VARIANTS = ['none', 'naive', 'sync', 'batch', 'queue', 'outage'];
const VARIANTS = (env.BENCH_INCIDENT_VARIANTS ?? ALL_VARIANTS.join(',')).split(',');
/** Added in each direction to every chunk to and from MariaDB and Redis. */
const LATENCY_MS = Number(env.BENCH_INCIDENT_LATENCY_MS ?? 1);
/** How the activity database is cut in `outage`: `blackhole` (hangs) or `refuse` (down). */
const OUTAGE_MODE = env.BENCH_INCIDENT_OUTAGE ?? 'blackhole';
/** The outage spans this part of the measured load (fractions of it). */
const OUTAGE_FROM = 0.3;
const OUTAGE_TO = 0.7;
/** A request unanswered this long after its scheduled time is abandoned (a timeout). */
const TIMEOUT_MS = Number(env.BENCH_INCIDENT_TIMEOUT_MS ?? 2000);
/** The app's pool: a query waiting this long for one of its 10 connections fails (503). */
const ACQUIRE_TIMEOUT_MS = 1000;
const ORDERS = 10_000;
/** Where the app's CPU profiles go (one per variant and rate), when set. */
const PROFILE_DIR = env.BENCH_INCIDENT_PROFILE;
const OUT = env.BENCH_INCIDENT_OUT ?? (QUICK ? null : join(here, '..', 'docs', 'incident.json'));
const DATABASE = `bench_incident_${process.pid}`;
const ORDERS_TABLE = 'bench_incident_orders';
const ACTIVITY_TABLE = 'bench_incident_activity_log';

const LABELS = {
  none: '(a) no logging',
  naive: '(b) naive INSERT per event',
  sync: '(c) sync',
  batch: '(d) batch',
  queue: '(e) queue + 1 worker',
  outage: '(f) batch, DB cut',
};

const children = new Set();

function waitFor(child, type) {
  return new Promise((resolve, reject) => {
    const onMessage = (message) => {
      if (message.type === type) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message);
      } else if (message.type === 'error') reject(new Error(message.message));
    };
    const onExit = (code) => reject(new Error(`${child.spawnargs.join(' ')} exited with ${code}`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

async function ask(child, message, answer) {
  const answered = waitFor(child, answer);
  child.send(message);
  return answered;
}

async function setUpDatabase() {
  const connection = await mysql.createConnection({
    host: MYSQL.hostname,
    port: Number(MYSQL.port || 3306),
    user: decodeURIComponent(MYSQL.username || 'root'),
    password: decodeURIComponent(MYSQL.password),
    multipleStatements: false,
  });
  await connection.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await connection.query(`CREATE DATABASE \`${DATABASE}\``);
  await connection.query(`USE \`${DATABASE}\``);
  await connection.query(
    `CREATE TABLE \`${ORDERS_TABLE}\` (id INT PRIMARY KEY, status VARCHAR(20) NOT NULL, total DOUBLE NOT NULL, version INT NOT NULL) ENGINE=InnoDB`,
  );
  for (let start = 1; start <= ORDERS; start += 1000) {
    const rows = Array.from({ length: 1000 }, (_, i) => [start + i, 'open', 10 + ((start + i) % 90), 0]);
    await connection.query(`INSERT INTO \`${ORDERS_TABLE}\` (id, status, total, version) VALUES ?`, [rows]);
  }
  const store = createStore(
    loadConfig({ env: { DATABASE_URL: databaseUrl(MYSQL.port || 3306), ACTIVITY_LOG_TABLE: ACTIVITY_TABLE } })
      .database,
  );
  await store.migrate();
  await store.close();
  return connection;
}

function databaseUrl(port) {
  const auth = MYSQL.password === '' ? MYSQL.username || 'root' : `${MYSQL.username}:${MYSQL.password}`;
  return `mysql://${auth}@127.0.0.1:${port}/${DATABASE}`;
}

async function startProxy() {
  const proxy = fork(PROXY, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(proxy);
  proxy.once('exit', () => children.delete(proxy));
  const target = { host: MYSQL.hostname, port: Number(MYSQL.port || 3306) };
  const { ports } = await ask(
    proxy,
    {
      type: 'start',
      latencyMs: LATENCY_MS,
      routes: {
        app: target,
        activity: target,
        worker: target,
        redis: { host: REDIS.hostname, port: Number(REDIS.port || 6379) },
      },
    },
    'ready',
  );
  return { proxy, ports };
}

function stopChild(child, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill(signal);
  });
}

async function startWorker(ports, queueName, spoolDir) {
  const profile = PROFILE_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(PROFILE_DIR)}`];
  const worker = spawn(process.execPath, [...profile, BIN, 'work'], {
    env: {
      PATH: env.PATH,
      DATABASE_URL: databaseUrl(ports.worker),
      ACTIVITY_LOG_TABLE: ACTIVITY_TABLE,
      QUEUE_CONNECTION: 'redis',
      REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
      ACTIVITY_LOG_METHOD: 'queue',
      ACTIVITY_LOG_QUEUE_NAME: queueName,
      ACTIVITY_LOG_SPOOL_DIR: join(spoolDir, 'worker'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(worker);
  worker.once('exit', () => children.delete(worker));
  let errors = '';
  worker.stderr.setEncoding('utf8').on('data', (chunk) => {
    errors += chunk;
  });
  await new Promise((resolve, reject) => {
    let output = '';
    worker.stdout.setEncoding('utf8').on('data', (chunk) => {
      output += chunk;
      if (output.includes('worker started')) resolve();
    });
    worker.once('exit', (code) => reject(new Error(`worker exited with ${code}: ${errors}`)));
  });
  return worker;
}

async function dropQueue(queueName) {
  const redisUrl = REDIS.href;
  const queue = new Queue(queueName, { connection: { url: redisUrl }, prefix: QUEUE_PREFIX });
  await queue.obliterate({ force: true });
  await queue.close();
  // The rest of the queue's keys: the stored counter and job ids, the worker's published metrics.
  const redis = new Redis(redisUrl);
  await redis.del(storedCounterKey(queueName), storedJobsKey(queueName));
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${QUEUE_PREFIX}:${queueName}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
  await redis.quit();
}

async function countStored(connection) {
  const [[row]] = await connection.query(
    `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS distinctIds FROM \`${ACTIVITY_TABLE}\``,
  );
  return { stored: Number(row.n), distinct: Number(row.distinctIds) };
}

async function waitForStored(connection, expected, timeoutMs) {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if ((await countStored(connection)).stored >= expected) return (performance.now() - started) / 1000;
    await sleep(100);
  }
  return null;
}

/** CPU time (µs) a child process has used so far, from /proc (Linux); null elsewhere. */
async function processCpuUs(pid) {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
}

function latencySummary(latencies) {
  const values = Array.from(latencies);
  return {
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    max: values.reduce((a, b) => Math.max(a, b), 0),
  };
}

let seq = 0;

/** One variant at one rate, in a fresh application process. */
async function step(connection, ports, proxy, variant, rate) {
  await connection.query(`TRUNCATE TABLE \`${ACTIVITY_TABLE}\``);
  const stepNumber = seq++;
  const queueName = `bench-incident-${process.pid}-${stepNumber}`;
  const spoolDir = await mkdtemp(join(tmpdir(), 'activity-log-incident-'));
  const worker = variant === 'queue' ? await startWorker(ports, queueName, spoolDir) : null;
  const app = fork(APP, [], {
    env: {
      PATH: env.PATH,
      BENCH_INCIDENT_APP: JSON.stringify({
        variant,
        rate,
        step: stepNumber,
        database: DATABASE,
        ordersTable: ORDERS_TABLE,
        activityTable: ACTIVITY_TABLE,
        appDbPort: ports.app,
        activityDbPort: ports.activity,
        redisPort: ports.redis,
        queueName,
        spoolDir,
        acquireTimeoutMs: ACQUIRE_TIMEOUT_MS,
        ...(env.ACTIVITY_LOG_FLUSH_INTERVAL_MS === undefined
          ? {}
          : { flushIntervalMs: Number(env.ACTIVITY_LOG_FLUSH_INTERVAL_MS) }),
        ...(PROFILE_DIR === undefined ? {} : { profileDir: resolve(PROFILE_DIR) }),
      }),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(app);
  app.once('exit', () => children.delete(app));
  const { port } = await waitFor(app, 'ready');
  const makeRequest = (i) => ({
    method: 'PATCH',
    path: `/orders/${1 + ((i * 7919) % ORDERS)}`,
    headers: { 'x-user-id': String(1 + (i % 50)), 'user-agent': 'bench-incident' },
  });
  // Warm-up (not measured): the JIT, the pools and the first connections.
  await openLoop({
    port,
    rate: Math.min(rate, 150),
    seconds: WARMUP_SECONDS,
    makeRequest,
    timeoutMs: TIMEOUT_MS,
  });
  await sleep(300);

  await ask(app, { type: 'measure' }, 'measuring');
  const workerCpuBefore = worker === null ? null : await processCpuUs(worker.pid);
  const proxyCpuBefore = await processCpuUs(proxy.pid);
  const cut = { at: null, restoredAt: null };
  const at =
    variant === 'outage'
      ? [
          {
            seconds: SECONDS * OUTAGE_FROM,
            run: async () => {
              if (cut.at !== null) return;
              cut.at = performance.now();
              await ask(proxy, { type: 'cut', route: 'activity', mode: OUTAGE_MODE }, 'done');
            },
          },
          {
            seconds: SECONDS * OUTAGE_TO,
            run: async () => {
              if (cut.restoredAt !== null) return;
              await ask(proxy, { type: 'restore', route: 'activity' }, 'done');
              cut.restoredAt = performance.now();
            },
          },
        ]
      : [];
  const load = await openLoop({ port, rate, seconds: SECONDS, makeRequest, timeoutMs: TIMEOUT_MS, at });
  const report = await ask(app, { type: 'report' }, 'report');
  const workerCpuAfter = worker === null ? null : await processCpuUs(worker.pid);
  const proxyCpuAfter = await processCpuUs(proxy.pid);

  if (env.BENCH_INCIDENT_TRACE !== undefined) {
    await writeFile(
      join(env.BENCH_INCIDENT_TRACE, `${variant}-${rate}-${stepNumber}.json`),
      JSON.stringify(Array.from(load.latencies)),
    );
  }
  // The app finishes the requests the generator gave up on; then everything it logged must reach
  // the table before it closes: what a cut (or an overloaded) database made it spool is replayed
  // by the running app, and the spool is removed below.
  let logged = 0;
  const idleBy = performance.now() + 60_000;
  for (;;) {
    const count = await ask(app, { type: 'count' }, 'count');
    logged = count.logged;
    if (count.inFlight === 0 || performance.now() > idleBy) break;
    await sleep(100);
  }
  let recoverySeconds = null;
  if (['sync', 'batch', 'outage'].includes(variant)) {
    const waited = await waitForStored(connection, logged, 120_000);
    if (variant === 'outage')
      recoverySeconds = waited === null ? null : (performance.now() - cut.restoredAt) / 1000;
  }
  const closed = await ask(app, { type: 'close' }, 'closed');
  await stopChild(app);
  if (worker !== null) {
    await waitForStored(connection, closed.logged, 120_000);
    await stopChild(worker);
    await dropQueue(queueName);
  }
  const { stored, distinct } = await countStored(connection);
  await rm(spoolDir, { recursive: true, force: true });

  const all = latencySummary(load.latencies);
  let duringOutage = null;
  if (variant === 'outage') {
    const from = Math.floor(rate * SECONDS * OUTAGE_FROM);
    const to = Math.ceil(rate * SECONDS * OUTAGE_TO);
    duringOutage = latencySummary(load.latencies.subarray(from, to));
  }
  const failed = load.counts.errorStatus + load.counts.socketError + load.counts.timeout;
  const requests = load.sent;
  const result = {
    variant,
    rate,
    requests,
    ok: load.counts.ok,
    failed,
    errorStatus: load.counts.errorStatus,
    socketErrors: load.counts.socketError,
    timeouts: load.counts.timeout,
    p50Ms: round(all.p50),
    p99Ms: round(all.p99),
    maxMs: round(all.max),
    ...(duringOutage === null
      ? {}
      : { outageP99Ms: round(duringOutage.p99), outageMaxMs: round(duringOutage.max), recoverySeconds }),
    appCpuMsPerSecond: round(report.cpuUs / 1000 / SECONDS),
    appCpuUsPerRequest: round(report.cpuUs / requests),
    appEventLoopMsPerRequest: round(report.eluActiveMs / requests, 3),
    eventLoopUtilization: round(report.eluUtilization, 3),
    eventLoopDelayP99Ms: round(report.delayP99Ms),
    eventLoopDelayMaxMs: round(report.delayMaxMs),
    ...(workerCpuBefore === null || workerCpuAfter === null
      ? {}
      : { workerCpuUsPerActivity: round((workerCpuAfter - workerCpuBefore) / Math.max(1, report.logged)) }),
    ...(proxyCpuBefore === null || proxyCpuAfter === null
      ? {}
      : { proxyCpuMsPerSecond: round((proxyCpuAfter - proxyCpuBefore) / 1000 / SECONDS) }),
    activitiesLoggedInWindow: report.logged,
    logged: closed.logged,
    logErrors: closed.logErrors,
    stored,
    storedDistinct: distinct,
    closeError: closed.closeError,
    generatorMaxLateMs: round(load.generatorMaxLateMs),
    ...(report.profile === null ? {} : { profile: report.profile }),
  };
  if (closed.warnings.length > 0 && variant !== 'outage') {
    console.error(`bench: ${variant} at ${rate}/s warned: ${closed.warnings.join(' | ')}`);
  }
  return result;
}

function round(value, digits = 2) {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** The ratios the issue asks for, from the steps of one run. */
export function summarize(steps) {
  const at = (variant, rate) => steps.find((s) => s.variant === variant && s.rate === rate);
  const rates = [...new Set(steps.map((s) => s.rate))].sort((a, b) => a - b);
  const base = (rate) => at('none', rate);
  // (a) is healthy while it answers every request and its p99 stays within 3× its p99 at the lowest rate.
  const lowest = base(rates[0]);
  const healthyRates = rates.filter((rate) => {
    if (lowest === undefined) return false;
    const a = base(rate);
    return a !== undefined && a.failed === 0 && a.p99Ms <= 3 * lowest.p99Ms;
  });
  const reference = healthyRates.at(-1) ?? null;
  const ratiosAt = (rate) =>
    Object.fromEntries(
      ALL_VARIANTS.filter((v) => at(v, rate) !== undefined && base(rate) !== undefined).map((v) => [
        v,
        {
          p50: ratio(at(v, rate).p50Ms, base(rate).p50Ms),
          p99: ratio(at(v, rate).p99Ms, base(rate).p99Ms),
          failed: at(v, rate).failed,
        },
      ]),
    );
  const naiveOver2x = rates.find(
    (rate) => at('naive', rate) && base(rate) && at('naive', rate).p99Ms > 2 * base(rate).p99Ms,
  );
  const naiveFails = rates.find((rate) => at('naive', rate) && at('naive', rate).failed > 0);
  const perActivity = Object.fromEntries(
    rates.map((rate) => [
      rate,
      Object.fromEntries(
        ALL_VARIANTS.filter((v) => v !== 'none' && at(v, rate) !== undefined && base(rate) !== undefined).map(
          (v) => [v, round((at(v, rate).appCpuUsPerRequest - base(rate).appCpuUsPerRequest) / 3, 1)],
        ),
      ),
    ]),
  );
  // CPU per request as the slope of CPU time per second against the rate (least squares over the
  // rates where the variant answered everything): fixed costs per second (timers, the JIT still
  // at work, the loop-delay monitor) fall out, which dominate a per-request figure at low rates.
  const slope = (variant) => {
    const points = rates
      .map((rate) => at(variant, rate))
      .filter((s) => s !== undefined && s.failed === 0)
      .map((s) => [s.rate, s.appCpuMsPerSecond]);
    if (points.length < 2) return null;
    const mx = points.reduce((a, [x]) => a + x, 0) / points.length;
    const my = points.reduce((a, [, y]) => a + y, 0) / points.length;
    const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
    const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
    return (sxy / sxx) * 1000; // µs of CPU per request
  };
  const baseSlope = slope('none');
  const cpuSlopes = Object.fromEntries(
    ALL_VARIANTS.filter((v) => steps.some((s) => s.variant === v)).map((v) => {
      const perRequest = slope(v);
      return [
        v,
        {
          appCpuUsPerRequest: perRequest === null ? null : round(perRequest, 1),
          addedAppCpuUsPerActivity:
            perRequest === null || baseSlope === null || v === 'none'
              ? null
              : round((perRequest - baseSlope) / 3, 1),
        },
      ];
    }),
  );
  return {
    cpuFromSlopes: cpuSlopes,
    referenceRate: reference,
    ratiosAtReference: reference === null ? null : ratiosAt(reference),
    ratiosByRate: Object.fromEntries(rates.map((rate) => [rate, ratiosAt(rate)])),
    naiveP99Over2xAtRate: naiveOver2x ?? null,
    naiveFirstFailuresAtRate: naiveFails ?? null,
    addedAppCpuUsPerActivity: perActivity,
    everyActivityStored: Object.fromEntries(
      steps
        .filter((s) => ['sync', 'batch', 'queue', 'outage'].includes(s.variant))
        .map((s) => [`${s.variant}@${s.rate}`, s.everyRoundStoredAll]),
    ),
  };
}

/**
 * One figure per variant and rate from its rounds: the median of each latency percentile, CPU and
 * loop-delay figure, the worst max, and the sums of requests, failures and activities.
 */
function combine(runs) {
  const first = runs[0];
  const mid = (key) => {
    const values = runs.map((r) => r[key]).filter((v) => v !== undefined && v !== null);
    return values.length === 0 ? undefined : median(values);
  };
  const sum = (key) => runs.reduce((total, r) => total + (r[key] ?? 0), 0);
  const combined = {
    variant: first.variant,
    rate: first.rate,
    rounds: runs.length,
    requests: sum('requests'),
    ok: sum('ok'),
    failed: sum('failed'),
    errorStatus: sum('errorStatus'),
    socketErrors: sum('socketErrors'),
    timeouts: sum('timeouts'),
    p50Ms: mid('p50Ms'),
    p99Ms: mid('p99Ms'),
    maxMs: Math.max(...runs.map((r) => r.maxMs)),
    p99SamplesMs: runs.map((r) => r.p99Ms),
    appCpuMsPerSecond: mid('appCpuMsPerSecond'),
    appCpuUsPerRequest: mid('appCpuUsPerRequest'),
    appEventLoopMsPerRequest: mid('appEventLoopMsPerRequest'),
    eventLoopUtilization: mid('eventLoopUtilization'),
    eventLoopDelayP99Ms: mid('eventLoopDelayP99Ms'),
    eventLoopDelayMaxMs: Math.max(...runs.map((r) => r.eventLoopDelayMaxMs)),
    logged: sum('logged'),
    logErrors: sum('logErrors'),
    stored: sum('stored'),
    storedDistinct: sum('storedDistinct'),
    everyRoundStoredAll: runs.every((r) => r.stored === r.logged && r.storedDistinct === r.stored),
    generatorMaxLateMs: Math.max(...runs.map((r) => r.generatorMaxLateMs)),
  };
  if (first.workerCpuUsPerActivity !== undefined)
    combined.workerCpuUsPerActivity = mid('workerCpuUsPerActivity');
  if (first.proxyCpuMsPerSecond !== undefined) combined.proxyCpuMsPerSecond = mid('proxyCpuMsPerSecond');
  if (first.variant === 'outage') {
    combined.outageP99Ms = mid('outageP99Ms');
    combined.outageMaxMs = Math.max(...runs.map((r) => r.outageMaxMs));
    combined.recoverySeconds = runs.map((r) => r.recoverySeconds);
  }
  const closeErrors = runs.map((r) => r.closeError).filter((e) => e !== null);
  if (closeErrors.length > 0) combined.closeErrors = closeErrors;
  const profiles = runs.map((r) => r.profile).filter((p) => p !== undefined);
  if (profiles.length > 0) combined.profiles = profiles;
  return combined;
}

export async function run() {
  const connection = await setUpDatabase();
  const { proxy, ports } = await startProxy();
  const runs = [];
  const started = performance.now();
  try {
    if (PROFILE_DIR !== undefined) await mkdir(PROFILE_DIR, { recursive: true });
    for (let turn = 0; turn < ROUNDS; turn++) {
      for (const rate of RATES) {
        // The variants take turns, starting one further along each round.
        const order = VARIANTS.map((_, i) => VARIANTS[(i + turn) % VARIANTS.length]);
        for (const variant of order) {
          const result = await step(connection, ports, proxy, variant, rate);
          runs.push({ round: turn + 1, ...result });
          console.log(
            `bench: incident round ${turn + 1}/${ROUNDS} ${variant} @ ${rate}/s: p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, max ${result.maxMs} ms, failed ${result.failed}, ` +
              `cpu ${result.appCpuUsPerRequest} µs/req, loop delay p99 ${result.eventLoopDelayP99Ms} ms, stored ${result.stored}/${result.logged}` +
              (result.recoverySeconds === undefined
                ? ''
                : `, outage p99 ${result.outageP99Ms} ms, recovered ${round(result.recoverySeconds ?? Number.NaN)} s after`),
          );
        }
      }
    }
  } finally {
    await ask(proxy, { type: 'close' }, 'done').catch(() => undefined);
    await stopChild(proxy);
    for (const child of children) await stopChild(child, 'SIGKILL');
    await connection.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
    await connection.end();
  }
  const steps = [];
  for (const rate of RATES) {
    for (const variant of VARIANTS) {
      steps.push(combine(runs.filter((r) => r.variant === variant && r.rate === rate)));
    }
  }
  const results = {
    machine: machine(),
    settings: {
      seconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      rates: RATES,
      variants: VARIANTS,
      latencyMsEachWay: LATENCY_MS,
      outage: { mode: OUTAGE_MODE, from: OUTAGE_FROM, to: OUTAGE_TO },
      timeoutMs: TIMEOUT_MS,
      poolAcquireTimeoutMs: ACQUIRE_TIMEOUT_MS,
      activitiesPerRequest: 3,
      appPool: 10,
      rounds: ROUNDS,
      wallSeconds: Math.round((performance.now() - started) / 1000),
    },
    steps,
    summary: summarize(steps),
    runs,
  };
  printTable(
    `Incident (Fastify + Sequelize on MariaDB ${LATENCY_MS} ms away each way; ${SECONDS} s per step; p99 ms and ×(a))`,
    [
      ['rate/s', ...VARIANTS.map((v) => LABELS[v])],
      ...RATES.map((rate) => [
        rate,
        ...VARIANTS.map((v) => {
          const s = steps.find((x) => x.variant === v && x.rate === rate);
          const a = steps.find((x) => x.variant === 'none' && x.rate === rate);
          return `${s.p99Ms}${a ? ` (${ratio(s.p99Ms, a.p99Ms)}×)` : ''}${s.failed > 0 ? ` ${s.failed} failed` : ''}`;
        }),
      ]),
    ],
  );
  if (OUT !== null) {
    await writeFile(OUT, `${JSON.stringify(results, null, 2)}\n`);
    // Formatted as the linter wants it, so a checked-in result passes `biome check docs`.
    spawnSync(join(here, '..', 'node_modules', '.bin', 'biome'), ['format', '--write', OUT], {
      stdio: 'ignore',
    });
    const svg = OUT.replace(/\.json$/, '-p99.svg');
    await writeIncidentChart(results, svg);
    console.log(`bench: incident results in ${OUT}, chart in ${svg}`);
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  run().then(
    (results) => console.log(JSON.stringify(results, null, 2)),
    (error) => {
      console.error(`bench: ${error.stack ?? error.message}`);
      process.exitCode = 1;
    },
  );
}
