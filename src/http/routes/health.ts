import type { FastifyInstance } from 'fastify';
import { type ActivityLogError, ERROR_CODES, type ErrorCode, isActivityLogError } from '../../core/errors.js';
import type { HealthProbes } from '../../runtime/health-probes.js';
import { adminAccess, isAdmin } from '../auth.js';

export interface HealthRouteOptions {
  /** The store, delivery, queue and breaker, as the server's composer probes them. */
  readonly probes: HealthProbes;
  /** Longest wait for the store's ping before it counts as down (default 2000 ms). */
  readonly pingTimeoutMs?: number;
  /** With the admin token (bearer or session), failing parts carry the driver's message. */
  readonly adminToken?: string | null;
  /** Whether the table is ready; a store that answers but is not migrated yet is not ready. */
  readonly storeReadiness?: () => { readonly ok: boolean; readonly error?: ActivityLogError };
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
  /**
   * With `ACTIVITY_LOG_METHOD=queue`: Redis answers a ping within the timeout. `durable` says
   * whether Redis keeps the queue through a crash (AOF on and fsync'd at least every second;
   * `null` until known), `durability` says why and what to set. Not being durable does not fail
   * the check: the queue works, it only loses its backlog if Redis dies.
   */
  readonly queue?: PartHealth & { readonly durable?: boolean | null; readonly durability?: string };
  /** The circuit breaker and spool the delivery writes through: the store's, or the queue producer's. */
  readonly breaker?: {
    readonly ok: boolean;
    readonly name: string;
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
 * a ping within the timeout, Redis too with the `queue` method, and the delivery's circuit
 * breaker is not open). A 503 names the failing parts.
 */
export function registerHealthRoute(app: FastifyInstance, options: HealthRouteOptions): void {
  const { probes } = options;
  const timeoutMs = options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
  app.get('/health', async (request, reply) => {
    const readiness = options.storeReadiness?.();
    const [store, queue] = await Promise.all([
      readiness?.error !== undefined
        ? { ok: false, error: { code: readiness.error.code, message: readiness.error.message } }
        : withTimeout(probes.pingStore(), timeoutMs, 'STORE_TIMEOUT', 'STORE_FAILED'),
      probes.pingQueue === null
        ? undefined
        : withTimeout(probes.pingQueue(), timeoutMs, 'QUEUE_UNAVAILABLE', 'QUEUE_UNAVAILABLE'),
    ]);
    // An open breaker means writes are not reaching the database, even if a ping gets through.
    const shownBreaker = probes.breaker?.();
    const breaker =
      shownBreaker === undefined
        ? undefined
        : {
            ok: shownBreaker.state !== 'open',
            name: shownBreaker.name,
            state: shownBreaker.state,
            failure_count: shownBreaker.failure_count,
            is_allowed: shownBreaker.is_allowed,
          };
    const failing = [
      ...(store.ok ? [] : ['store']),
      ...(queue?.ok === false ? ['queue'] : []),
      ...(breaker?.ok === false ? ['breaker'] : []),
    ];
    // Without the admin token, a failure is described by its code only: driver messages name
    // hosts, databases and users, and /health answers anyone. The token is only looked at when
    // there is a detail to show (otherwise the answer is the same either way); a wrong one then
    // counts as a guess, but health is still answered, as load balancers need it.
    const detailed =
      failing.length > 0 &&
      options.adminToken !== undefined &&
      options.adminToken !== null &&
      isAdmin(adminAccess(request, options.adminToken));
    const shown = (part: PartHealth | undefined, name: string): PartHealth | undefined => {
      if (part?.error === undefined) return part;
      if (detailed) return part;
      request.log.warn({ part: name, error: part.error }, 'health check: part failing');
      const { code } = part.error;
      const generic = code in ERROR_CODES ? ERROR_CODES[code as ErrorCode] : 'It failed.';
      return { ...part, error: { code, message: `${generic} Send the admin token for the details.` } };
    };
    const body: HealthBody = {
      status: failing.length === 0 ? 'ok' : 'unavailable',
      ...(failing.length === 0 ? {} : { failing }),
      store: { ...shown(store, 'store')!, dialect: probes.storeDialect },
      delivery: { ok: true, ...probes.deliveryStatus() },
      ...(queue === undefined ? {} : { queue: { ...shown(queue, 'queue')!, ...queueDurability(probes) } }),
      ...(breaker === undefined ? {} : { breaker }),
      ...(probes.spoolPending === null ? {} : { spool: { pending: probes.spoolPending() } }),
    };
    return reply.code(failing.length === 0 ? 200 : 503).send(body);
  });
}

function queueDurability(probes: HealthProbes): {
  readonly durable?: boolean | null;
  readonly durability?: string;
} {
  if (probes.queueDurability === null) return {};
  const durability = probes.queueDurability();
  return durability === null
    ? { durable: null, durability: 'unknown: not read from Redis yet' }
    : { durable: durability.durable, durability: durability.description };
}

/** A part's health from its ping: ok, its coded error, or `timeoutCode` when it does not answer in time. */
async function withTimeout(
  ping: Promise<void>,
  timeoutMs: number,
  timeoutCode: ErrorCode,
  fallbackCode: ErrorCode,
): Promise<PartHealth> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<PartHealth>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, error: { code: timeoutCode, message: `no answer within ${timeoutMs} ms` } }),
      timeoutMs,
    );
  });
  const answer = ping.then(
    (): PartHealth => ({ ok: true }),
    (error: unknown): PartHealth => ({
      ok: false,
      error: {
        code: isActivityLogError(error) ? error.code : fallbackCode,
        message: error instanceof Error ? error.message : String(error),
      },
    }),
  );
  try {
    return await Promise.race([answer, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
