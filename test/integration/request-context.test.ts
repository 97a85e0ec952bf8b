import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import Fastify, { type FastifyRequest } from 'fastify';
import type mysql from 'mysql2/promise';
import { describe, expect } from 'vitest';
import type { Activity, ModelLike } from '../../src/core/activity.js';
import { activityLogMiddleware } from '../../src/integrations/express.js';
import { activityLogPlugin } from '../../src/integrations/fastify.js';
import {
  type ActivityLog,
  composeActivityLog,
  createActivityLog,
} from '../../src/runtime/create-activity-log.js';
import { MemoryStore } from '../helpers/memory-sink.js';
import { queueTestTable, runCli } from '../helpers/queue-cli.js';
import { MARIADB, REDIS, serviceAvailable } from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

class User {
  constructor(readonly id: number) {}
}

/** What each app does on its routes; the framework only wires it. */
interface Routes {
  /** POST /posts: logs one activity for the created post. */
  createPost(body: { title?: string }): Promise<{ id: number }>;
  /** GET /wait/:name: logs, after waiting for `release(name)`. */
  waitThenLog(name: string): Promise<void>;
  /** GET /deferred: replies first, logs in a timer afterwards. */
  logLater(): void;
  /** GET /explicit: logs with explicit request fields that must win. */
  logExplicit(): Promise<void>;
  /** GET /twice: logs two activities. */
  logTwice(): Promise<void>;
}

interface Options {
  readonly trustProxy?: boolean;
  readonly batchPerRequest?: boolean;
  readonly causer?: (user: User | undefined) => ModelLike | null | undefined;
  /** Leave requests for this path without a context. */
  readonly skipPath?: string;
  /** Called once a request's headers are being handled, before its body is read. */
  readonly onHeaders?: () => void;
}

interface Framework {
  readonly name: string;
  /** Starts an app on port 0 whose auth step (after the context) sets the user from `x-user-id`. */
  start(routes: Routes, options: Options): Promise<{ url: string; close(): Promise<void> }>;
}

function userFrom(header: string | string[] | undefined): User | undefined {
  return typeof header === 'string' ? new User(Number(header)) : undefined;
}

function readJsonBody(req: Request, _res: Response, next: NextFunction): void {
  if (req.method !== 'POST') {
    next();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    req.body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    next();
  });
}

