import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ActivityLogError } from '../core/errors.js';
import { csrfTokenMatches, readSession, SESSION_COOKIE, type Session } from './session.js';

/** The variables that set the tokens guarding routes. */
export type TokenVariable = 'ACTIVITY_LOG_ADMIN_TOKEN' | 'ACTIVITY_LOG_INGEST_TOKEN';

/** Which token guards a route, and the variable that sets it (named in the 503 when it is unset). */
export interface TokenGuard {
  /** The configured token, or null when its variable is unset. */
  readonly token: string | null;
  readonly variable: TokenVariable;
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

/** Wrong tokens one address may try per window before it has to wait for the window to pass. */
export const WRONG_TOKENS_PER_WINDOW = 10;
export const WRONG_TOKEN_WINDOW_MS = 60_000;
/** Addresses remembered at most; past this the oldest are forgotten, so the map cannot grow without bound. */
const MAX_TRACKED_ADDRESSES = 10_000;

/**
 * Counts wrong tokens per client address in fixed windows, so a weak token cannot be guessed at
 * network speed. One per token per server (see {@link checkToken}); the address is `request.ip`,
 * which honours `ACTIVITY_LOG_TRUST_PROXY`.
 */
export class WrongTokenThrottle {
  readonly #failures = new Map<string, { count: number; windowStartMs: number }>();

  /** Milliseconds this address must wait before trying again, or 0. */
  waitMs(address: string, nowMs: number): number {
    const entry = this.#failures.get(address);
    if (entry === undefined || nowMs - entry.windowStartMs >= WRONG_TOKEN_WINDOW_MS) return 0;
    return entry.count >= WRONG_TOKENS_PER_WINDOW ? entry.windowStartMs + WRONG_TOKEN_WINDOW_MS - nowMs : 0;
  }

