import type { FastifyInstance } from 'fastify';
import type { Monitoring } from '../../metrics/monitoring.js';
import { requireToken } from '../auth.js';

export interface MetricsRouteOptions {
  readonly monitoring: Monitoring;
  readonly adminToken: string | null;
}

/** `GET /metrics` (admin): Prometheus text format, `activity_log_*` plus the default process metrics. */
export function registerMetricsRoute(app: FastifyInstance, options: MetricsRouteOptions): void {
  const { monitoring } = options;
  app.get(
    '/metrics',
    { onRequest: requireToken({ token: options.adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' }) },
    async (_request, reply) => {
      const text = await monitoring.prometheus();
      return reply.type(monitoring.prometheusContentType).send(text);
    },
  );
}
