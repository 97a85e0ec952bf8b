import { cpus, freemem, hostname, loadavg, totalmem, uptime } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { requireToken } from '../auth.js';

export interface BackofficeHostOptions {
  readonly adminToken: string | null;
}

/**
 * `GET /api/backoffice/activity-logs/host` (admin token or session): the resources of the host
 * `serve` runs on, for the performance dashboard. Load averages are 0 on Windows.
 */
export function registerBackofficeHostRoute(app: FastifyInstance, options: BackofficeHostOptions): void {
  const onRequest = requireToken({ token: options.adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' });
  app.get('/api/backoffice/activity-logs/host', { onRequest }, async () => ({
    success: true,
    data: {
      hostname: hostname(),
      load_average: loadavg().map((load) => Math.round(load * 100) / 100),
      cpus: cpus().length,
      free_memory_bytes: freemem(),
      total_memory_bytes: totalmem(),
      uptime_seconds: Math.round(uptime()),
    },
  }));
}
