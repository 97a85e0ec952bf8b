import { fastifyCookie } from '@fastify/cookie';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import type { ActivityPage, ActivityQuery } from '../store/activity-store.js';
import { registerBackofficeExportRoutes } from './routes/backoffice-export.js';
import { registerBackofficeFailedJobsRoutes } from './routes/backoffice-failed-jobs.js';
import { registerBackofficeHostRoute } from './routes/backoffice-host.js';
import { registerBackofficePages } from './routes/backoffice-pages.js';
import { registerBackofficeSessionRoutes } from './routes/backoffice-session.js';

export interface BackofficeOptions {
  /** Reads a page of the log, for the exports. */
  readonly query: (query: ActivityQuery) => Promise<ActivityPage>;
  readonly config: Config;
}

/**
 * The backoffice web UI: sign-in/out, the activity browser and the performance dashboard
 * pages, their assets, exports, and the failed-jobs and host APIs behind the dashboard.
 *
 * Registers @fastify/cookie on `app` itself, so every admin route (also those registered
 * outside the backoffice) can read the session cookie from `request.cookies`.
 */
export function registerBackoffice(app: FastifyInstance, options: BackofficeOptions): void {
  const { query, config } = options;
  app.register(fastifyCookie);
  registerBackofficeSessionRoutes(app, { adminToken: config.adminToken });
  registerBackofficePages(app, { adminToken: config.adminToken });
  registerBackofficeExportRoutes(app, { query, adminToken: config.adminToken });
  registerBackofficeFailedJobsRoutes(app, { config });
  registerBackofficeHostRoute(app, { adminToken: config.adminToken });
}
