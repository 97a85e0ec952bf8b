import type { FastifyInstance } from 'fastify';
import type { Monitoring } from '../../metrics/monitoring.js';
import { requireToken } from '../auth.js';

export interface PerformanceRouteOptions {
  readonly monitoring: Monitoring;
  readonly adminToken: string | null;
}

/**
 * `GET /api/backoffice/activity-logs/performance` (admin): the performance snapshot,
 * `{ success: true, data: { queue_size, processing_rate, error_rate, … } }`.
 */
export function registerPerformanceRoute(app: FastifyInstance, options: PerformanceRouteOptions): void {
  const { monitoring } = options;
  app.get(
    '/api/backoffice/activity-logs/performance',
    { onRequest: requireToken({ token: options.adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' }) },
    async () => monitoring.snapshot(),
  );
}
