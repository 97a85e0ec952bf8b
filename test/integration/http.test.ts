import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { describe, expect } from 'vitest';
import { type ConfigOverrides, type DeliveryMethod, loadConfig } from '../../src/config/config.js';
import { ActivityLogError } from '../../src/core/errors.js';
import { WRONG_TOKENS_PER_WINDOW } from '../../src/http/auth.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { DEFAULT_BODY_LIMIT_BYTES } from '../../src/http/server.js';
import { type ActivityLog, composeActivityLog } from '../../src/runtime/create-activity-log.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { createStore } from '../../src/store/create-store.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const INGEST_TOKEN = 'ingest-token-for-tests';
const ADMIN_TOKEN = 'admin-token-for-tests';
const ingestAuth = { authorization: `Bearer ${INGEST_TOKEN}` };
const adminAuth = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface Harness {
  readonly app: FastifyInstance;
  readonly activityLog: ActivityLog;
}

interface HarnessOptions {
  readonly method?: DeliveryMethod;
  readonly adminToken?: string | null;
  readonly ingestToken?: string | null;
  /** Wraps the real SQLite store, e.g. to make it fail. */
  readonly wrapStore?: (store: ActivityStore) => ActivityStore;
  readonly healthPingTimeoutMs?: number;
  /** More configuration on top of the harness's. */
  readonly config?: ConfigOverrides;
}

/** A server on its own SQLite file, with the environment ignored so nothing outside the test leaks in. */
async function harness(defer: TestScope['defer'], options: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-http-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  const database = { connection: 'sqlite' as const, filename: join(dir, 'activity-log.sqlite') };
  const config = {
    database,
    method: options.method ?? 'sync',
    adminToken: options.adminToken === undefined ? ADMIN_TOKEN : options.adminToken,
    ingestToken: options.ingestToken === undefined ? INGEST_TOKEN : options.ingestToken,
    spoolDir: join(dir, 'spool'),
    ...options.config,
  };
  const realStore = createStore(loadConfig({ env: {}, overrides: config }).database);
  await realStore.migrate();
  const store = options.wrapStore === undefined ? realStore : options.wrapStore(realStore);
  const composed = composeActivityLog({ env: {}, config, store });
  const { activityLog } = composed;
  const app = createActivityLogServer(
    composed,
    options.healthPingTimeoutMs === undefined ? {} : { healthPingTimeoutMs: options.healthPingTimeoutMs },
  );
  defer(async () => {
    await app.close();
    await activityLog.close();
  });
  return { app, activityLog };
}

/** The real store with some methods replaced (a class instance cannot simply be spread). */
function withOverrides(store: ActivityStore, overrides: Partial<ActivityStore>): ActivityStore {
  return {
    capabilities: store.capabilities,
    migrate: () => store.migrate(),
    insertMany: (activities) => store.insertMany(activities),
    query: (query) => store.query(query),
    prune: (options) => store.prune(options),
    ping: () => store.ping(),
    close: () => store.close(),
    ...overrides,
  };
}

function ingest(app: FastifyInstance, payload: unknown, headers: Record<string, string> = ingestAuth) {
  return app.inject({
    method: 'POST',
    url: '/api/activities',
    headers: { 'content-type': 'application/json', ...headers },
    payload: JSON.stringify(payload),
  });
}

function list(
  app: FastifyInstance,
  query: Record<string, string> = {},
  headers: Record<string, string> = adminAuth,
) {
  return app.inject({ method: 'GET', url: '/api/backoffice/activity-logs', query, headers });
}

interface ErrorJson {
  success: false;
  error: { code: string; message: string; details?: { field?: string; issues?: { field: string }[] } };
}

function errorOf(response: LightMyRequestResponse): ErrorJson['error'] {
  const body = response.json<ErrorJson>();
  expect(body.success).toBe(false);
  return body.error;
}

