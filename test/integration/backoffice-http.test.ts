import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { SIGN_IN_ATTEMPTS_PER_WINDOW } from '../../src/http/routes/backoffice-session.js';
import { type ActivityLog, composeActivityLog } from '../../src/runtime/create-activity-log.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { createStore } from '../../src/store/create-store.js';
import { storedActivity } from '../helpers/activity-factory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const ADMIN_TOKEN = 'admin-token-for-backoffice-tests';
const adminAuth = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface Harness {
  readonly app: FastifyInstance;
  readonly activityLog: ActivityLog;
  readonly store: ActivityStore;
}

async function harness(
  defer: TestScope['defer'],
  adminToken: string | null = ADMIN_TOKEN,
  extra: { trustProxy?: string[] } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-backoffice-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  const config = {
    database: { connection: 'sqlite' as const, filename: join(dir, 'activity-log.sqlite') },
    method: 'sync' as const,
    adminToken,
    ingestToken: 'ingest-token',
    spoolDir: join(dir, 'spool'),
    ...extra,
  };
  const store = createStore(loadConfig({ env: {}, overrides: config }).database);
  await store.migrate();
  const composed = composeActivityLog({ env: {}, config, store });
  const { activityLog } = composed;
  const app = createActivityLogServer(composed);
  defer(async () => {
    await app.close();
    await activityLog.close();
  });
  return { app, activityLog, store };
}

/** Signs in through the form and returns the session cookie and the page's CSRF token. */
async function signIn(app: FastifyInstance): Promise<{ cookie: string; csrfToken: string }> {
  const response = await app.inject({
    method: 'POST',
    url: '/backoffice/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ token: ADMIN_TOKEN, next: '/backoffice/activity-logs' }).toString(),
  });
  expect(response.statusCode).toBe(303);
  const setCookie = String(response.headers['set-cookie']);
  const cookie = setCookie.split(';')[0]!;
  const page = await app.inject({ method: 'GET', url: '/backoffice/activity-logs', headers: { cookie } });
  expect(page.statusCode).toBe(200);
  const csrfToken = /<meta name="csrf-token" content="([^"]+)"/.exec(page.body)?.[1];
  expect(csrfToken).toBeTruthy();
  return { cookie, csrfToken: csrfToken! };
}

function errorCode(response: LightMyRequestResponse): string {
  return response.json<{ error: { code: string } }>().error.code;
}

