import { createHash } from 'node:crypto';
import { type FastifyStaticOptions, fastifyStatic } from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ActivityLogError } from '../../core/errors.js';
import { ACTIVITY_FIELDS_SCRIPT_PATH, activityFieldsScript } from '../activity-fields-script.js';
import { adminAccess, sessionOf, throttledError } from '../auth.js';
import { ASSET_DIR, loadPageTemplate, renderTemplate, UPLOT_FILES, uplotDir } from '../web-assets.js';

export interface BackofficePagesOptions {
  readonly adminToken: string | null;
}

/**
 * Pages only load scripts, styles and data from this server; nothing may frame them. Log data
 * is put on the page as text, and this keeps an injected tag from running even if it were not.
 */
export const PAGE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

/**
 * Assets are served by @fastify/static with one route per file found at start-up (`wildcard:
 * false`), so no request reaches any other path. Browsers revalidate them on every load, which
 * the ETag makes cheap, and must not sniff their type.
 */
const ASSET_OPTIONS = {
  prefix: '/backoffice/assets/',
  wildcard: false,
  index: false,
  decorateReply: false,
  cacheControl: false,
  setHeaders: (reply) =>
    reply.header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache'),
} satisfies Partial<FastifyStaticOptions>;

const uplotFiles: ReadonlySet<string> = new Set(UPLOT_FILES.map((file) => `/${file}`));

/** Where the browser goes after signing in when `next` is missing or refused. */
export const DEFAULT_NEXT_PATH = '/backoffice/activity-logs';

/**
 * A backoffice path of this server in printable ASCII, without `//` or `\` anywhere (browsers read
 * either as the start of another host, and a backoffice path never needs them). ASCII because the
 * path goes into the `Location` header, which cannot carry anything else; percent-encoding can.
 */
const NEXT_PATH = /^\/backoffice(?:\/[\x21-\x7e]*)?$/;

/** Where to go after signing in: a backoffice path of this server, never another site; else the default. */
export function safeNextPath(next: unknown): string {
  if (typeof next !== 'string' || !NEXT_PATH.test(next) || next.includes('//') || next.includes('\\')) {
    return DEFAULT_NEXT_PATH;
  }
  return next;
}

/**
 * An `onRequest` hook for HTML pages: the admin bearer token or a session cookie lets the
 * request through; without either the browser is sent to the sign-in page and back. A wrong
 * bearer token counts as a guess, and past the limit gets 429 instead of the redirect.
 */
export function requireAdminPage(adminToken: string | null) {
  return async function checkPage(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (adminToken === null) {
      throw new ActivityLogError(
        'AUTH_TOKEN_NOT_CONFIGURED',
        'the backoffice is disabled: set ACTIVITY_LOG_ADMIN_TOKEN to enable it',
        { field: 'ACTIVITY_LOG_ADMIN_TOKEN', details: { variable: 'ACTIVITY_LOG_ADMIN_TOKEN' } },
      );
    }
    const access = adminAccess(request, adminToken);
    if (access.kind === 'bearer' || access.kind === 'session') return;
    if (access.kind === 'wrong-token' && access.retryAfterSeconds !== null) {
      throw throttledError(reply, access.retryAfterSeconds);
    }
    const next = safeNextPath(request.url);
    return reply.redirect(`/backoffice/login?next=${encodeURIComponent(next)}`, 303);
  };
}

/**
 * The backoffice pages (`/backoffice/activity-logs`, `/backoffice/activity-logs/performance`)
 * and their static assets under `/backoffice/assets/`. Pages need a session (or the bearer
 * token); assets are public code and carry no data.
 */
export function registerBackofficePages(app: FastifyInstance, options: BackofficePagesOptions): void {
  const pages = {
    activityLogs: loadPageTemplate('activity-logs'),
    performance: loadPageTemplate('performance'),
  };
  const onRequest = requireAdminPage(options.adminToken);

  const sendPage = (request: FastifyRequest, reply: FastifyReply, template: string) => {
    const csrfToken = sessionOf(request)?.csrfToken ?? '';
    return reply
      .headers(PAGE_SECURITY_HEADERS)
      .type('text/html; charset=utf-8')
      .send(renderTemplate(template, { csrf_token: csrfToken }));
  };

  app.get('/backoffice', (_request, reply) => reply.redirect('/backoffice/activity-logs', 303));
  app.get('/backoffice/', (_request, reply) => reply.redirect('/backoffice/activity-logs', 303));
  app.get('/backoffice/activity-logs', { onRequest }, (request, reply) =>
    sendPage(request, reply, pages.activityLogs),
  );
  app.get('/backoffice/activity-logs/performance', { onRequest }, (request, reply) =>
    sendPage(request, reply, pages.performance),
  );
  const fieldsScript = activityFieldsScript();
  const fieldsEtag = `"${createHash('sha256').update(fieldsScript).digest('base64url').slice(0, 27)}"`;
  app.get(ACTIVITY_FIELDS_SCRIPT_PATH, (request, reply) => {
    reply
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-cache')
      .header('etag', fieldsEtag);
    if (request.headers['if-none-match'] === fieldsEtag) return reply.code(304).send();
    return reply.type('text/javascript; charset=utf-8').send(fieldsScript);
  });
  app.register(fastifyStatic, { ...ASSET_OPTIONS, root: ASSET_DIR });
  // uPlot's folder in node_modules holds other builds too; only the browser files are served.
  app.register(fastifyStatic, {
    ...ASSET_OPTIONS,
    root: uplotDir(),
    allowedPath: (pathname) => uplotFiles.has(pathname),
  });
}