interface ActivityJsonBody {
  id: string;
  log_name: string;
  description: string;
  subject_type: string | null;
  subject_id: string | null;
  event: string | null;
  causer_type: string | null;
  causer_id: string | null;
  properties: Record<string, unknown>;
  batch_uuid: string | null;
  ip_address: string | null;
  url: string | null;
  method: string | null;
  user_agent: string | null;
  created_at: string;
}

interface PageJson {
  success: true;
  data: ActivityJsonBody[];
  next_cursor: string | null;
}

describe('GET /health', () => {
  it('answers 200 with the store and delivery state, without auth', async ({ defer }) => {
    const { app } = await harness(defer, { method: 'batch' });
    const response = await app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      status: 'ok',
      store: { ok: true },
      delivery: { method: 'batch', pending: 0 },
    });
  });

  it('answers 503 naming the store when its ping fails', async ({ defer }) => {
    const { app } = await harness(defer, {
      wrapStore: (store) =>
        withOverrides(store, {
          ping: () => Promise.reject(new ActivityLogError('STORE_CONNECTION_REFUSED', 'connection refused')),
        }),
    });
    const response = await app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({
      status: 'unavailable',
      failing: ['store'],
      store: { ok: false, error: { code: 'STORE_CONNECTION_REFUSED' } },
    });
  });

  it('shows the driver message of a failing part only with the admin token', async ({ defer }) => {
    const { app } = await harness(defer, {
      wrapStore: (store) =>
        withOverrides(store, {
          ping: () =>
            Promise.reject(
              new ActivityLogError('STORE_CONNECTION_REFUSED', 'MySQL at db.internal:3306/audit refused app'),
            ),
        }),
    });
    const anonymous = await app.inject({ method: 'GET', url: '/health' });
    expect(anonymous.statusCode).toBe(503);
    const hidden = anonymous.json<{ store: { error: { code: string; message: string } } }>().store.error;
    expect(hidden.code).toBe('STORE_CONNECTION_REFUSED');
    expect(hidden.message).not.toContain('db.internal');
    expect(hidden.message).toContain('admin token');
    const admin = await app.inject({
      method: 'GET',
      url: '/health',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(admin.json()).toMatchObject({
      store: { error: { message: 'MySQL at db.internal:3306/audit refused app' } },
    });
  });

  it('counts wrong admin tokens while a part fails, and keeps answering with the details hidden', async ({
    defer,
  }) => {
    const { app } = await harness(defer, {
      wrapStore: (store) =>
        withOverrides(store, {
          ping: () => Promise.reject(new ActivityLogError('STORE_CONNECTION_REFUSED', 'db.internal refused')),
        }),
    });
    const health = (token: string) =>
      app.inject({ method: 'GET', url: '/health', headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < WRONG_TOKENS_PER_WINDOW; i++) {
      expect((await health(`guess-${i}`)).statusCode).toBe(503);
    }
    const guessed = await health('one-more-guess');
    expect(guessed.statusCode).toBe(503);
    expect(guessed.body).not.toContain('db.internal');
    expect((await list(app, {}, { authorization: 'Bearer another-guess' })).statusCode).toBe(429);
    expect((await health(ADMIN_TOKEN)).body).toContain('db.internal refused');
  });

  it('answers 503 when the store does not answer within the ping timeout', async ({ defer }) => {
    const { app } = await harness(defer, {
      healthPingTimeoutMs: 50,
      wrapStore: (store) => withOverrides(store, { ping: () => new Promise<void>(() => {}) }),
    });
    const response = await app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({
      failing: ['store'],
      store: { error: { code: 'STORE_TIMEOUT' } },
    });
  });
});

describe('authentication', () => {
  it('refuses ingest without a token, with a wrong token, and with another scheme (401)', async ({
    defer,
  }) => {
    const { app } = await harness(defer);
    for (const headers of [
      {} as Record<string, string>,
      { authorization: 'Bearer wrong-token' },
      { authorization: `Basic ${INGEST_TOKEN}` },
      { authorization: `Bearer ${ADMIN_TOKEN}` },
    ]) {
      const response = await ingest(app, { description: 'x' }, headers);
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
      expect(errorOf(response).code).toBe('AUTH_REQUIRED');
    }
  });

  it('refuses the backoffice API without the admin token (401)', async ({ defer }) => {
    const { app } = await harness(defer);
    for (const headers of [{} as Record<string, string>, ingestAuth]) {
      const response = await list(app, {}, headers);
      expect(response.statusCode).toBe(401);
      expect(errorOf(response).code).toBe('AUTH_REQUIRED');
    }
  });

  it('keeps the counts of wrong admin and wrong ingest tokens apart', async ({ defer }) => {
    const { app } = await harness(defer);
    for (let i = 0; i < WRONG_TOKENS_PER_WINDOW; i++) {
      expect((await list(app, {}, { authorization: `Bearer guess-${i}` })).statusCode).toBe(401);
    }
    expect((await list(app, {}, { authorization: 'Bearer one-more' })).statusCode).toBe(429);
    expect((await ingest(app, { description: 'still ingested' })).statusCode).toBe(202);
    expect((await ingest(app, { description: 'x' }, { authorization: 'Bearer wrong' })).statusCode).toBe(401);
  });

  it('accepts the right ingest token from an address that is throttled for wrong ones', async ({ defer }) => {
    const { app } = await harness(defer);
    const wrong = { authorization: 'Bearer wrong-ingest-token' };
    for (let i = 0; i < WRONG_TOKENS_PER_WINDOW; i++) {
      expect((await ingest(app, { description: 'x' }, wrong)).statusCode).toBe(401);
    }
    const throttled = await ingest(app, { description: 'x' }, wrong);
    expect(throttled.statusCode).toBe(429);
    expect(errorOf(throttled).code).toBe('AUTH_THROTTLED');
    expect((await ingest(app, { description: 'accepted' })).statusCode).toBe(202);
    expect((await list(app)).statusCode).toBe(200);
  });

  it('accepts the scheme in any case', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await list(app, {}, { authorization: `bearer ${ADMIN_TOKEN}` });
    expect(response.statusCode).toBe(200);
  });

  it('refuses with 503 naming the variable to set when a token is not configured', async ({ defer }) => {
    const { app } = await harness(defer, { ingestToken: null, adminToken: null });
    const ingested = await ingest(app, { description: 'x' }, { authorization: 'Bearer anything' });
    expect(ingested.statusCode).toBe(503);
    expect(errorOf(ingested)).toMatchObject({ code: 'AUTH_TOKEN_NOT_CONFIGURED' });
    expect(errorOf(ingested).message).toContain('ACTIVITY_LOG_INGEST_TOKEN');

    const listed = await list(app, {}, { authorization: 'Bearer anything' });
    expect(listed.statusCode).toBe(503);
    expect(errorOf(listed).message).toContain('ACTIVITY_LOG_ADMIN_TOKEN');
  });

  it('checks the token before reading the body', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({
      method: 'POST',
      url: '/api/activities',
      headers: { 'content-type': 'text/plain' },
      payload: 'x'.repeat(DEFAULT_BODY_LIMIT_BYTES + 1),
    });
    expect(response.statusCode).toBe(401);
  });
});

