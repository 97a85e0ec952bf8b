import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ActivityLogError } from '../core/errors.js';

/** Which token guards a route, and the variable that sets it (named in the 503 when it is unset). */
export interface TokenGuard {
  /** The configured token, or null when its variable is unset. */
  readonly token: string | null;
  readonly variable: 'ACTIVITY_LOG_ADMIN_TOKEN' | 'ACTIVITY_LOG_INGEST_TOKEN';
}

/**
 * Compares two secrets in time that depends on neither their contents nor their lengths:
 * both sides are hashed first, so `timingSafeEqual` always sees 32 bytes.
 */
export function tokensMatch(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or null when there is none. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match === null ? null : match[1]!;
}

/**
 * An `onRequest` hook that lets a request through only with the guard's bearer token. It runs
 * before the body is read, so an unauthenticated client cannot make the server parse megabytes.
 * A guard whose variable is unset refuses every request: no route is open by default.
 *
 * @example
 * app.get('/api/backoffice/x', { onRequest: requireToken({ token, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' }) }, handler);
 */
export function requireToken(guard: TokenGuard) {
  return async function checkToken(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (guard.token === null) {
      throw new ActivityLogError(
        'AUTH_TOKEN_NOT_CONFIGURED',
        `${request.method} ${request.routeOptions.url ?? request.url} is disabled: set ${guard.variable} to enable it`,
        { field: guard.variable, details: { variable: guard.variable } },
      );
    }
    const given = bearerToken(request.headers.authorization);
    if (given === null || !tokensMatch(given, guard.token)) {
      reply.header('www-authenticate', 'Bearer');
      throw new ActivityLogError(
        'AUTH_REQUIRED',
        given === null
          ? `send the token of ${guard.variable} as "Authorization: Bearer <token>"`
          : `the bearer token is not the one in ${guard.variable}`,
      );
    }
  };
}
