import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CookieSerializeOptions } from '@fastify/cookie';

/** Name of the backoffice session cookie. */
export const SESSION_COOKIE = 'activity_log_session';

/** How long a sign-in lasts: a working day. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const SESSION_TTL_SECONDS = SESSION_TTL_MS / 1000;

/**
 * Signs every session of this process. A restart draws a new one, which signs everybody out;
 * the admin token is mixed in too, so rotating it ends every session signed with the old one.
 * That is why the cookie is signed here and not with @fastify/cookie's `signed` option: the
 * plugin signs with one secret fixed at registration, while this key is derived per admin token
 * and also derives each session's CSRF token.
 */
const PROCESS_SECRET = randomBytes(32);

/** Session ids signed out before they expired, with their expiry, so the map can forget them. */
const signedOut = new Map<string, number>();

/** A verified backoffice session. */
export interface Session {
  readonly id: string;
  readonly expiresAtMs: number;
  /** Sent back by pages in `x-csrf-token` (or a form's `_csrf`) on every state-changing request. */
  readonly csrfToken: string;
}

export interface IssuedSession {
  readonly session: Session;
  /** The cookie's value: `<id>.<expiry>.<signature>`. */
  readonly cookieValue: string;
}

function sessionKey(adminToken: string): Buffer {
  return createHmac('sha256', PROCESS_SECRET).update(adminToken).digest();
}

function sign(key: Buffer, text: string): string {
  return createHmac('sha256', key).update(text).digest('base64url');
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function withCsrf(key: Buffer, id: string, expiresAtMs: number): Session {
  return { id, expiresAtMs, csrfToken: sign(key, `csrf:${id}`) };
}

/**
 * A new session for someone who proved they hold the admin token.
 *
 * @example
 * const { cookieValue } = issueSession(config.adminToken);
 * reply.setCookie(SESSION_COOKIE, cookieValue, sessionCookieOptions(requestIsHttps(request)));
 */
export function issueSession(adminToken: string, nowMs: number = Date.now()): IssuedSession {
  const key = sessionKey(adminToken);
  const id = randomBytes(18).toString('base64url');
  const expiresAtMs = nowMs + SESSION_TTL_MS;
  const payload = `${id}.${expiresAtMs}`;
  return { session: withCsrf(key, id, expiresAtMs), cookieValue: `${payload}.${sign(key, payload)}` };
}

/** The session a cookie value carries, or null when it is forged, expired, signed out or from another token. */
export function readSession(
  cookieValue: string,
  adminToken: string,
  nowMs: number = Date.now(),
): Session | null {
  const match = /^([A-Za-z0-9_-]{24})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(cookieValue);
  if (match === null) return null;
  const [, id, expiry, signature] = match as unknown as [string, string, string, string];
  const key = sessionKey(adminToken);
  if (!sameText(signature, sign(key, `${id}.${expiry}`))) return null;
  const expiresAtMs = Number(expiry);
  if (expiresAtMs <= nowMs || signedOut.has(id)) return null;
  return withCsrf(key, id, expiresAtMs);
}

/** Whether a request's CSRF token is the one of its session. */
export function csrfTokenMatches(session: Session, given: string | undefined): boolean {
  return given !== undefined && sameText(given, session.csrfToken);
}

/** Signs a session out for good (until the process restarts, when every session ends anyway). */
export function endSession(session: Session, nowMs: number = Date.now()): void {
  for (const [id, expiresAtMs] of signedOut) if (expiresAtMs <= nowMs) signedOut.delete(id);
  signedOut.set(session.id, session.expiresAtMs);
}

/**
 * How the session cookie is set (and cleared): HttpOnly, SameSite=Strict, for the whole site
 * (pages and APIs), `Secure` when the browser came over HTTPS.
 */
export function sessionCookieOptions(secure: boolean): CookieSerializeOptions {
  return { path: '/', maxAge: SESSION_TTL_SECONDS, httpOnly: true, sameSite: 'strict', secure };
}
