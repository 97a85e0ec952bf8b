import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import type { Config } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';
import type { Monitoring } from '../metrics/monitoring.js';
import { ActivityProofs } from '../runtime/activity-proofs.js';
import type { ActivityLog } from '../runtime/create-activity-log.js';
import type { HealthProbes } from '../runtime/health-probes.js';
import type { ActivityQuery } from '../store/activity-store.js';
import { createWrongTokenThrottles } from './auth.js';
import { registerBackoffice } from './backoffice.js';
import { clientErrorReply, errorReply, isHeaderWriteError, type ParserError } from './error-reply.js';
import { registerBackofficeActivitiesRoute } from './routes/backoffice-activities.js';
import { registerBackofficeActivityRoutes } from './routes/backoffice-activity.js';
import { registerHealthRoute } from './routes/health.js';
import { registerIngestRoute } from './routes/ingest.js';
import { registerMetricsRoute } from './routes/metrics.js';
import { registerOpenApiRoute } from './routes/openapi.js';
import { registerPerformanceRoute } from './routes/performance.js';

/**
 * Largest request body, 8 MiB. A full array of 1000 activities at the per-activity maximum
 * (4 KiB description + 64 KiB properties) would be ~68 MiB, which no ingest client needs in one
 * request and every server would have to hold in memory; 8 MiB is 1000 activities of ~8 KiB.
 * Each single activity is still held to the library's limits.
 */
export const DEFAULT_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

export interface ServerOptions {
  /** What ingest logs to and the query API reads. */
  readonly activityLog: Pick<ActivityLog, 'log' | 'logMany' | 'query'>;
  /** Tokens, proxies and the queue of the failed-jobs API (`serve` supplies generated tokens). */
  readonly config: Config;
  /** What `GET /health` reports on (see `healthProbesOf`). */
  readonly health: HealthProbes;
  /** Source of the performance snapshot and `/metrics`; its owner closes it. */
  readonly monitoring: Monitoring;
  /** Fastify's logger option (a pino logger or its options); default off. */
  readonly logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** Default {@link DEFAULT_BODY_LIMIT_BYTES}. */
  readonly bodyLimitBytes?: number;
  /** Longest wait for the store on `GET /health` (default 2000 ms). */
  readonly healthPingTimeoutMs?: number;
  /** Whether the store's table is ready (`serve` migrates in the background while it is not). */
  readonly storeReadiness?: () => { readonly ok: boolean; readonly error?: ActivityLogError };
}

/** Longest time a client may take to send one request, headers and body. */
export const REQUEST_TIMEOUT_MS = 60_000;

/**
 * Builds the HTTP server (health, ingest, backoffice query and proof API, `GET /openapi.json`) without listening, so tests can
 * `inject()` and `serve` decides where to bind. Every error answers
 * `{ success: false, error: { code, message, details? } }`. Each route gets only what it uses.
 *
 * @example
 * const { activityLog, config, store, delivery } = composeActivityLog();
 * const monitoring = startMonitoring({ config, delivery, alerts: false });
 * const app = createServer({ activityLog, config, health: healthProbesOf(store, delivery), monitoring });
 * await app.listen({ host: config.host, port: config.port });
 */