describe('POST /api/activities validation', () => {
  it('names the snake_case field of a single activity', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await ingest(app, { description: 'x', ip_address: 'not-an-ip' });
    expect(response.statusCode).toBe(400);
    const error = errorOf(response);
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.details?.field).toBe('ip_address');
    expect(error.message).toMatch(/^ip_address must be an IPv4 or IPv6 address/);
  });

  it('names the field with its array index', async ({ defer }) => {
    const { app } = await harness(defer);
    const items = [
      { description: 'fine' },
      { description: 'fine' },
      { description: 'fine' },
      { description: 'bad ip', ip_address: '999.1.1.1' },
    ];
    const response = await ingest(app, items);
    expect(response.statusCode).toBe(400);
    expect(errorOf(response).details?.field).toBe('[3].ip_address');
    expect(errorOf(response).message).toMatch(/^\[3\]\.ip_address must be/);
  });

  it('names library-checked fields in snake_case (log_name, batch_uuid, created_at, subject_type)', async ({
    defer,
  }) => {
    const { app } = await harness(defer);
    const cases: [Record<string, unknown>, string][] = [
      [{ description: 'x', log_name: 'n'.repeat(192) }, '[0].log_name'],
      [{ description: 'x', batch_uuid: 'nope' }, '[0].batch_uuid'],
      [{ description: 'x', created_at: 'yesterday' }, '[0].created_at'],
      [{ description: 'x', subject_type: '', subject_id: '1' }, '[0].subject_type'],
      [{ description: '' }, '[0].description'],
      [{ description: 'x', id: 'not-a-uuid' }, '[0].id'],
    ];
    for (const [item, field] of cases) {
      const response = await ingest(app, [item]);
      expect(response.statusCode, JSON.stringify(item).slice(0, 80)).toBe(400);
      expect(errorOf(response).details?.field).toBe(field);
      expect(errorOf(response).message.startsWith(`${field} `)).toBe(true);
    }
  });

  it('rejects unknown fields, naming them', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await ingest(app, [{ description: 'x' }, { description: 'x', subjectType: 'Order' }]);
    expect(response.statusCode).toBe(400);
    const error = errorOf(response);
    expect(error.details?.field).toBe('[1].subjectType');
    expect(error.message).toContain('"[1].subjectType"');
    expect(error.message).toContain('subject_type');
  });

  it('rejects subject_type without subject_id and causer_id without causer_type', async ({ defer }) => {
    const { app } = await harness(defer);
    const subject = await ingest(app, { description: 'x', subject_type: 'Order' });
    expect(subject.statusCode).toBe(400);
    expect(errorOf(subject).details?.field).toBe('subject_id');
    const causer = await ingest(app, [{ description: 'x', causer_id: 7 }]);
    expect(errorOf(causer).details?.field).toBe('[0].causer_type');
  });

  it('rejects wrong types, a missing description, and bodies that are not activities', async ({ defer }) => {
    const { app } = await harness(defer);
    expect(errorOf(await ingest(app, { description: 5 })).details?.field).toBe('description');
    expect(errorOf(await ingest(app, { event: 'x' })).details?.field).toBe('description');
    expect(errorOf(await ingest(app, { description: 'x', properties: [1, 2] })).details?.field).toBe(
      'properties',
    );
    expect(errorOf(await ingest(app, 'just a string')).details?.field).toBe('body');
    expect(errorOf(await ingest(app, [])).details?.field).toBe('body');
    const tooMany = await ingest(
      app,
      Array.from({ length: 1001 }, () => ({ description: 'x' })),
    );
    expect(tooMany.statusCode).toBe(400);
    expect(errorOf(tooMany).message).toContain('1000');
  });

  it('rejects malformed JSON with 400', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({
      method: 'POST',
      url: '/api/activities',
      headers: { 'content-type': 'application/json', ...ingestAuth },
      payload: '{"description": ',
    });
    expect(response.statusCode).toBe(400);
    expect(errorOf(response)).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'body' } });
  });

  it('answers 415 to a body that is not JSON, or has no content type', async ({ defer }) => {
    const { app } = await harness(defer);
    for (const headers of [
      { 'content-type': 'text/plain' },
      { 'content-type': 'application/x-www-form-urlencoded' },
    ]) {
      const response = await app.inject({
        method: 'POST',
        url: '/api/activities',
        headers: { ...headers, ...ingestAuth },
        payload: 'description=x',
      });
      expect(response.statusCode).toBe(415);
      expect(errorOf(response).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
    const bare = await app.inject({ method: 'POST', url: '/api/activities', headers: ingestAuth });
    expect(bare.statusCode).toBe(415);
  });

  it('answers 413 BODY_TOO_LARGE past the 8 MiB body limit', async ({ defer }) => {
    const { app, activityLog } = await harness(defer);
    // 1000 activities with ~9 KiB of properties each: every one valid, the whole too large.
    const big = Array.from({ length: 1000 }, (_, i) => ({
      description: `big ${i}`,
      properties: { filler: 'x'.repeat(9 * 1024) },
    }));
    const response = await ingest(app, big);
    expect(response.statusCode).toBe(413);
    expect(errorOf(response).code).toBe('BODY_TOO_LARGE');
    expect((await activityLog.query()).data).toHaveLength(0);
  });
});

