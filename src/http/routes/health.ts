import type { FastifyInstance } from 'fastify';
import { isActivityLogError } from '../../core/errors.js';
import type { ActivityLog } from '../../core/logger.js';
import { resilienceOf } from '../../resilience/resilient-sink.js';

export interface HealthRouteOptions {
  readonly activityLog: ActivityLog;
  /** Longest wait for the store's ping before it counts as down (default 2000 ms). */
  readonly pingTimeoutMs?: number;
}

export interface PartHealth {
  readonly ok: boolean;
  readonly error?: { readonly code: string; readonly message: string };
}

/** `GET /health` answer: 200 when every part is ok, else 503 with the failing parts in `failing`. */
export interface HealthBody {
  readonly status: 'ok' | 'unavailable';
  readonly failing?: readonly string[];
  readonly store: PartHealth & { readonly dialect: string };
  readonly delivery: { readonly ok: boolean; readonly method: string; readonly pending: number };
  /** The store's circuit breaker and spool, when the delivery writes through them. */
  readonly breaker?: {
    readonly ok: boolean;
    readonly state: string;
    readonly failure_count: number;
    readonly is_allowed: boolean;
  };
  readonly spool?: { readonly pending: number };
}

/** Short enough for a load balancer's health check, long enough for a busy pool to hand out a connection. */
export const DEFAULT_PING_TIMEOUT_MS = 2000;

/**
 * `GET /health`, without auth: liveness (the process answers) and readiness (the store answers
 * a ping within the timeout and its circuit breaker is not open). A 503 names the failing parts.
 */
export function registerHealthRoute(app: FastifyInstance, options: HealthRouteOptions): void {
  const { activityLog } = options;
  const timeoutMs = options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
  app.get('/health', async (_request, reply) => {
    const store = await pingStore(activityLog, timeoutMs);
    const resilience = resilienceOf(activityLog.delivery);
    // An open breaker means writes are not reaching the database, even if a ping gets through.
    const breaker =
      resilience === null
        ? undefined
        : { ok: resilience.breaker.state !== 'open', ...resilience.breaker.toJSON() };
    const failing = [...(store.ok ? [] : ['store']), ...(breaker?.ok === false ? ['breaker'] : [])];
    const body: HealthBody = {
      status: failing.length === 0 ? 'ok' : 'unavailable',
      ...(failing.length === 0 ? {} : { failing }),
      store: { ...store, dialect: activityLog.store.capabilities.dialect },
      delivery: { ok: true, method: activityLog.delivery.method, pending: activityLog.delivery.pending() },
      ...(breaker === undefined ? {} : { breaker }),
      ...(resilience === null ? {} : { spool: { pending: resilience.spool.pending() } }),
    };
    reply.header('cache-control', 'no-store');
    return reply.code(failing.length === 0 ? 200 : 503).send(body);
  });
}

async function pingStore(activityLog: ActivityLog, timeoutMs: number): Promise<PartHealth> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<PartHealth>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({ ok: false, error: { code: 'STORE_TIMEOUT', message: `no answer within ${timeoutMs} ms` } }),
      timeoutMs,
    );
  });
  const ping = activityLog.store.ping().then(
    (): PartHealth => ({ ok: true }),
    (error: unknown): PartHealth => ({
      ok: false,
      error: {
        code: isActivityLogError(error) ? error.code : 'STORE_FAILED',
        message: error instanceof Error ? error.message : String(error),
      },
    }),
  );
  try {
    return await Promise.race([ping, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