const expressFramework: Framework = {
  name: 'Express',
  async start(routes, options) {
    const app = express();
    if (options.trustProxy === true) app.set('trust proxy', 'loopback');
    app.use(
      activityLogMiddleware({
        ...(options.batchPerRequest === undefined ? {} : { batchPerRequest: options.batchPerRequest }),
        ...(options.skipPath === undefined ? {} : { skip: (req: Request) => req.path === options.skipPath }),
        ...(options.causer === undefined
          ? {}
          : { causer: (req: Request) => options.causer!((req as Request & { user?: User }).user) }),
      }),
    );
    app.use((_req: Request, _res: Response, next: NextFunction) => {
      options.onHeaders?.();
      next();
    });
    // Body parsing and authentication come after the context, as they often do in real apps. The
    // parser reads the stream itself, as multipart parsers do, so its callback runs in the socket's
    // async context unless the middleware carries the request's context into it.
    app.use(readJsonBody);
    app.use((req: Request, _res: Response, next: NextFunction) => {
      (req as Request & { user?: User }).user = userFrom(req.headers['x-user-id']);
      next();
    });
    app.post('/posts', async (req, res) => {
      res.status(201).json(await routes.createPost(req.body as { title?: string }));
    });
    app.get('/wait/:name', async (req, res) => {
      await routes.waitThenLog(req.params.name as string);
      res.json({ ok: true });
    });
    app.get('/deferred', (_req, res) => {
      res.json({ ok: true });
      routes.logLater();
    });
    app.get('/explicit', async (_req, res) => {
      await routes.logExplicit();
      res.json({ ok: true });
    });
    app.get('/twice', async (_req, res) => {
      await routes.logTwice();
      res.json({ ok: true });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  },
};

const fastifyFramework: Framework = {
  name: 'Fastify',
  async start(routes, options) {
    const app = Fastify(options.trustProxy === true ? { trustProxy: '127.0.0.1' } : {});
    await app.register(activityLogPlugin, {
      ...(options.batchPerRequest === undefined ? {} : { batchPerRequest: options.batchPerRequest }),
      ...(options.skipPath === undefined
        ? {}
        : { skip: (request: FastifyRequest) => request.url === options.skipPath }),
      ...(options.causer === undefined
        ? {}
        : { causer: (request: FastifyRequest) => options.causer!((request as { user?: User }).user) }),
    });
    app.addHook('onRequest', async () => {
      options.onHeaders?.();
    });
    app.addHook('preHandler', async (request) => {
      (request as { user?: User }).user = userFrom(request.headers['x-user-id']);
    });
    app.post('/posts', async (request, reply) => {
      reply.code(201);
      return routes.createPost(request.body as { title?: string });
    });
    app.get('/wait/:name', async (request) => {
      await routes.waitThenLog((request.params as { name: string }).name);
      return { ok: true };
    });
    app.get('/deferred', async () => {
      setImmediate(() => routes.logLater());
      return { ok: true };
    });
    app.get('/explicit', async () => {
      await routes.logExplicit();
      return { ok: true };
    });
    app.get('/twice', async () => {
      await routes.logTwice();
      return { ok: true };
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { url, close: () => app.close() };
  },
};

/** A promise with its resolver, for making requests interleave without timers. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

function appRoutes(
  activityLog: ActivityLog,
): Routes & { deferredLogged: Promise<Activity>; gates: Map<string, ReturnType<typeof gate>> } {
  const gates = new Map([
    ['first', gate()],
    ['second', gate()],
  ]);
  let resolveDeferred!: (activity: Activity) => void;
  const deferredLogged = new Promise<Activity>((resolve) => {
    resolveDeferred = resolve;
  });
  let nextId = 1;
  return {
    gates,
    deferredLogged,
    async createPost(body) {
      const post = { type: 'Post', id: nextId++ };
      await activityLog.log({
        description: `created post ${body.title ?? ''}`,
        event: 'created',
        subject: post,
        properties: { attributes: body },
      });
      return { id: post.id };
    },
    async waitThenLog(name) {
      const own = gates.get(name)!;
      const other = gates.get(name === 'first' ? 'second' : 'first')!;
      // Each request lets the other one run, then waits for it: their async work interleaves.
      other.open();
      await own.promise;
      await activityLog.log({ description: `waited ${name}` });
    },
    logLater() {
      setTimeout(() => {
        void activityLog.log({ description: 'after the response' }).then(resolveDeferred);
      }, 1);
    },
    async logExplicit() {
      await activityLog.log({
        description: 'explicit',
        causer: { type: 'System', id: 'cron' },
        ipAddress: '198.51.100.1',
        url: '/elsewhere',
        method: 'put',
        userAgent: 'explicit-agent',
      });
    },
    async logTwice() {
      await activityLog.log({ description: 'one' });
      await activityLog.log({ description: 'two' });
    },
  };
}

function syncLog(): { activityLog: ActivityLog; store: MemoryStore } {
  const store = new MemoryStore();
  return { activityLog: createActivityLog({ env: {}, store, config: { method: 'sync' } }), store };
}

const stored = (store: MemoryStore) =>
  [...store.rows.values()].sort((a, b) => a.description.localeCompare(b.description));

describe.each([expressFramework, fastifyFramework])('$name request context', (framework) => {
  async function start(defer: TestScope['defer'], options: Options = {}) {
    const { activityLog, store } = syncLog();
    const routes = appRoutes(activityLog);
    const app = await framework.start(routes, options);
    defer(() => activityLog.close());
    defer(app.close);
    return { app, routes, store, activityLog };
  }

  it('records causer, IP, URL, method and user agent for a request by an authenticated user', async ({
    defer,
  }) => {
    const { app, store } = await start(defer);
    const response = await fetch(`${app.url}/posts?draft=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': '42', 'user-agent': 'test-browser/1.0' },
      body: JSON.stringify({ title: 'Hello' }),
    });
    expect(response.status).toBe(201);
    const rows = stored(store);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      description: 'created post Hello',
      event: 'created',
      subjectType: 'Post',
      subjectId: '1',
      causerType: 'User',
      causerId: '42',
      ipAddress: '127.0.0.1',
      url: '/posts?draft=1',
      method: 'POST',
      userAgent: 'test-browser/1.0',
      batchUuid: null,
      properties: { attributes: { title: 'Hello' } },
    });
  });

  it('keeps the context when the request body arrives after the headers were handled', async ({ defer }) => {
    const headersHandled = gate();
    const { app, store } = await start(defer, { onHeaders: headersHandled.open });
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const request = httpRequest(`${app.url}/posts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'x-user-id': '8' },
      });
      request.once('response', (response) => {
        response.resume();
        resolve(response.statusCode);
      });
      request.once('error', reject);
      request.flushHeaders();
      // The body is sent only once the server is already handling the request.
      void headersHandled.promise.then(() => request.end(JSON.stringify({ title: 'Slow' })));
    });
    expect(status).toBe(201);
    expect(stored(store)[0]).toMatchObject({
      description: 'created post Slow',
      causerId: '8',
      url: '/posts',
      method: 'POST',
      ipAddress: '127.0.0.1',
    });
  });

  it('stores the request URL with the values of secret query parameters redacted', async ({ defer }) => {
    const { app, store } = await start(defer);
    const response = await fetch(`${app.url}/twice?token=abc123&api_key=k&page=2`);
    expect(response.status).toBe(200);
    expect(stored(store).map((row) => row.url)).toEqual([
      '/twice?token=[REDACTED]&api_key=[REDACTED]&page=2',
      '/twice?token=[REDACTED]&api_key=[REDACTED]&page=2',
    ]);
  });

  it('records no causer for an anonymous request', async ({ defer }) => {
    const { app, store } = await start(defer);
    await fetch(`${app.url}/posts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(stored(store)[0]).toMatchObject({ causerType: null, causerId: null, ipAddress: '127.0.0.1' });
  });

  it('takes the client address from X-Forwarded-For only behind a trusted proxy', async ({ defer }) => {
    const trusting = await start(defer, { trustProxy: true });
    await fetch(`${trusting.app.url}/twice`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(stored(trusting.store).map((row) => row.ipAddress)).toEqual(['203.0.113.7', '203.0.113.7']);

    const direct = await start(defer);
    await fetch(`${direct.app.url}/twice`, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(stored(direct.store).map((row) => row.ipAddress)).toEqual(['127.0.0.1', '127.0.0.1']);
  });

  it('leaves out a forwarded address that is not an IP instead of failing the log', async ({ defer }) => {
    const { app, store } = await start(defer, { trustProxy: true });
    const response = await fetch(`${app.url}/twice`, { headers: { 'x-forwarded-for': 'unknown' } });
    expect(response.status).toBe(200);
    expect(stored(store).map((row) => row.ipAddress)).toEqual([null, null]);
  });

  it('never mixes the contexts of two concurrent requests', async ({ defer }) => {
    const { app, store } = await start(defer);
    const [first, second] = await Promise.all([
      fetch(`${app.url}/wait/first`, { headers: { 'x-user-id': '1', 'user-agent': 'agent-one' } }),
      fetch(`${app.url}/wait/second`, { headers: { 'x-user-id': '2', 'user-agent': 'agent-two' } }),
    ]);
    expect([first.status, second.status]).toEqual([200, 200]);
    const rows = stored(store);
    expect(rows.map((row) => [row.description, row.causerId, row.url, row.userAgent])).toEqual([
      ['waited first', '1', '/wait/first', 'agent-one'],
      ['waited second', '2', '/wait/second', 'agent-two'],
    ]);
  });

  it("keeps the request's context in work deferred past the response", async ({ defer }) => {
    const { app, routes } = await start(defer);
    const response = await fetch(`${app.url}/deferred`, {
      headers: { 'x-user-id': '9', 'user-agent': 'later/1.0' },
    });
    expect(response.status).toBe(200);
    const activity = await routes.deferredLogged;
    expect(activity).toMatchObject({
      description: 'after the response',
      causerType: 'User',
      causerId: '9',
      url: '/deferred',
      method: 'GET',
      userAgent: 'later/1.0',
      ipAddress: '127.0.0.1',
    });
  });

  it('lets values passed to log() win over the request context', async ({ defer }) => {
    const { app, store } = await start(defer);
    await fetch(`${app.url}/explicit`, { headers: { 'x-user-id': '5' } });
    expect(stored(store)[0]).toMatchObject({
      causerType: 'System',
      causerId: 'cron',
      ipAddress: '198.51.100.1',
      url: '/elsewhere',
      method: 'PUT',
      userAgent: 'explicit-agent',
    });
  });

  it('leaves requests chosen by skip() without a context', async ({ defer }) => {
    const { app, store } = await start(defer, { skipPath: '/twice' });
    await fetch(`${app.url}/twice`, { headers: { 'x-user-id': '4' } });
    await fetch(`${app.url}/explicit`, { headers: { 'x-user-id': '4' } });
    const rows = stored(store);
    expect(rows.map((row) => [row.description, row.url, row.ipAddress, row.causerId])).toEqual([
      ['explicit', '/elsewhere', '198.51.100.1', 'cron'],
      ['one', null, null, null],
      ['two', null, null, null],
    ]);
  });

  it('gives each request one batch uuid when asked, and uses a custom causer resolver', async ({ defer }) => {
    const { app, store } = await start(defer, {
      batchPerRequest: true,
      causer: (user) => (user === undefined ? null : { type: 'Admin', id: `a${user.id}` }),
    });
    await fetch(`${app.url}/twice`, { headers: { 'x-user-id': '3' } });
    const firstBatch = stored(store);
    expect(firstBatch.map((row) => [row.causerType, row.causerId])).toEqual([
      ['Admin', 'a3'],
      ['Admin', 'a3'],
    ]);
    expect(firstBatch[0]!.batchUuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(firstBatch[1]!.batchUuid).toBe(firstBatch[0]!.batchUuid);

    store.rows.clear();
    await fetch(`${app.url}/twice`);
    const secondBatch = stored(store);
    expect(secondBatch[0]!.batchUuid).toBe(secondBatch[1]!.batchUuid);
    expect(secondBatch[0]!.batchUuid).not.toBe(firstBatch[0]!.batchUuid);
  });
});

const queueServicesUp = (await serviceAvailable(REDIS)) && (await serviceAvailable(MARIADB));

describe.skipIf(!queueServicesUp)(
  'request context through the queue (Redis, MariaDB, a work process)',
  () => {
    it.for([expressFramework, fastifyFramework])(
      '$name: stores the causer and request fields logged in a request on the row a worker writes later',
      async (framework, { defer }) => {
        const table = await queueTestTable(defer, 'reqctx', { ACTIVITY_LOG_FLUSH_INTERVAL_MS: '5' });
        await table.migrate();
        const { activityLog, delivery } = composeActivityLog({ env: table.env });
        expect(delivery.method).toBe('queue');
        const app = await framework.start(appRoutes(activityLog), { trustProxy: true });
        try {
          const response = await fetch(`${app.url}/posts`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'x-user-id': '77',
              'x-forwarded-for': '2001:db8::5',
              'user-agent': 'queued/2.0',
            },
            body: JSON.stringify({ title: 'Queued' }),
          });
          expect(response.status).toBe(201);
        } finally {
          await app.close();
          await activityLog.close();
        }
        const worker = await runCli(['work', '--stop-when-empty'], table.env);
        expect(worker.code, worker.stderr).toBe(0);
        const [rows] = await table.sql.query<mysql.RowDataPacket[]>(
          `SELECT causer_type, causer_id, ip_address, url, method, user_agent, subject_type FROM \`${table.table}\``,
        );
        expect(rows).toEqual([
          {
            causer_type: 'User',
            causer_id: '77',
            ip_address: '2001:db8::5',
            url: '/posts',
            method: 'POST',
            user_agent: 'queued/2.0',
            subject_type: 'Post',
          },
        ]);
      },
    );
  },
);