export function createServer(options: ServerOptions): FastifyInstance {
  const { activityLog, config, monitoring } = options;
  const bodyLimitBytes = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const logger = options.logger ?? false;
  const app: FastifyInstance = Fastify({
    ...(isPinoLogger(logger) ? { loggerInstance: logger } : { logger }),
    bodyLimit: bodyLimitBytes,
    // Fastify's own 503 while closing has its own body; the onRequest hook below answers ours.
    return503OnClosing: false,
    // A path that is not valid percent-encoding never reaches a route or the error handler.
    frameworkErrors: (error, request, reply) => sendError(error, request, reply, bodyLimitBytes),
    // What Node's HTTP parser refuses (malformed headers, too many of them) is answered here.
    clientErrorHandler: answerClientError,
    // A request (headers and body) must arrive within this; a client that stalls mid-body is cut
    // off instead of holding a connection, and shutdown, open. Responses (exports) are not bound.
    requestTimeout: REQUEST_TIMEOUT_MS,
    // request.ip (wrong-token throttling, logs), request.protocol (the cookie's Secure) and
    // request.host (the same-site check) read X-Forwarded-* only from proxies this trusts.
    // Fastify takes a hop count too (proxy-addr), though its types list only the other forms.
    trustProxy: (Array.isArray(config.trustProxy)
      ? [...config.trustProxy]
      : config.trustProxy) as FastifyServerOptions['trustProxy'],
  });
  app.decorate('wrongTokens', createWrongTokenThrottles());

  // Answers carry log data, metrics and tokens' verdicts: no browser or proxy may keep a copy
  // unless the route says otherwise (the static assets do).
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    // While `serve` shuts down, new requests get a 503 so load balancers retry them elsewhere.
    if (closing) {
      throw new ActivityLogError('SERVER_CLOSING', 'the server is shutting down: send the request again');
    }
  });

  // JSON only: Fastify's text/plain parser would hand routes a string they never expect.
  app.removeContentTypeParser('text/plain');

  // A route with a limit of its own (the sign-in form) names that limit, not the server's.
  app.setErrorHandler((error, request, reply) =>
    sendError(error, request, reply, request.routeOptions.bodyLimit ?? bodyLimitBytes),
  );
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      success: false,
      error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` },
    }),
  );

  registerHealthRoute(app, {
    probes: options.health,
    adminToken: config.adminToken,
    ...(options.healthPingTimeoutMs === undefined ? {} : { pingTimeoutMs: options.healthPingTimeoutMs }),
    ...(options.storeReadiness === undefined ? {} : { storeReadiness: options.storeReadiness }),
  });
  registerIngestRoute(app, { activityLog, ingestToken: config.ingestToken, bodyLimitBytes });
  const query = (filter: ActivityQuery) => activityLog.query(filter);
  registerBackofficeActivitiesRoute(app, { query, adminToken: config.adminToken });
  const proofs = new ActivityProofs({
    database: config.database,
    checkpointDir: config.checkpointDir,
    signingKeyPath: config.signingKeyPath,
  });
  app.addHook('onClose', () => proofs.close());
  registerBackofficeActivityRoutes(app, { proofs, adminToken: config.adminToken });
  registerPerformanceRoute(app, { monitoring, adminToken: config.adminToken });
  registerMetricsRoute(app, { monitoring, adminToken: config.adminToken });
  registerBackoffice(app, { query, config });
  registerOpenApiRoute(app);
  return app;
}

function sendError(
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
  bodyLimitBytes: number,
): FastifyReply {
  const { statusCode, body, unexpected } = errorReply(error, bodyLimitBytes);
  if (unexpected) request.log.error({ err: error }, 'request failed');
  // The headers the reply failed with would fail the error answer too.
  if (isHeaderWriteError(error)) for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
  return reply.code(statusCode).header('cache-control', 'no-store').send(body);
}

/** Answers, in the `{ success: false, error }` shape, a request Node's HTTP parser refused. */
function answerClientError(error: Error, socket: Duplex): void {
  // A reset connection has no one left to answer.
  if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const { statusCode, body } = clientErrorReply(error as ParserError, {
      maxHeaderBytes: maxHeaderSize,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    });
    const json = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(json)}\r\n` +
        'Cache-Control: no-store\r\nConnection: close\r\n\r\n' +
        json,
    );
  }
  socket.destroy(error);
}

function isPinoLogger(logger: unknown): logger is FastifyBaseLogger {
  return (
    typeof logger === 'object' &&
    logger !== null &&
    typeof (logger as { child?: unknown }).child === 'function' &&
    typeof (logger as { info?: unknown }).info === 'function'
  );
}