describe('ingest and query', () => {
  it('stores every field sent and returns it through the backoffice API', async ({ defer }) => {
    const { app } = await harness(defer);
    const sent = {
      id: '0190f5a2-7b1c-7def-8abc-0123456789ab',
      description: 'updated order 42',
      log_name: 'orders',
      event: 'updated',
      subject_type: 'Order',
      subject_id: 42,
      causer_type: 'User',
      causer_id: 'u-7',
      properties: { attributes: { total: 10.5 }, old: { total: 9.99 }, password: 'hunter2' },
      batch_uuid: '0190f5a2-0000-7000-8000-000000000001',
      ip_address: '2001:db8::1',
      url: 'https://shop.example/orders/42',
      method: 'patch',
      user_agent: 'curl/8.0',
      created_at: '2025-06-01T12:34:56.789Z',
    };
    const response = await ingest(app, sent);
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ success: true, accepted: 1, ids: [sent.id] });

    const page = await list(app, { log_name: 'orders' });
    expect(page.statusCode).toBe(200);
    const body = page.json<PageJson>();
    expect(body.success).toBe(true);
    expect(body.next_cursor).toBeNull();
    expect(body.data).toEqual([
      {
        ...sent,
        subject_id: '42',
        method: 'PATCH',
        properties: { attributes: { total: 10.5 }, old: { total: 9.99 }, password: '[REDACTED]' },
        erased: false,
      },
    ]);
  });

  it('stores an ingested url with the values of secret query parameters redacted', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await ingest(app, {
      description: 'password reset',
      url: 'https://shop.example/reset?token=abc123&user=7#access_token=t',
    });
    expect(response.statusCode).toBe(202);
    const [stored] = (await list(app)).json<PageJson>().data;
    expect(stored?.url).toBe('https://shop.example/reset?token=[REDACTED]&user=7#access_token=[REDACTED]');
  });

  it('reads null as "not given" in every optional field', async ({ defer }) => {
    const { app } = await harness(defer);
    const optional = [
      'log_name',
      'event',
      'subject_type',
      'subject_id',
      'causer_type',
      'causer_id',
      'properties',
    ].concat(['batch_uuid', 'ip_address', 'url', 'method', 'user_agent', 'created_at', 'id']);
    const item = Object.fromEntries([['description', 'all nulls'], ...optional.map((key) => [key, null])]);
    const response = await ingest(app, item);
    expect(response.statusCode, response.body).toBe(202);
    const [stored] = (await list(app)).json<PageJson>().data;
    expect(stored).toMatchObject({
      description: 'all nulls',
      log_name: 'default',
      properties: {},
      subject_type: null,
    });
  });

  it('stores a retried request with the same ids once', async ({ defer }) => {
    const { app } = await harness(defer);
    const item = { id: '0190f5a2-7b1c-7def-8abc-00000000000a', description: 'once' };
    expect((await ingest(app, [item])).statusCode).toBe(202);
    expect((await ingest(app, [item])).statusCode).toBe(202);
    await expect(list(app).then((r) => r.json<PageJson>().data.length)).resolves.toBe(1);
  });

  it('stores nothing from an array with one bad item', async ({ defer }) => {
    const { app, activityLog } = await harness(defer);
    const items = Array.from({ length: 50 }, (_, i) => ({ description: `item ${i}`, log_name: 'bulk' }));
    items[37] = { description: 'bad', log_name: 'x'.repeat(500) };
    const response = await ingest(app, items);
    expect(response.statusCode).toBe(400);
    expect(errorOf(response).details?.field).toBe('[37].log_name');
    await activityLog.flush();
    expect((await activityLog.query()).data).toHaveLength(0);
  });

  it('accepts with batch delivery (202) and the activities are queryable after the flush', async ({
    defer,
  }) => {
    const { app, activityLog } = await harness(defer, { method: 'batch' });
    const response = await ingest(
      app,
      Array.from({ length: 20 }, (_, i) => ({ description: `batched ${i}` })),
    );
    expect(response.statusCode).toBe(202);
    const { accepted, ids } = response.json<{ accepted: number; ids: string[] }>();
    expect(accepted).toBe(20);
    expect(new Set(ids).size).toBe(20);
    await activityLog.flush();
    const data = list(app, { limit: '100' }).then((r) =>
      r
        .json<PageJson>()
        .data.map((a) => a.id)
        .sort(),
    );
    await expect(data).resolves.toEqual([...ids].sort());
  });

  it('accepts ingest while the store is down (spooled), reports the open breaker, and answers 503 on queries', async ({
    defer,
  }) => {
    const down = () =>
      Promise.reject(new ActivityLogError('STORE_CONNECTION_REFUSED', 'connect ECONNREFUSED'));
    const { app } = await harness(defer, {
      config: { breakerFailures: 1 },
      wrapStore: (store) => withOverrides(store, { insertMany: down, query: down }),
    });
    const ingested = await ingest(app, { description: 'kept in the spool' });
    expect(ingested.statusCode).toBe(202);

    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(503);
    expect(health.json()).toMatchObject({
      failing: ['breaker'],
      store: { ok: true },
      breaker: { ok: false, state: 'open' },
      spool: { pending: 1 },
    });

    const listed = await list(app);
    expect(listed.statusCode).toBe(503);
    expect(errorOf(listed).code).toBe('STORE_CONNECTION_REFUSED');
  });

  it('answers 503 when neither the store nor the spool can take the activities', async ({ defer }) => {
    const dir = mkdtempSync(join(tmpdir(), 'activity-log-http-spool-'));
    defer(() => rmSync(dir, { recursive: true, force: true }));
    const notADirectory = join(dir, 'file');
    writeFileSync(notADirectory, '');
    const down = () =>
      Promise.reject(new ActivityLogError('STORE_CONNECTION_REFUSED', 'connect ECONNREFUSED'));
    const { app } = await harness(defer, {
      config: { spoolDir: join(notADirectory, 'spool') },
      wrapStore: (store) => withOverrides(store, { insertMany: down }),
    });
    const ingested = await ingest(app, { description: 'nowhere to go' });
    expect(ingested.statusCode).toBe(503);
    expect(errorOf(ingested).code).toBe('SPOOL_FAILED');
  });
});

