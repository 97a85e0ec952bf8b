import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ActivityLogError } from '../../core/errors.js';
import {
  adminAccess,
  adminSession,
  checkCsrf,
  checkToken,
  isAdmin,
  requestIsHttps,
  sameOriginRequest,
  WRONG_TOKENS_PER_WINDOW,
} from '../auth.js';
import { endSession, issueSession, SESSION_COOKIE, sessionCookieOptions } from '../session.js';
import { loadPageTemplate, renderTemplate } from '../web-assets.js';
import { PAGE_SECURITY_HEADERS, safeNextPath } from './backoffice-pages.js';

export interface BackofficeSessionOptions {
  readonly adminToken: string | null;
}

/** A sign-in form is a few hundred bytes; nothing bigger needs parsing. */
const FORM_BODY_LIMIT_BYTES = 16 * 1024;

/** Wrong admin tokens one address may try per minute, through this form and bearer headers together. */
export const SIGN_IN_ATTEMPTS_PER_WINDOW = WRONG_TOKENS_PER_WINDOW;

type FormBody = Readonly<Record<string, string>> | undefined;

function field(body: unknown, name: string): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const value = (body as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * `GET|POST /backoffice/login` and `POST /backoffice/logout`. Signing in exchanges the admin
 * token (form field or JSON `token`) for an HttpOnly, SameSite=Strict session cookie, `Secure`
 * over HTTPS; signing out ends the session on the server too. After
 * {@link SIGN_IN_ATTEMPTS_PER_WINDOW} wrong admin tokens from one address in a minute, further
 * wrong ones from it get 429 until the minute is over; the right token still signs in.
 * Registered in its own scope, which is the only place HTML form bodies are parsed.
 */
export function registerBackofficeSessionRoutes(
  app: FastifyInstance,
  options: BackofficeSessionOptions,
): void {
  const template = loadPageTemplate('login');
  const { adminToken } = options;

  const loginPage = (reply: FastifyReply, next: string, message = '', kind: 'error' | 'warn' = 'error') =>
    reply
      .headers(PAGE_SECURITY_HEADERS)
      .type('text/html; charset=utf-8')
      .send(
        renderTemplate(template, {
          next,
          message,
          message_class: kind,
        }),
      );

  const cookieOptions = (request: FastifyRequest) => sessionCookieOptions(requestIsHttps(request));

  const throttledPage = (reply: FastifyReply, next: string, retryAfterSeconds: number) =>
    loginPage(
      reply.code(429).header('retry-after', String(retryAfterSeconds)),
      next,
      `Too many wrong tokens from this address: try again in ${retryAfterSeconds} s.`,
    );

  app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT_BYTES },
      (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
    );

    scope.get<{ Querystring: { next?: string; signed_out?: string } }>(
      '/backoffice/login',
      (request, reply) => {
        const next = safeNextPath(request.query.next);
        if (adminToken === null) {
          return loginPage(
            reply.code(503),
            next,
            'The backoffice is disabled: set ACTIVITY_LOG_ADMIN_TOKEN (activity-log serve generates one when it is unset).',
          );
        }
        const access = adminAccess(request, adminToken);
        if (isAdmin(access)) return reply.redirect(next, 303);
        if (access.kind === 'wrong-token' && access.retryAfterSeconds !== null) {
          return throttledPage(reply, next, access.retryAfterSeconds);
        }
        return loginPage(reply, next, request.query.signed_out === undefined ? '' : 'Signed out.', 'warn');
      },
    );

    scope.post<{ Body: FormBody }>(
      '/backoffice/login',
      { bodyLimit: FORM_BODY_LIMIT_BYTES },
      (request, reply) => {
        const next = safeNextPath(field(request.body, 'next'));
        if (!sameOriginRequest(request)) {
          throw new ActivityLogError(
            'CSRF_REJECTED',
            'sign in from the backoffice sign-in page of this server',
          );
        }
        if (adminToken === null) {
          throw new ActivityLogError(
            'AUTH_TOKEN_NOT_CONFIGURED',
            'the backoffice is disabled: set ACTIVITY_LOG_ADMIN_TOKEN to enable it',
            { field: 'ACTIVITY_LOG_ADMIN_TOKEN', details: { variable: 'ACTIVITY_LOG_ADMIN_TOKEN' } },
          );
        }
        const token = field(request.body, 'token')?.trim() ?? '';
        const check = checkToken(request, token, { token: adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' });
        if (check.kind === 'wrong') {
          if (check.retryAfterSeconds !== null) return throttledPage(reply, next, check.retryAfterSeconds);
          request.log.warn({ ip: request.ip }, 'backoffice sign-in with a wrong token');
          return loginPage(reply.code(401), next, 'That is not the admin token (ACTIVITY_LOG_ADMIN_TOKEN).');
        }
        const { cookieValue } = issueSession(adminToken);
        return reply.setCookie(SESSION_COOKIE, cookieValue, cookieOptions(request)).redirect(next, 303);
      },
    );

    scope.post<{ Body: FormBody }>(
      '/backoffice/logout',
      { bodyLimit: FORM_BODY_LIMIT_BYTES },
      (request, reply) => {
        // A cross-site form carries no cookie (SameSite=Strict) but could still clear it.
        if (!sameOriginRequest(request)) {
          throw new ActivityLogError('CSRF_REJECTED', 'sign out from the backoffice pages of this server');
        }
        // Only the cookie matters here: a bearer token has no session to end.
        const session = adminToken === null ? null : adminSession(request, adminToken);
        if (session !== null) {
          checkCsrf(request, session, field(request.body, '_csrf'));
          endSession(session);
        }
        return reply
          .clearCookie(SESSION_COOKIE, cookieOptions(request))
          .redirect('/backoffice/login?signed_out=1', 303);
      },
    );
  });
}
