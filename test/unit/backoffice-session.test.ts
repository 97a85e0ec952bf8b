import type { FastifyInstance } from 'fastify';
import { describe, expect } from 'vitest';
import { csvCell, csvLine } from '../../src/http/activity-export.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { safeNextPath } from '../../src/http/routes/backoffice-pages.js';
import {
  csrfTokenMatches,
  endSession,
  issueSession,
  readSession,
  SESSION_TTL_MS,
} from '../../src/http/session.js';
import { escapeHtml, renderTemplate } from '../../src/http/web-assets.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { MemoryStore } from '../helpers/memory-sink.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const ADMIN_TOKEN = 'admin-token';

function backoffice(defer: TestScope['defer'], trustProxy: boolean = false): FastifyInstance {
  const app = createActivityLogServer(
    composeActivityLog({
      env: {},
      store: new MemoryStore(),
      config: { method: 'sync', adminToken: ADMIN_TOKEN, trustProxy },
    }),
  );
  defer(() => app.close());
  return app;
}

/** The `Set-Cookie` header split into `name=value` and its attributes, in any order. */
function parseSetCookie(header: unknown): { pair: string; attributes: string[] } {
  const [pair = '', ...attributes] = String(header).split(/;\s*/);
  return { pair, attributes: attributes.sort() };
}

describe('backoffice sessions', () => {
  it('reads back a session it issued, with the same CSRF token', () => {
    const { session, cookieValue: value } = issueSession('admin-token');
    const read = readSession(value, 'admin-token');
    expect(read).toEqual(session);
    expect(csrfTokenMatches(read!, session.csrfToken)).toBe(true);
    expect(csrfTokenMatches(read!, `${session.csrfToken}x`)).toBe(false);
    expect(csrfTokenMatches(read!, undefined)).toBe(false);
  });

  it('refuses a session signed for another admin token, a tampered one and an expired one', () => {
    const nowMs = Date.now();
    const { cookieValue: value } = issueSession('admin-token', nowMs);
    expect(readSession(value, 'rotated-token', nowMs)).toBeNull();
    const [id, expiry, signature] = value.split('.');
    expect(readSession(`${id}.${Number(expiry) + 1000}.${signature}`, 'admin-token', nowMs)).toBeNull();
    expect(readSession(value, 'admin-token', nowMs + SESSION_TTL_MS)).toBeNull();
    expect(readSession('garbage', 'admin-token', nowMs)).toBeNull();
  });

  it('refuses a session after it was signed out', () => {
    const { session, cookieValue: value } = issueSession('admin-token');
    endSession(session);
    expect(readSession(value, 'admin-token')).toBeNull();
  });

  it('sets an HttpOnly, SameSite=Strict cookie for the whole site, Secure only over HTTPS', async ({
    defer,
  }) => {
    const app = backoffice(defer);
    const signIn = (headers: Record<string, string> = {}, on: FastifyInstance = app) =>
      on.inject({ method: 'POST', url: '/backoffice/login', headers, payload: { token: ADMIN_TOKEN } });

    const plain = parseSetCookie((await signIn()).headers['set-cookie']);
    expect(plain.pair).toMatch(/^activity_log_session=[\w-]+\.\d+\.[\w-]+$/);
    expect(plain.attributes).toEqual([
      'HttpOnly',
      `Max-Age=${SESSION_TTL_MS / 1000}`,
      'Path=/',
      'SameSite=Strict',
    ]);

    // X-Forwarded-Proto counts only from a trusted proxy, and then the value the nearest one set.
    const claimed = await signIn({ 'x-forwarded-proto': 'https' });
    expect(parseSetCookie(claimed.headers['set-cookie']).attributes).not.toContain('Secure');
    const behindTls = await signIn({ 'x-forwarded-proto': 'https' }, backoffice(defer, true));
    expect(parseSetCookie(behindTls.headers['set-cookie']).attributes).toContain('Secure');
  });

  it('finds the session cookie among other cookies, and clears it on sign-out', async ({ defer }) => {
    const app = backoffice(defer);
    const { session, cookieValue: value } = issueSession(ADMIN_TOKEN);
    const cookie = `theme=dark; activity_log_session=${value}; lang=en`;
    const page = await app.inject({ method: 'GET', url: '/backoffice/activity-logs', headers: { cookie } });
    expect(page.statusCode).toBe(200);
    const other = await app.inject({
      method: 'GET',
      url: '/backoffice/activity-logs',
      headers: { cookie: 'a=1' },
    });
    expect(other.statusCode).toBe(303);

    const signOut = await app.inject({
      method: 'POST',
      url: '/backoffice/logout',
      headers: { cookie, 'x-csrf-token': session.csrfToken },
    });
    expect(signOut.statusCode).toBe(303);
    const cleared = parseSetCookie(signOut.headers['set-cookie']);
    expect(cleared.pair).toBe('activity_log_session=');
    expect(cleared.attributes).toEqual(
      expect.arrayContaining(['HttpOnly', 'Max-Age=0', 'Path=/', 'SameSite=Strict']),
    );
    const after = await app.inject({ method: 'GET', url: '/backoffice/activity-logs', headers: { cookie } });
    expect(after.statusCode).toBe(303);
  });

  it('only sends the browser back to printable-ASCII backoffice paths of this server after sign-in', () => {
    expect(safeNextPath('/backoffice/activity-logs?causer_id=7')).toBe(
      '/backoffice/activity-logs?causer_id=7',
    );
    expect(safeNextPath('/backoffice/activity-logs?url=%E2%82%AC')).toBe(
      '/backoffice/activity-logs?url=%E2%82%AC',
    );
    expect(safeNextPath('/backoffice')).toBe('/backoffice');
    for (const next of [
      'https://evil.example/',
      '//evil.example/backoffice',
      '/\\evil.example',
      '/api/x',
      undefined,
      '/backoffice/\u20ac',
      '/backoffice/caf\u00e9',
      '/backoffice/a b',
      '/backoffice/a\tb',
      '/backoffice/x\u0000',
      '/backoffice//evil.example',
      '/backoffice/\\evil.example',
      '/backofficex',
    ]) {
      expect(safeNextPath(next)).toBe('/backoffice/activity-logs');
    }
  });

  it('escapes every template value as HTML', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    expect(renderTemplate('<input value="{{next}}">{{missing}}', { next: '"><script>' })).toBe(
      '<input value="&quot;&gt;&lt;script&gt;">',
    );
  });
});