describe('GET /api/backoffice/activity-logs filters and paging', () => {
  async function seeded(defer: TestScope['defer']): Promise<Harness> {
    const h = await harness(defer);
    const base = Date.parse('2025-01-01T00:00:00Z');
    const items = Array.from({ length: 12 }, (_, i) => ({
      description: `activity ${i}`,
      log_name: i % 2 === 0 ? 'orders' : 'users',
      event: i % 3 === 0 ? 'created' : 'updated',
      subject_type: 'Order',
      subject_id: String(i % 4),
      causer_type: 'User',
      causer_id: i < 6 ? 'alice' : 'bob',
      ip_address: i < 4 ? '10.0.0.1' : '10.0.0.2',
      url: `https://shop.example/orders/${i % 4}`,
      method: i % 2 === 0 ? 'POST' : 'PUT',
      batch_uuid: i < 3 ? '0190f5a2-0000-7000-8000-0000000000bb' : null,
      created_at: new Date(base + i * 3_600_000).toISOString(),
    }));
    expect((await ingest(h.app, items)).statusCode).toBe(202);
    return h;
  }

  async function descriptions(app: FastifyInstance, query: Record<string, string>): Promise<string[]> {
    const response = await list(app, query);
    expect(response.statusCode, response.body).toBe(200);
    return response.json<PageJson>().data.map((activity) => activity.description);
  }

  it('filters on every column', async ({ defer }) => {
    const { app } = await seeded(defer);
    expect(await descriptions(app, { log_name: 'users' })).toHaveLength(6);
    expect(await descriptions(app, { event: 'created' })).toEqual([
      'activity 9',
      'activity 6',
      'activity 3',
      'activity 0',
    ]);
    expect(await descriptions(app, { subject_type: 'Order', subject_id: '1' })).toEqual([
      'activity 9',
      'activity 5',
      'activity 1',
    ]);
    expect(await descriptions(app, { causer_type: 'User', causer_id: 'bob' })).toHaveLength(6);
    expect(await descriptions(app, { ip_address: '10.0.0.1' })).toHaveLength(4);
    expect(await descriptions(app, { url: 'https://shop.example/orders/2' })).toHaveLength(3);
    expect(await descriptions(app, { method: 'put' })).toHaveLength(6);
    expect(await descriptions(app, { batch_uuid: '0190F5A2-0000-7000-8000-0000000000BB' })).toHaveLength(3);
    expect(await descriptions(app, { from: '2025-01-01T02:00:00Z', to: '2025-01-01T05:00:00Z' })).toEqual([
      'activity 4',
      'activity 3',
      'activity 2',
    ]);
    // No offset means UTC; a date alone is midnight UTC.
    expect(await descriptions(app, { from: '2025-01-01T10:00' })).toEqual(['activity 11', 'activity 10']);
    expect(await descriptions(app, { to: '2025-01-01' })).toEqual([]);
  });

  it('pages with the cursor until next_cursor is null', async ({ defer }) => {
    const { app } = await seeded(defer);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: Record<string, string> = { limit: '5', causer_id: 'alice', causer_type: 'User' };
      if (cursor !== null) query.cursor = cursor;
      const response = await list(app, query);
      expect(response.statusCode).toBe(200);
      const page = response.json<PageJson>();
      seen.push(...page.data.map((activity) => activity.description));
      cursor = page.next_cursor;
      pages++;
    } while (cursor !== null && pages < 10);
    expect(pages).toBe(2);
    expect(seen).toEqual([
      'activity 5',
      'activity 4',
      'activity 3',
      'activity 2',
      'activity 1',
      'activity 0',
    ]);

    const all: string[] = [];
    cursor = null;
    pages = 0;
    do {
      const query: Record<string, string> = { limit: '5' };
      if (cursor !== null) query.cursor = cursor;
      const page: PageJson = (await list(app, query)).json<PageJson>();
      all.push(...page.data.map((activity) => activity.description));
      cursor = page.next_cursor;
      pages++;
    } while (cursor !== null && pages < 10);
    expect(pages).toBe(3);
    expect(all).toHaveLength(12);
    expect(new Set(all).size).toBe(12);
  });

  it('rejects unknown, repeated and bad query parameters, naming them', async ({ defer }) => {
    const { app } = await harness(defer);
    const unknown = await list(app, { log: 'orders', sort: 'asc' });
    expect(unknown.statusCode).toBe(400);
    expect(errorOf(unknown).message).toMatch(/unknown query parameters "log", "sort"; allowed: log_name/);

    const cases: [string, string][] = [
      ['limit=501', 'limit'],
      ['limit=0', 'limit'],
      ['limit=ten', 'limit'],
      ['from=yesterday', 'from'],
      ['from=2025-02-01&to=2025-01-01', 'to'],
      ['event=a&event=b', 'event'],
      ['batch_uuid=nope', 'batch_uuid'],
      ['cursor=garbage', 'cursor'],
    ];
    for (const [query, field] of cases) {
      const response = await app.inject({
        method: 'GET',
        url: `/api/backoffice/activity-logs?${query}`,
        headers: adminAuth,
      });
      expect(response.statusCode, query).toBe(400);
      expect(errorOf(response).details?.field, query).toBe(field);
    }
  });

  it('treats blank parameters as absent', async ({ defer }) => {
    const { app } = await seeded(defer);
    expect(await descriptions(app, { log_name: '', limit: '' })).toHaveLength(12);
  });
});

