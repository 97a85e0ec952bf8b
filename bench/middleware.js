// Per-request cost of the request context: the same Express and Fastify apps with and without
// the activity-log middleware/plugin, taking turns in one run. Each request's handler logs one
// activity in `batch` mode (to an in-memory store), so both variants do the same work apart from
// the context. Usage: npm run bench -- middleware (or node bench/middleware.js after a build).
import { EventEmitter } from 'node:events';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import express from 'express';
import Fastify from 'fastify';
import { createActivityLog } from '../dist/index.js';
import { activityLogMiddleware } from '../dist/integrations/express.js';
import { activityLogPlugin } from '../dist/integrations/fastify.js';
import { machine, median, printTable, ratio } from './stats.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const ROUNDS = 3;

const memoryStore = {
  capabilities: { dialect: 'sqlite', maxRowsPerInsert: 1000 },
  async migrate() {
    return { from: 1, to: 1 };
  },
  async insertMany(activities) {
    return activities.length;
  },
  async query() {
    return { data: [], nextCursor: null };
  },
  async prune() {
    return 0;
  },
  async ping() {},
  async close() {},
};

function handlerWork(activityLog) {
  return () =>
    activityLog.log({ description: 'viewed order', subject: { type: 'Order', id: 1 }, event: 'viewed' });
}

async function expressApp(withContext, activityLog) {
  const app = express();
  if (withContext) app.use(activityLogMiddleware());
  const work = handlerWork(activityLog);
  app.get('/orders/1', async (_req, res) => {
    await work();
    res.json({ ok: true });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { port: server.address().port, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function fastifyApp(withContext, activityLog) {
  const app = Fastify();
  if (withContext) await app.register(activityLogPlugin);
  const work = handlerWork(activityLog);
  app.get('/orders/1', async () => {
    await work();
    return { ok: true };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { port: app.server.address().port, close: () => app.close() };
}

function get(agent, port) {
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: '127.0.0.1', port, path: '/orders/1', headers: { 'user-agent': 'bench/1.0' } },
      (res) => {
        res.resume();
        res.once('end', resolve);
      },
    );
    req.once('error', reject);
    req.end();
  });
}

/** Microseconds per request at CONCURRENCY keep-alive connections. */
async function measure(start, withContext) {
  const activityLog = createActivityLog({
    env: {},
    store: memoryStore,
    config: { method: 'batch', batchSize: 1000 },
  });
  const app = await start(withContext, activityLog);
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  let sent = 0;
  const client = async () => {
    while (sent < REQUESTS) {
      sent++;
      await get(agent, app.port);
    }
  };
  sent = REQUESTS - 200;
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  sent = 0;
  const began = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
  const elapsedNs = Number(process.hrtime.bigint() - began);
  agent.destroy();
  await app.close();
  await activityLog.close();
  return elapsedNs / 1000 / REQUESTS;
}

const CALLS = Number(process.env.BENCH_CALLS ?? 100_000);
const BLOCK = 5_000;

/**
 * CPU cost without sockets, so that a busy machine disturbs it less: the Express middleware
 * called directly around a handler that logs, against the handler alone; Fastify through
 * `inject()` with and without the plugin. Blocks of both variants alternate.
 */
async function inProcess() {
  const activityLog = createActivityLog({
    env: {},
    store: memoryStore,
    config: { method: 'batch', batchSize: 1000 },
  });
  const work = handlerWork(activityLog);
  const middleware = activityLogMiddleware();
  const fakeRequest = () =>
    Object.assign(new EventEmitter(), {
      ip: '127.0.0.1',
      originalUrl: '/orders/1',
      method: 'GET',
      headers: { 'user-agent': 'bench/1.0' },
    });
  const passThrough = (_req, _res, next) => next();
  const expressNs = { without: [], with: [] };
  for (let done = 0; done < CALLS; done += BLOCK) {
    let began = process.hrtime.bigint();
    for (let i = 0; i < BLOCK; i++) {
      await new Promise((resolve) =>
        passThrough(fakeRequest(), new EventEmitter(), () => work().then(resolve)),
      );
    }
    expressNs.without.push(Number(process.hrtime.bigint() - began) / BLOCK);
    began = process.hrtime.bigint();
    for (let i = 0; i < BLOCK; i++) {
      await new Promise((resolve) =>
        middleware(fakeRequest(), new EventEmitter(), () => work().then(resolve)),
      );
    }
    expressNs.with.push(Number(process.hrtime.bigint() - began) / BLOCK);
  }

  const apps = {};
  for (const withContext of [false, true]) {
    const app = Fastify();
    if (withContext) await app.register(activityLogPlugin);
    app.get('/orders/1', async () => {
      await work();
      return { ok: true };
    });
    await app.ready();
    apps[withContext ? 'with' : 'without'] = app;
  }
  const fastifyNs = { without: [], with: [] };
  const injectBlock = BLOCK / 5;
  for (let done = 0; done < CALLS / 5; done += injectBlock) {
    for (const variant of ['without', 'with']) {
      const began = process.hrtime.bigint();
      for (let i = 0; i < injectBlock; i++) await apps[variant].inject({ method: 'GET', url: '/orders/1' });
      fastifyNs[variant].push(Number(process.hrtime.bigint() - began) / injectBlock);
    }
  }
  await apps.with.close();
  await apps.without.close();
  await activityLog.close();
  const summary = (samples) => {
    const base = median(samples.without);
    const cost = median(samples.with);
    return {
      withoutNsPerRequest: Math.round(base),
      withNsPerRequest: Math.round(cost),
      addedNsPerRequest: Math.round(cost - base),
    };
  };
  return { expressDirectCall: summary(expressNs), fastifyInject: summary(fastifyNs) };
}

export async function run() {
  const results = { machine: machine(), requests: REQUESTS, concurrency: CONCURRENCY };
  results.inProcess = await inProcess();
  printTable('in-process: ns per request (median of alternating blocks)', [
    ['express, middleware called directly', JSON.stringify(results.inProcess.expressDirectCall)],
    ['fastify, inject()', JSON.stringify(results.inProcess.fastifyInject)],
  ]);
  for (const [name, start] of [
    ['express', expressApp],
    ['fastify', fastifyApp],
  ]) {
    const without = [];
    const withContext = [];
    for (let round = 0; round < ROUNDS; round++) {
      without.push(await measure(start, false));
      withContext.push(await measure(start, true));
    }
    const base = median(without);
    const cost = median(withContext);
    results[name] = {
      withoutUsPerRequest: Math.round(base * 10) / 10,
      withUsPerRequest: Math.round(cost * 10) / 10,
      addedUsPerRequest: Math.round((cost - base) * 10) / 10,
      ratio: ratio(cost, base),
      samples: { without: without.map(Math.round), with: withContext.map(Math.round) },
    };
    printTable(
      `${name}: µs per request (${REQUESTS} requests, ${CONCURRENCY} connections, median of ${ROUNDS})`,
      [
        ['without context', results[name].withoutUsPerRequest],
        ['with context', results[name].withUsPerRequest],
        ['added', results[name].addedUsPerRequest],
      ],
    );
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await run(), null, 2));
}
