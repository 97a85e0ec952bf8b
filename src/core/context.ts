import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { LIMITS, type ModelLike } from './activity.js';
import { newBatchUuid } from './ids.js';

/**
 * Values captured around a unit of work (a request, a job, a `withinBatch` call) and applied to
 * every activity logged inside it. Explicit values passed to `log()` always win.
 */
export interface ActivityContext {
  readonly batchUuid?: string | undefined;
  readonly causer?: ModelLike | null | undefined;
  /**
   * Asked for the causer when an activity is logged and `causer` is not set, so that a user
   * authenticated after the context was opened (by a later middleware) is still seen.
   */
  readonly resolveCauser?: (() => ModelLike | null | undefined) | undefined;
  readonly ipAddress?: string | undefined;
  readonly url?: string | undefined;
  readonly method?: string | undefined;
  readonly userAgent?: string | undefined;
}

const storage = new AsyncLocalStorage<ActivityContext>();

/** The context of the current async execution, if any. */
export function currentContext(): ActivityContext | undefined {
  return storage.getStore();
}

/** Runs `fn` with `context` merged over the current one (inner values win). */
export function runWithContext<T>(context: ActivityContext, fn: () => T): T {
  const parent = storage.getStore();
  return storage.run(parent === undefined ? context : { ...parent, ...context }, fn);
}

/** The causer a context supplies: `causer` if set, otherwise what `resolveCauser` returns now. */
export function contextCauser(context: ActivityContext | undefined): ModelLike | null {
  if (context === undefined) return null;
  if (context.causer !== undefined) return context.causer;
  return context.resolveCauser?.() ?? null;
}

/**
 * Makes every listener `emitter` calls run inside the current context. Streams (request bodies,
 * responses) emit from the socket's async context, so a body parser mounted after the request
 * context would otherwise continue without it.
 */
export function bindEmitterToContext(emitter: EventEmitter): void {
  const context = storage.getStore();
  if (context === undefined) return;
  const emit = emitter.emit;
  emitter.emit = function emitInContext(this: EventEmitter, ...args: Parameters<EventEmitter['emit']>) {
    return storage.run(context, () => emit.apply(this, args));
  };
}

/** What a framework adapter reads from one incoming request. */
export interface IncomingRequestFacts {
  /** The client address as the framework computed it (after its trust-proxy rules). */
  readonly ip: string | undefined;
  readonly url: string | undefined;
  readonly method: string | undefined;
  readonly userAgent: string | string[] | undefined;
  readonly resolveCauser: () => ModelLike | null | undefined;
}

/**
 * Options shared by the Express middleware and the Fastify plugin.
 *
 * @example
 * app.use(activityLogMiddleware({
 *   causer: (req) => (req.session?.userId ? { type: 'User', id: req.session.userId } : null),
 *   batchPerRequest: true,
 *   skip: (req) => req.path === '/health',
 * }));
 */
export interface RequestContextOptions<Request> {
  /**
   * Who is acting, asked each time an activity is logged during the request. Default: `req.user`
   * when it is `{ type, id }` or an object with an `id` (mapped by the logger's model resolver).
   */
  readonly causer?: (request: Request) => ModelLike | null | undefined;
  /** Give every request its own `batch_uuid`, so all activities of one request group together. Default false. */
  readonly batchPerRequest?: boolean;
  /** Leave some requests (health checks, static files) without a context. */
  readonly skip?: (request: Request) => boolean;
}

/**
 * Reads `request.user` as a causer: `{ type, id }` and class instances with an `id` as they are (the
 * logger's model resolver maps them); a plain object with an `id` (what session and token
 * middleware usually deserialize) as `{ type: 'User', id }`. Anything else means no causer.
 *
 * @example
 * app.use(activityLogMiddleware({ causer: (req) => defaultRequestCauser(req) ?? req.session?.user }));
 */
export function defaultRequestCauser(request: unknown): ModelLike | null {
  const user = (request as { user?: unknown } | null)?.user;
  if (typeof user !== 'object' || user === null) return null;
  const { id, type } = user as { id?: unknown; type?: unknown };
  if (typeof id !== 'string' && typeof id !== 'number' && typeof id !== 'bigint') return null;
  if (typeof type === 'string') return user;
  const prototype = Object.getPrototypeOf(user) as object | null;
  const isPlain = prototype === null || prototype === Object.prototype;
  return isPlain ? { type: 'User', id: String(id) } : user;
}

/**
 * Turns request facts into a context whose values always pass `log()` validation: an address
 * that is not an IP is left out, and over-long URLs are cut, so a strange request never makes
 * logging fail.
 */
export function requestContext(facts: IncomingRequestFacts, batchPerRequest: boolean): ActivityContext {
  const userAgent = Array.isArray(facts.userAgent) ? facts.userAgent[0] : facts.userAgent;
  const method = facts.method?.toUpperCase();
  return {
    resolveCauser: facts.resolveCauser,
    ipAddress: normalizeIp(facts.ip),
    url: facts.url === undefined || facts.url === '' ? undefined : facts.url.slice(0, LIMITS.urlChars),
    method:
      method !== undefined && method.length > 0 && method.length <= LIMITS.methodChars ? method : undefined,
    userAgent: userAgent === undefined || userAgent === '' ? undefined : userAgent,
    ...(batchPerRequest ? { batchUuid: newBatchUuid() } : {}),
  };
}

function normalizeIp(ip: string | undefined): string | undefined {
  if (ip === undefined) return undefined;
  const address = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  return isIP(address) === 0 ? undefined : address;
}