describe('unknown routes', () => {
  it('answer 404 as JSON', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({ method: 'GET', url: '/nope?x=1' });
    expect(response.statusCode).toBe(404);
    expect(errorOf(response)).toEqual({ code: 'NOT_FOUND', message: 'no route GET /nope' });
  });
});

/** Writes raw bytes to a listening server and returns everything it answers until it closes the connection. */
function rawExchange(address: string, parts: readonly string[], betweenParts?: () => void): Promise<string> {
  const { hostname, port } = new URL(address);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(parts[0]!);
      if (parts.length > 1) {
        betweenParts?.();
        setTimeout(() => socket.write(parts.slice(1).join('')), 50);
      }
    });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

/** The status and JSON body of a raw HTTP/1.1 answer. */
function parseRaw(answer: string): { status: number; headers: string; body: ErrorJson } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  return {
    status: Number(head.split(' ')[1]),
    headers: head.toLowerCase(),
    body: JSON.parse(body) as ErrorJson,
  };
}

describe("Fastify's own errors", () => {
  it('answers a path that is not valid percent-encoding with 400 naming url', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({ method: 'GET', url: '/api/backoffice/%zz', headers: adminAuth });
    expect(response.statusCode).toBe(400);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(errorOf(response)).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'url' } });
    expect(errorOf(response).message).toContain('percent-encoding');
  });

  it('answers a reply header that cannot be written with a 500 in the error shape', async ({ defer }) => {
    const { app } = await harness(defer);
    app.get('/odd-header', (_request, reply) => reply.header('location', '/caf\u20ac').code(303).send());
    const response = await app.inject({ method: 'GET', url: '/odd-header' });
    expect(response.statusCode).toBe(500);
    expect(response.headers.location).toBeUndefined();
    expect(response.json()).toEqual({
      success: false,
      error: { code: 'INTERNAL_ERROR', message: 'unexpected server error; the server log has the details' },
    });
  });

  it('answers requests the HTTP parser refuses in the error shape, naming what is wrong', async ({
    defer,
  }) => {
    const { app } = await harness(defer);
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const malformedHeader = parseRaw(
      await rawExchange(address, ['GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n']),
    );
    expect(malformedHeader.status).toBe(400);
    expect(malformedHeader.headers).toContain('content-type: application/json');
    expect(malformedHeader.body).toMatchObject({
      success: false,
      error: { code: 'VALIDATION_FAILED', details: { field: 'headers' } },
    });
    const badMethod = parseRaw(await rawExchange(address, ['FOO /health HTTP/1.1\r\nHost: x\r\n\r\n']));
    expect(badMethod.status).toBe(400);
    expect(badMethod.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'request' } });
    const huge = parseRaw(
      await rawExchange(address, [`GET /health HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`]),
    );
    expect(huge.status).toBe(431);
    expect(huge.body.error).toMatchObject({ code: 'HEADERS_TOO_LARGE', details: { field: 'headers' } });
  });

  it('answers a request that arrives while the server closes with 503 SERVER_CLOSING', async ({ defer }) => {
    const { app } = await harness(defer);
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    let closed: Promise<void> | undefined;
    const answer = await rawExchange(address, ['GET /health HTTP/1.1\r\nHost: x\r\n', '\r\n'], () => {
      closed = app.close();
    });
    await closed;
    const { status, body } = parseRaw(answer);
    expect(status).toBe(503);
    expect(body).toMatchObject({ success: false, error: { code: 'SERVER_CLOSING' } });
  });
});