describe('backoffice sign-in', () => {
  it('refuses every backoffice page and API without a session', async ({ defer }) => {
    const { app } = await harness(defer);
    for (const url of ['/backoffice/activity-logs', '/backoffice/activity-logs/performance']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(303);
      expect(response.headers.location).toBe(`/backoffice/login?next=${encodeURIComponent(url)}`);
    }
    for (const url of [
      '/api/backoffice/activity-logs',
      '/api/backoffice/activity-logs/export.csv',
      '/api/backoffice/activity-logs/export.ndjson',
      '/api/backoffice/activity-logs/failed-jobs',
      '/api/backoffice/activity-logs/host',
    ]) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(401);
      expect(errorCode(response)).toBe('AUTH_REQUIRED');
    }
    const retry = await app.inject({
      method: 'POST',
      url: '/api/backoffice/activity-logs/failed-jobs/retry',
      payload: { ids: 'all' },
    });
    expect(retry.statusCode).toBe(401);
  });

  it('exchanges the admin token for an HttpOnly SameSite=Strict cookie that opens pages and APIs', async ({
    defer,
  }) => {
    const { app } = await harness(defer);
    const login = await app.inject({
      method: 'GET',
      url: '/backoffice/login?next=/backoffice/activity-logs/performance',
    });
    expect(login.statusCode).toBe(200);
    expect(login.headers['content-security-policy']).toContain("script-src 'self'");
    expect(login.body).toContain('value="/backoffice/activity-logs/performance"');

    const response = await app.inject({
      method: 'POST',
      url: '/backoffice/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${ADMIN_TOKEN}&next=%2Fbackoffice%2Factivity-logs%2Fperformance`,
    });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/backoffice/activity-logs/performance');
    const setCookie = String(response.headers['set-cookie']);
    expect(setCookie).toMatch(/^activity_log_session=[^;]+;/);
    expect(setCookie.split('; ').slice(1).sort()).toEqual([
      'HttpOnly',
      expect.stringMatching(/^Max-Age=\d+$/),
      'Path=/',
      'SameSite=Strict',
    ]);

    const cookie = setCookie.split(';')[0]!;
    const page = await app.inject({
      method: 'GET',
      url: '/backoffice/activity-logs/performance',
      headers: { cookie },
    });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    const list = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs',
      headers: { cookie },
    });
    expect(list.statusCode).toBe(200);
    expect(list.json()).toMatchObject({ success: true, data: [] });
  });

  it('reads X-Forwarded-Proto and X-Forwarded-Host only from a trusted proxy', async ({ defer }) => {
    const behindProxy = {
      host: 'app.internal:3000',
      'x-forwarded-host': 'backoffice.example',
      'x-forwarded-proto': 'https',
      origin: 'https://backoffice.example',
    };
    const signIn = (app: FastifyInstance, headers: Record<string, string>) =>
      app.inject({ method: 'POST', url: '/backoffice/login', headers, payload: { token: ADMIN_TOKEN } });

    const trusted = await harness(defer, ADMIN_TOKEN, { trustProxy: ['127.0.0.1'] });
    const viaProxy = await signIn(trusted.app, behindProxy);
    expect(viaProxy.statusCode).toBe(303);
    expect(String(viaProxy.headers['set-cookie']).split('; ')).toContain('Secure');

    const direct = await harness(defer);
    const spoofedHost = await signIn(direct.app, behindProxy);
    expect(spoofedHost.statusCode).toBe(403);
    expect(errorCode(spoofedHost)).toBe('CSRF_REJECTED');
    const spoofedProto = await signIn(direct.app, {
      host: 'backoffice.example',
      'x-forwarded-proto': 'https',
      origin: 'http://backoffice.example',
    });
    expect(spoofedProto.statusCode).toBe(303);
    expect(String(spoofedProto.headers['set-cookie']).split('; ')).not.toContain('Secure');
  });

  it('answers a wrong token with the sign-in page and no cookie', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({
      method: 'POST',
      url: '/backoffice/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'token=wrong&next=https%3A%2F%2Fevil.example%2F',
    });
    expect(response.statusCode).toBe(401);
    expect(response.headers['set-cookie']).toBeUndefined();
    expect(response.body).toContain('That is not the admin token');
    expect(response.body).toContain('value="/backoffice/activity-logs"');
  });

  it('makes an address that keeps sending wrong tokens wait, but still signs in the right token', async ({
    defer,
  }) => {
    const { app } = await harness(defer);
    const attempt = (token: string) =>
      app.inject({ method: 'POST', url: '/backoffice/login', payload: { token } });
    for (let i = 0; i < SIGN_IN_ATTEMPTS_PER_WINDOW; i++)
      expect((await attempt(`guess-${i}`)).statusCode).toBe(401);
    const throttled = await attempt('one-more-guess');
    expect(throttled.statusCode).toBe(429);
    expect(Number(throttled.headers['retry-after'])).toBeGreaterThan(0);
    expect(throttled.headers['set-cookie']).toBeUndefined();
    expect(throttled.body).toContain('Too many wrong tokens');
    const right = await attempt(ADMIN_TOKEN);
    expect(right.statusCode).toBe(303);
    expect(String(right.headers['set-cookie'])).toMatch(/^activity_log_session=/);
  });

  it('counts wrong bearer tokens with wrong sign-ins, per client address behind a trusted proxy', async ({
    defer,
  }) => {
    const { app } = await harness(defer, ADMIN_TOKEN, { trustProxy: ['127.0.0.1'] });
    const bearer = (token: string, client: string) =>
      app.inject({
        method: 'GET',
        url: '/api/backoffice/activity-logs',
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': client },
      });
    for (let i = 0; i < SIGN_IN_ATTEMPTS_PER_WINDOW - 1; i++)
      expect((await bearer(`guess-${i}`, '203.0.113.7')).statusCode).toBe(401);
    const form = await app.inject({
      method: 'POST',
      url: '/backoffice/login',
      headers: { 'x-forwarded-for': '203.0.113.7' },
      payload: { token: 'one-more-guess' },
    });
    expect(form.statusCode).toBe(401);
    const throttled = await bearer('yet-another-guess', '203.0.113.7');
    expect(throttled.statusCode).toBe(429);
    expect(throttled.json()).toMatchObject({ success: false, error: { code: 'AUTH_THROTTLED' } });
    expect(Number(throttled.headers['retry-after'])).toBeGreaterThan(0);
    // The right token is never refused, and another client of the same proxy is not held up.
    expect((await bearer(ADMIN_TOKEN, '203.0.113.7')).statusCode).toBe(200);
    expect((await bearer('a-guess', '198.51.100.2')).statusCode).toBe(401);
    // A request without a token is not counted.
    const anonymous = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs',
      headers: { 'x-forwarded-for': '198.51.100.3' },
    });
    expect(anonymous.statusCode).toBe(401);
  });

  it('does not believe X-Forwarded-For unless the proxy is trusted', async ({ defer }) => {
    const { app } = await harness(defer);
    for (let i = 0; i < SIGN_IN_ATTEMPTS_PER_WINDOW; i++) {
      const response = await app.inject({
        method: 'GET',
        url: '/api/backoffice/activity-logs',
        headers: { authorization: `Bearer guess-${i}`, 'x-forwarded-for': `203.0.113.${i}` },
      });
      expect(response.statusCode).toBe(401);
    }
    const throttled = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs',
      headers: { authorization: 'Bearer guess-again', 'x-forwarded-for': '198.51.100.2' },
    });
    expect(throttled.statusCode).toBe(429);
  });

  it.for<[string, string, number]>([
    ['GET /backoffice/activity-logs', '/backoffice/activity-logs', 303],
    ['GET /backoffice/activity-logs/performance', '/backoffice/activity-logs/performance', 303],
    ['GET /backoffice/login', '/backoffice/login', 200],
  ])(
    'counts wrong bearer tokens on %s and throttles further guesses there, never the right token',
    async ([_route, url, wrongStatus], { defer }) => {
      const { app } = await harness(defer);
      const page = (token: string) =>
        app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
      for (let i = 0; i < SIGN_IN_ATTEMPTS_PER_WINDOW; i++) {
        expect((await page(`guess-${i}`)).statusCode).toBe(wrongStatus);
      }
      const throttled = await page('one-more-guess');
      expect(throttled.statusCode).toBe(429);
      expect(Number(throttled.headers['retry-after'])).toBeGreaterThan(0);
      const api = await app.inject({
        method: 'GET',
        url: '/api/backoffice/activity-logs',
        headers: { authorization: 'Bearer another-guess' },
      });
      expect(api.statusCode).toBe(429);
      expect((await page(ADMIN_TOKEN)).statusCode).toBe(url === '/backoffice/login' ? 303 : 200);
    },
  );

  it('never redirects to another site after sign-in', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({
      method: 'POST',
      url: '/backoffice/login',
      payload: { token: ADMIN_TOKEN, next: '//evil.example/backoffice' },
    });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/backoffice/activity-logs');
  });

  it('drops a next path with a character outside printable ASCII instead of failing', async ({ defer }) => {
    const { app } = await harness(defer);
    const signedIn = await app.inject({
      method: 'GET',
      url: '/backoffice/login?next=/backoffice/%E2%82%AC',
      headers: adminAuth,
    });
    expect(signedIn.statusCode).toBe(303);
    expect(signedIn.headers.location).toBe('/backoffice/activity-logs');
    const form = await app.inject({
      method: 'POST',
      url: '/backoffice/login',
      payload: { token: ADMIN_TOKEN, next: '/backoffice/caf\u00e9' },
    });
    expect(form.statusCode).toBe(303);
    expect(form.headers.location).toBe('/backoffice/activity-logs');
    const page = await app.inject({ method: 'GET', url: '/backoffice/login?next=/backoffice/%E2%82%AC' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('value="/backoffice/activity-logs"');
  });

  it('refuses a cookie that was tampered with', async ({ defer }) => {
    const { app } = await harness(defer);
    const { cookie } = await signIn(app);
    const tampered = `${cookie.slice(0, -2)}${cookie.endsWith('A') ? 'B' : 'A'}`.slice(0, cookie.length);
    const response = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs',
      headers: { cookie: tampered },
    });
    expect(response.statusCode).toBe(401);
  });

  it('still accepts the bearer token on pages and APIs', async ({ defer }) => {
    const { app } = await harness(defer);
    const page = await app.inject({ method: 'GET', url: '/backoffice/activity-logs', headers: adminAuth });
    expect(page.statusCode).toBe(200);
    const wrong = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs',
      headers: { authorization: 'Bearer wrong' },
    });
    expect(wrong.statusCode).toBe(401);
  });

  it('marks every admin answer, errors included, Cache-Control: no-store', async ({ defer }) => {
    const { app } = await harness(defer);
    const { cookie } = await signIn(app);
    const answers = [
      ...[
        '/api/backoffice/activity-logs',
        '/api/backoffice/activity-logs/performance',
        '/api/backoffice/activity-logs/failed-jobs',
        '/api/backoffice/activity-logs/host',
        '/api/backoffice/activity-logs/export.ndjson',
        '/metrics',
        '/backoffice/activity-logs',
        '/backoffice/login',
        '/health',
      ].map((url) => app.inject({ method: 'GET', url, headers: adminAuth })),
      app.inject({
        method: 'POST',
        url: '/api/backoffice/activity-logs/failed-jobs/retry',
        headers: adminAuth,
        payload: { ids: 'all' },
      }),
      app.inject({ method: 'GET', url: '/api/backoffice/activity-logs', headers: { cookie } }),
      app.inject({ method: 'GET', url: '/api/backoffice/activity-logs?limit=0', headers: adminAuth }),
      app.inject({ method: 'GET', url: '/api/backoffice/activity-logs' }),
      app.inject({ method: 'GET', url: '/api/backoffice/no-such-route', headers: adminAuth }),
    ];
    for (const response of await Promise.all(answers)) {
      expect(response.headers['cache-control'], `${response.statusCode} ${response.body.slice(0, 80)}`).toBe(
        'no-store',
      );
    }
  });

  it('says which variable to set when the admin token is not configured', async ({ defer }) => {
    const { app } = await harness(defer, null);
    const page = await app.inject({ method: 'GET', url: '/backoffice/activity-logs' });
    expect(page.statusCode).toBe(503);
    expect(errorCode(page)).toBe('AUTH_TOKEN_NOT_CONFIGURED');
    const login = await app.inject({ method: 'GET', url: '/backoffice/login' });
    expect(login.statusCode).toBe(503);
    expect(login.body).toContain('ACTIVITY_LOG_ADMIN_TOKEN');
  });
});

