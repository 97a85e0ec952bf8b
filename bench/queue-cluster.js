// Queue throughput on a single Redis and on a Redis Cluster (REDIS_CLUSTER_NODES), one, two and four
// `activity-log work` processes: activities/s from the first log() in this (producer) process to
// the last row committed in MariaDB, as in bench/queue.js's end-to-end figure.
// Usage: node bench/queue-cluster.js after a build, with the cluster of .ci/redis-cluster.sh up.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { QueueAdmin } from '../dist/delivery/queue-admin.js';
import { createActivityLog, loadConfig } from '../dist/index.js';
import { createStore } from '../dist/store/create-store.js';
import { input } from './lib/workload.js';
import { machine, median, printTable } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', 'bin', 'activity-log.js');
const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const TARGETS = {
  'single Redis': { REDIS_URL: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' },
  'Redis Cluster': {
    REDIS_CLUSTER_NODES:
      process.env.BENCH_REDIS_CLUSTER_NODES ??
      Array.from({ length: 6 }, (_, i) => `127.0.0.1:${7101 + i}`).join(','),
  },
};
const TABLE = 'bench_queue_cluster_activity_log';
const ROWS = Number(process.env.BENCH_QUEUE_ROWS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WORKER_COUNTS = (process.env.BENCH_QUEUE_WORKERS ?? '1,2,4').split(',').map(Number);
let seq = 0;

function benchEnv(target, queueName) {
  return {
    DATABASE_URL: MYSQL_URL,
    ACTIVITY_LOG_TABLE: TABLE,
    QUEUE_CONNECTION: 'redis',
    ACTIVITY_LOG_METHOD: 'queue',
    ACTIVITY_LOG_QUEUE_NAME: queueName,
    ACTIVITY_LOG_BATCH_SIZE: '1000',
    ...TARGETS[target],
  };
}

async function freshTable(env) {
  const connection = await mysql.createConnection(MYSQL_URL);
  await connection.query(
    `DROP TABLE IF EXISTS \`${TABLE}\`, \`${TABLE}_migrations\`, \`${TABLE}_seals\`, \`${TABLE}_seals_pruned\``,
  );
  const store = createStore(loadConfig({ env }).database);
  await store.migrate();
  await store.close();
  return connection;
}

function startWorker(env) {
  const child = spawn(process.execPath, [BIN, 'work'], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      output += chunk;
      if (output.includes('worker started')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code} before it started`)));
  });
}

async function round(target, workers) {
  const queueName = `bench-cluster-${process.pid}-${seq++}`;
  const env = benchEnv(target, queueName);
  const connection = await freshTable(env);
  const children = await Promise.all(Array.from({ length: workers }, () => startWorker(env)));
  const activityLog = createActivityLog({ env });
  const started = performance.now();
  for (let i = 0; i < ROWS; i++) activityLog.log(input(i));
  await activityLog.flush();
  for (;;) {
    const [rows] = await connection.query(`SELECT COUNT(*) AS n FROM \`${TABLE}\``);
    if (Number(rows[0].n) >= ROWS) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const rate = ROWS / ((performance.now() - started) / 1000);
  await activityLog.close();
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          child.once('exit', resolve);
          child.kill('SIGTERM');
        }),
    ),
  );
  const admin = await QueueAdmin.connect(loadConfig({ env }).redis, queueName);
  await admin.removeQueue();
  await admin.close();
  await connection.query(
    `DROP TABLE IF EXISTS \`${TABLE}\`, \`${TABLE}_migrations\`, \`${TABLE}_seals\`, \`${TABLE}_seals_pruned\``,
  );
  await connection.end();
  return rate;
}

const samples = {};
const cases = Object.keys(TARGETS).flatMap((target) => WORKER_COUNTS.map((workers) => ({ target, workers })));
await round('single Redis', 1); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const { target, workers } of cases) {
    const key = `${target}, ${workers} worker${workers === 1 ? '' : 's'}`;
    samples[key] ??= [];
    samples[key].push(await round(target, workers));
  }
}
console.log(machine());
printTable(
  'queue, end to end: median act./s | samples',
  Object.entries(samples).map(([key, rates]) => [
    key,
    Math.round(median(rates)).toLocaleString('en-US'),
    rates.map((rate) => Math.round(rate).toLocaleString('en-US')).join(' / '),
  ]),
);
process.exit(0);