describe('CSV export cells', () => {
  it('neutralises cells a spreadsheet would run as formulas', () => {
    for (const text of ['=1+1', '+1', '-1', '@SUM(A1)', '\t=1', '\r=1']) {
      expect(csvCell(text)).toBe(`"'${text}"`);
    }
    expect(csvCell('plain')).toBe('"plain"');
  });

  it('quotes every cell and doubles quotes inside it', () => {
    expect(csvCell('say "hi", then\nleave')).toBe('"say ""hi"", then\nleave"');
    expect(csvCell(null)).toBe('""');
    expect(csvCell({ a: 1 })).toBe('"{""a"":1}"');
  });

  it('writes one CRLF-terminated line per activity in the column order', () => {
    const line = csvLine({
      id: 'id-1',
      log_name: 'default',
      description: '=cmd',
      subject_type: null,
      subject_id: null,
      event: 'created',
      causer_type: 'User',
      causer_id: '7',
      properties: {},
      batch_uuid: null,
      ip_address: null,
      url: null,
      method: null,
      user_agent: null,
      created_at: '2026-01-01T00:00:00.000Z',
      erased: false,
    });
    expect(line).toBe(
      `"id-1","2026-01-01T00:00:00.000Z","default","created","'=cmd","","","User","7","","","","","","{}","false"\r\n`,
    );
  });
});