describe('backoffice CSRF and sign-out', () => {
  it('refuses a forged cross-site POST that carries the session cookie', async ({ defer }) => {
    const { app } = await harness(defer);
    const { cookie, csrfToken } = await signIn(app);
    const url = '/api/backoffice/activity-logs/failed-jobs/retry';
    const crossSite = await app.inject({
      method: 'POST',
      url,
      headers: { cookie, origin: 'https://evil.example', 'x-csrf-token': csrfToken },
      payload: { ids: 'all' },
    });
    expect(crossSite.statusCode).toBe(403);
    expect(errorCode(crossSite)).toBe('CSRF_REJECTED');
    const fetchMetadata = await app.inject({
      method: 'POST',
      url,
      headers: { cookie, 'sec-fetch-site': 'cross-site', 'x-csrf-token': csrfToken },
      payload: { ids: 'all' },
    });
    expect(fetchMetadata.statusCode).toBe(403);
    const noToken = await app.inject({ method: 'POST', url, headers: { cookie }, payload: { ids: 'all' } });
    expect(noToken.statusCode).toBe(403);
    expect(errorCode(noToken)).toBe('CSRF_REJECTED');
    const sameSite = await app.inject({
      method: 'POST',
      url,
      headers: { cookie, origin: 'http://localhost:80', 'x-csrf-token': csrfToken },
      payload: { ids: 'all' },
    });
    expect(sameSite.statusCode).toBe(200);
    expect(sameSite.json()).toEqual({ success: true, data: { retried: [], missing: [] } });
  });

  it('refuses a cross-site sign-in form', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({
      method: 'POST',
      url: '/backoffice/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      payload: `token=${ADMIN_TOKEN}`,
    });
    expect(response.statusCode).toBe(403);
    expect(response.headers['set-cookie']).toBeUndefined();
  });

  it('refuses a cross-site sign-out form without clearing the cookie', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({
      method: 'POST',
      url: '/backoffice/logout',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      payload: '',
    });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({ error: { code: 'CSRF_REJECTED' } });
    expect(response.headers['set-cookie']).toBeUndefined();
  });

  it('names the sign-in form limit when its body is too large', async ({ defer }) => {
    const { app } = await harness(defer);
    const response = await app.inject({
      method: 'POST',
      url: '/backoffice/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${'x'.repeat(20 * 1024)}`,
    });
    expect(response.statusCode).toBe(413);
    expect(response.json()).toMatchObject({
      error: { code: 'BODY_TOO_LARGE', details: { limit_bytes: 16 * 1024 } },
    });
    expect(response.json<{ error: { message: string } }>().error.message).toContain('16384 bytes');
  });

  it('signs out only with the CSRF token, and the old cookie stops working', async ({ defer }) => {
    const { app } = await harness(defer);
    const { cookie, csrfToken } = await signIn(app);
    const forged = await app.inject({
      method: 'POST',
      url: '/backoffice/logout',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: '',
    });
    expect(forged.statusCode).toBe(403);
    const response = await app.inject({
      method: 'POST',
      url: '/backoffice/logout',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: `_csrf=${encodeURIComponent(csrfToken)}`,
    });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/backoffice/login?signed_out=1');
    const cleared = String(response.headers['set-cookie']).split('; ');
    expect(cleared[0]).toBe('activity_log_session=');
    expect(cleared).toEqual(expect.arrayContaining(['Path=/', 'Max-Age=0', 'HttpOnly', 'SameSite=Strict']));
    const after = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs',
      headers: { cookie },
    });
    expect(after.statusCode).toBe(401);
  });
});

