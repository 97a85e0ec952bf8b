import type { FastifyInstance } from 'fastify';
import type { ComposedActivityLog } from '../runtime/create-activity-log.js';
import { healthProbesOf } from '../runtime/health-probes.js';
import { startMonitoring } from '../runtime/start-monitoring.js';
import { createServer, type ServerOptions } from './server.js';

/** What {@link createActivityLogServer} takes besides the activity log; each wins over what it derives. */
export type ActivityLogServerOptions = Partial<Omit<ServerOptions, 'activityLog'>>;

/**
 * The HTTP server of a composed activity log: health probes its store and delivery, and — unless
 * `options.monitoring` is given — a monitoring of its delivery without alerts, closed with the server.
 *
 * @example
 * const app = createActivityLogServer(composeActivityLog());
 * await app.listen({ port: 3000 });
 */
export function createActivityLogServer(
  composed: ComposedActivityLog,
  options: ActivityLogServerOptions = {},
): FastifyInstance {
  const { activityLog, config, store, delivery } = composed;
  const monitoring =
    options.monitoring ?? startMonitoring({ config, collector: composed.collector, alerts: false });
  const app = createServer({
    config,
    health: healthProbesOf(store, delivery),
    ...options,
    activityLog,
    monitoring,
  });
  if (options.monitoring === undefined) app.addHook('onClose', () => monitoring.close());
  return app;
}
