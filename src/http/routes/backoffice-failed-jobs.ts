import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Config } from '../../config/config.js';
import { QueueAdmin } from '../../delivery/queue-admin.js';
import { requireToken } from '../auth.js';
import { zodFailure } from '../zod-failure.js';

export interface BackofficeFailedJobsOptions {
  readonly config: Config;
}

/** The dashboard lists this many failed jobs, newest first; `activity-log failed` lists them all. */
export const MAX_LISTED_FAILED_JOBS = 100;

/** The body of `POST …/failed-jobs/retry`. */
export const retryFailedJobsBody = z.strictObject({
  ids: z.union([
    z.literal('all'),
    z
      .array(z.string().min(1).max(191), { error: 'must be "all" or an array of job ids' })
      .min(1, { error: 'must name at least one job' })
      .max(1000, { error: 'must name at most 1000 jobs' }),
  ]),
});

/**
 * `GET /api/backoffice/activity-logs/failed-jobs` and `POST …/failed-jobs/retry` (admin token or
 * session with CSRF token): the queue's failed jobs, and putting them back on the queue, for the
 * performance dashboard. Without the queue backend the list is empty and `queue` is false.
 */
export function registerBackofficeFailedJobsRoutes(
  app: FastifyInstance,
  options: BackofficeFailedJobsOptions,
): void {
  const { config } = options;
  const onRequest = requireToken({ token: config.adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' });
  const usesQueue = config.method === 'queue';

  const withAdmin = async <T>(operation: (admin: QueueAdmin) => Promise<T>): Promise<T> => {
    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    try {
      return await operation(admin);
    } finally {
      await admin.close();
    }
  };

  app.get('/api/backoffice/activity-logs/failed-jobs', { onRequest }, async () => {
    if (!usesQueue) return { success: true, queue: false, total: 0, data: [] };
    const { total, jobs } = await withAdmin((admin) => admin.failedPage(MAX_LISTED_FAILED_JOBS));
    return {
      success: true,
      queue: true,
      total,
      data: jobs.map((job) => ({
        id: job.id,
        attempts: job.attempts,
        error: job.error,
        activities: job.activities,
        failed_at: job.failedAt?.toISOString() ?? null,
      })),
    };
  });

  app.post<{ Body: unknown }>(
    '/api/backoffice/activity-logs/failed-jobs/retry',
    { onRequest },
    async (request) => {
      const parsed = retryFailedJobsBody.safeParse(request.body ?? {});
      if (!parsed.success) throw zodFailure(parsed.error, { allowedKeys: ['ids'] });
      if (!usesQueue)
        return {
          success: true,
          data: { retried: [], missing: parsed.data.ids === 'all' ? [] : parsed.data.ids },
        };
      const result = await withAdmin((admin) => admin.retry(parsed.data.ids));
      return { success: true, data: { retried: result.retried, missing: result.missing } };
    },
  );
}