describe('backoffice assets', () => {
  it('serves the page scripts and uPlot, and nothing outside the asset list', async ({ defer }) => {
    const { app } = await harness(defer);
    for (const file of [
      'activity-logs.js',
      'inclusion-proof.js',
      'performance.js',
      'backoffice.css',
      'uPlot.iife.min.js',
      'uPlot.min.css',
    ]) {
      const response = await app.inject({ method: 'GET', url: `/backoffice/assets/${file}` });
      expect(response.statusCode, file).toBe(200);
      expect(response.headers['x-content-type-options']).toBe('nosniff');
    }
    for (const url of [
      '/backoffice/assets/..%2F..%2Fserver.ts',
      '/backoffice/assets/../pages/login.html',
      '/backoffice/assets/uPlot.esm.js',
      '/backoffice/assets/uPlot.LICENSE',
      '/backoffice/assets/',
    ]) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(404);
    }
  });

  it('lets the browser revalidate an asset with its ETag', async ({ defer }) => {
    const { app } = await harness(defer);
    const url = '/backoffice/assets/backoffice.js';
    const first = await app.inject({ method: 'GET', url });
    expect(first.headers['cache-control']).toBe('no-cache');
    expect(first.headers['content-type']).toMatch(/javascript; charset=utf-8$/);
    const etag = String(first.headers.etag);
    const again = await app.inject({ method: 'GET', url, headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
  });
});

function activity(index: number, overrides: Partial<Activity> = {}): Activity {
  return storedActivity({
    logName: 'orders',
    description: `activity ${index}`,
    subjectType: 'Order',
    subjectId: String(index % 10),
    event: 'updated',
    causerType: 'User',
    causerId: String(index % 3),
    properties: { attributes: { total: index }, old: { total: index - 1 } },
    ipAddress: '203.0.113.9',
    url: 'https://shop.example/orders',
    method: 'PATCH',
    userAgent: 'test',
    createdAt: new Date(Date.UTC(2026, 0, 1) + index * 1000),
    ...overrides,
  });
}

describe('backoffice export', () => {
  it('exports the current filter as CSV, newest first, with formula cells neutralised', async ({ defer }) => {
    const { app, store } = await harness(defer);
    await store.insertMany([
      activity(1, { description: '=HYPERLINK("http://evil.example")', causerId: '7' }),
      activity(2, { description: 'plain, with "quotes"', causerId: '7' }),
      activity(3, { causerId: '8' }),
    ]);
    const response = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs/export.csv?causer_id=7',
      headers: adminAuth,
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(response.headers['content-disposition']).toMatch(/^attachment; filename="activity-logs-.*\.csv"$/);
    const lines = response.body.split('\r\n');
    expect(lines[0]).toBe(
      'id,created_at,log_name,event,description,subject_type,subject_id,causer_type,causer_id,batch_uuid,ip_address,method,url,user_agent,properties,erased',
    );
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/,"false"$/);
    expect(lines[1]).toContain('"plain, with ""quotes"""');
    expect(lines[2]).toContain(`"'=HYPERLINK(""http://evil.example"")"`);
    expect(lines[3]).toBe('');
  });

  it('exports NDJSON across many keyset pages without repeating a row', async ({ defer }) => {
    const { app, store } = await harness(defer);
    const rows = Array.from({ length: 1203 }, (_, i) => activity(i));
    for (let i = 0; i < rows.length; i += 500) await store.insertMany(rows.slice(i, i + 500));
    const response = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs/export.ndjson?log_name=orders',
      headers: adminAuth,
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    const parsed = response.body
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; created_at: string });
    expect(parsed).toHaveLength(1203);
    expect(new Set(parsed.map((row) => row.id)).size).toBe(1203);
    expect(parsed[0]!.created_at > parsed[1202]!.created_at).toBe(true);
  });

  it('answers HEAD with the headers after one page, without reading the rest', async ({ defer }) => {
    const { app, activityLog, store } = await harness(defer);
    const rows = Array.from({ length: 1203 }, (_, i) => activity(i));
    for (let i = 0; i < rows.length; i += 500) await store.insertMany(rows.slice(i, i + 500));
    const query = activityLog.query.bind(activityLog);
    let pagesRead = 0;
    activityLog.query = (filter) => {
      pagesRead++;
      return query(filter);
    };
    const response = await app.inject({
      method: 'HEAD',
      url: '/api/backoffice/activity-logs/export.ndjson',
      headers: adminAuth,
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    expect(response.body).toBe('');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(pagesRead).toBe(1);
  });

  it('refuses paging parameters and bad filters before sending anything', async ({ defer }) => {
    const { app } = await harness(defer);
    for (const [query, field] of [
      ['limit=10', 'limit'],
      ['cursor=abc', 'cursor'],
      ['from=yesterday', 'from'],
      ['colour=red', 'colour'],
    ]) {
      const response = await app.inject({
        method: 'GET',
        url: `/api/backoffice/activity-logs/export.csv?${query}`,
        headers: adminAuth,
      });
      expect(response.statusCode, query).toBe(400);
      expect(response.json<{ error: { details: { field: string } } }>().error.details.field).toBe(field);
    }
  });

  it('streams a 200k-row export with memory that does not grow with the rows', async ({ defer }) => {
    const { app, store } = await harness(defer);
    const total = 200_000;
    const padding = 'x'.repeat(400);
    for (let i = 0; i < total; i += 5000) {
      const chunk = Array.from({ length: 5000 }, (_, j) =>
        activity(i + j, { properties: { attributes: { total: i + j, note: padding } } }),
      );
      await store.insertMany(chunk);
    }
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    global.gc?.();
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    let bytes = 0;
    let lines = 0;
    await new Promise<void>((resolve, reject) => {
      get(
        { host: '127.0.0.1', port, path: '/api/backoffice/activity-logs/export.ndjson', headers: adminAuth },
        (response) => {
          expect(response.statusCode).toBe(200);
          response.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            for (const byte of chunk) if (byte === 10) lines++;
            if (lines % 10_000 < 50) peak = Math.max(peak, process.memoryUsage().heapUsed);
          });
          response.on('end', resolve);
          response.on('error', reject);
        },
      ).on('error', reject);
    });
    expect(lines).toBe(total);
    // The export is ~150 MB; held in memory, it alone would exceed the bound more than twice over.
    expect(bytes).toBeGreaterThan(100 * 1024 * 1024);
    expect(peak - baseline).toBeLessThan(64 * 1024 * 1024);
  }, 180_000);
});