  recordFailure(address: string, nowMs: number): void {
    const entry = this.#failures.get(address);
    if (entry !== undefined && nowMs - entry.windowStartMs < WRONG_TOKEN_WINDOW_MS) {
      entry.count++;
      return;
    }
    this.#failures.delete(address);
    if (this.#failures.size >= MAX_TRACKED_ADDRESSES) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
    this.#failures.set(address, { count: 1, windowStartMs: nowMs });
  }
}

/**
 * One throttle per token: guesses at the admin token never hold up ingest clients behind the same
 * address, nor the other way round.
 */
export type WrongTokenThrottles = Readonly<Record<TokenVariable, WrongTokenThrottle>>;

export function createWrongTokenThrottles(): WrongTokenThrottles {
  return {
    ACTIVITY_LOG_ADMIN_TOKEN: new WrongTokenThrottle(),
    ACTIVITY_LOG_INGEST_TOKEN: new WrongTokenThrottle(),
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Set by `createServer`; plugin scopes inherit it, so every route of a server shares it. */
    wrongTokens?: WrongTokenThrottles;
  }
}

/** What a presented token turned out to be. */
export type TokenCheck =
  | { readonly kind: 'valid' }
  /** `retryAfterSeconds` is set when the address is over the limit: answer 429, not 401. */
  | { readonly kind: 'wrong'; readonly retryAfterSeconds: number | null };

/**
 * Compares a presented token with the guard's in constant time and counts a wrong one against
 * the client's address. The correct token is accepted whatever the count, so a client holding it
 * keeps working while someone behind the same address is guessing; only guesses are refused.
 *
 * @example
 * const check = checkToken(request, bearerToken(request.headers.authorization) ?? '', guard);
 * if (check.kind === 'wrong' && check.retryAfterSeconds !== null) throw throttledError(reply, check.retryAfterSeconds);
 */
export function checkToken(
  request: FastifyRequest,
  given: string,
  guard: { readonly token: string; readonly variable: TokenVariable },
): TokenCheck {
  if (tokensMatch(given, guard.token)) return { kind: 'valid' };
  const throttle = request.server.wrongTokens?.[guard.variable];
  const nowMs = Date.now();
  const waitMs = throttle?.waitMs(request.ip, nowMs) ?? 0;
  if (waitMs > 0) return { kind: 'wrong', retryAfterSeconds: Math.ceil(waitMs / 1000) };
  throttle?.recordFailure(request.ip, nowMs);
  return { kind: 'wrong', retryAfterSeconds: null };
}

/** The 429 for a wrong token from an address over the limit, with its `Retry-After`. */
export function throttledError(reply: FastifyReply, retryAfterSeconds: number): ActivityLogError {
  reply.header('retry-after', String(retryAfterSeconds));
  return new ActivityLogError(
    'AUTH_THROTTLED',
    `too many wrong tokens from this address: try again in ${retryAfterSeconds} s`,
    { details: { retry_after_seconds: retryAfterSeconds } },
  );
}

/** How a request proved it may use an admin route. */
export type AdminCredential =
  | { readonly kind: 'bearer' }
  | { readonly kind: 'session'; readonly session: Session };

/** What a request showed for a guarded route: a credential, a wrong bearer token, or nothing. */
export type RequestAccess =
  | AdminCredential
  | { readonly kind: 'wrong-token'; readonly retryAfterSeconds: number | null }
  | { readonly kind: 'none' };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The session each cookie-authenticated request came with (see {@link sessionOf}). */
const sessions = new WeakMap<FastifyRequest, Session>();

/**
 * Checks the admin bearer token (counted by {@link checkToken}), or else the backoffice session
 * cookie (parsed by @fastify/cookie, which `registerBackoffice` registers; {@link sessionOf} then
 * returns the session). A bearer token that is present but wrong is not rescued by a cookie, so a
 * client that meant to use a token learns that it is wrong.
 */
export function adminAccess(request: FastifyRequest, adminToken: string): RequestAccess {
  const bearer = bearerAccess(request, { token: adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' });
  if (bearer.kind !== 'none') return bearer;
  const session = adminSession(request, adminToken);
  return session === null ? { kind: 'none' } : { kind: 'session', session };
}

/** The request's bearer token checked against a guard, for routes without sessions (ingest). */
export function bearerAccess(
  request: FastifyRequest,
  guard: { readonly token: string; readonly variable: TokenVariable },
): RequestAccess {
  const given = bearerToken(request.headers.authorization);
  if (given === null) return { kind: 'none' };
  const check = checkToken(request, given, guard);
  return check.kind === 'valid'
    ? { kind: 'bearer' }
    : { kind: 'wrong-token', retryAfterSeconds: check.retryAfterSeconds };
}

/** Whether the access lets the request use admin routes. */
export function isAdmin(access: RequestAccess): access is AdminCredential {
  return access.kind === 'bearer' || access.kind === 'session';
}

/** The backoffice session of the request's cookie, or null; no bearer token is looked at. */
export function adminSession(request: FastifyRequest, adminToken: string): Session | null {
  const cookie = request.cookies[SESSION_COOKIE];
  const session = cookie === undefined ? null : readSession(cookie, adminToken);
  if (session !== null) sessions.set(request, session);
  return session;
}

/**
 * Whether the browser reached the server over HTTPS. Used only to mark the session cookie `Secure`.
 * `request.protocol` reads `X-Forwarded-Proto` only from a proxy `ACTIVITY_LOG_TRUST_PROXY`
 * trusts (the value the nearest proxy set), so anyone else cannot claim HTTPS.
 */
export function requestIsHttps(request: FastifyRequest): boolean {
  return request.protocol === 'https';
}

/**
 * The browser says the request comes from a page of this server (or says nothing, as
 * non-browser clients do). `Sec-Fetch-Site` and `Origin` are set by browsers and cannot be set by
 * a page on another site. The origin's host is compared with the server's host, not its scheme, so
 * the check holds behind a proxy that ends TLS: `request.host` is `X-Forwarded-Host` from a
 * trusted proxy (`ACTIVITY_LOG_TRUST_PROXY`), and `Host` otherwise; `Host` itself is accepted too,
 * for proxies that pass it on unchanged.
 */
export function sameOriginRequest(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  try {
    const from = new URL(origin);
    // Read the server's host with the origin's scheme, so `host:80` and `host` compare equal.
    const hostOf = (host: string | undefined) =>
      host === undefined || host === '' ? undefined : new URL(`${from.protocol}//${host}`).host;
    return from.host === hostOf(request.host) || from.host === hostOf(request.headers.host);
  } catch {
    return false;
  }
}

/**
 * Refuses a state-changing request that a session cookie authenticated unless it comes from
 * this site and carries the session's CSRF token (header `x-csrf-token`, or `formToken` from a
 * form body). Bearer requests need no such check: browsers never add that header on their own.
 */
export function checkCsrf(request: FastifyRequest, session: Session, formToken?: string): void {
  const header = request.headers['x-csrf-token'];
  const given = typeof header === 'string' ? header : formToken;
  if (!sameOriginRequest(request)) {
    throw new ActivityLogError(
      'CSRF_REJECTED',
      `${request.method} ${request.url.split('?')[0]} came from another site; use the backoffice pages of this server`,
    );
  }
  if (!csrfTokenMatches(session, given)) {
    throw new ActivityLogError(
      'CSRF_REJECTED',
      'the request carries no or a wrong CSRF token: send the one of the signed-in page in "x-csrf-token"',
    );
  }
}

/** The backoffice session that authenticated this request, when a cookie (not a bearer token) did. */
export function sessionOf(request: FastifyRequest): Session | null {
  return sessions.get(request) ?? null;
}

/**
 * An `onRequest` hook that lets a request through only with the guard's bearer token. It runs
 * before the body is read, so an unauthenticated client cannot make the server parse megabytes.
 * A guard whose variable is unset refuses every request: no route is open by default.
 *
 * For the admin token the backoffice session cookie (from `/backoffice/login`) is accepted as
 * well; a state-changing request (not GET/HEAD/OPTIONS) that relies on the cookie must then
 * also pass {@link checkCsrf}. Wrong tokens are counted per address ({@link checkToken}); past
 * the limit a wrong one gets 429 `AUTH_THROTTLED` instead of 401, the right one still passes.
 *
 * @example
 * app.get('/api/backoffice/x', { onRequest: requireToken({ token, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' }) }, handler);
 */
export function requireToken(guard: TokenGuard) {
  return async function checkRequestToken(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (guard.token === null) {
      throw new ActivityLogError(
        'AUTH_TOKEN_NOT_CONFIGURED',
        `${request.method} ${request.routeOptions.url ?? request.url} is disabled: set ${guard.variable} to enable it`,
        { field: guard.variable, details: { variable: guard.variable } },
      );
    }
    const access: RequestAccess =
      guard.variable === 'ACTIVITY_LOG_ADMIN_TOKEN'
        ? adminAccess(request, guard.token)
        : bearerAccess(request, { token: guard.token, variable: guard.variable });
    if (access.kind === 'session') {
      if (!SAFE_METHODS.has(request.method)) checkCsrf(request, access.session);
      return;
    }
    if (access.kind === 'bearer') return;
    if (access.kind === 'wrong-token' && access.retryAfterSeconds !== null) {
      throw throttledError(reply, access.retryAfterSeconds);
    }
    reply.header('www-authenticate', 'Bearer');
    throw new ActivityLogError(
      'AUTH_REQUIRED',
      access.kind === 'none'
        ? `send the token of ${guard.variable} as "Authorization: Bearer <token>"${guard.variable === 'ACTIVITY_LOG_ADMIN_TOKEN' ? ', or sign in at /backoffice/login' : ''}`
        : `the bearer token is not the one in ${guard.variable}`,
    );
  };
}
