import { Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { describe, expect } from 'vitest';
import type { Config } from '../../src/config/config.js';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { QUEUE_PREFIX } from '../../src/delivery/queue-keys.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { enqueue, testQueue } from '../helpers/queue.js';
import { REDIS, serviceAvailable } from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const ADMIN_TOKEN = 'admin-token-for-failed-jobs-tests';
const redisUp = await serviceAvailable(REDIS);

async function signIn(app: FastifyInstance): Promise<{ cookie: string; csrfToken: string }> {
  const login = await app.inject({
    method: 'POST',
    url: '/backoffice/login',
    payload: { token: ADMIN_TOKEN },
  });
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  const page = await app.inject({
    method: 'GET',
    url: '/backoffice/activity-logs/performance',
    headers: { cookie },
  });
  return { cookie, csrfToken: /<meta name="csrf-token" content="([^"]+)"/.exec(page.body)![1]! };
}

/** Jobs of these sizes end among the failed ones after their one try (every attempt throws). */
async function failJobs(
  defer: TestScope['defer'],
  label: string,
  sizes: readonly number[],
): Promise<{ config: Config; admin: QueueAdmin }> {
  const config = testQueue(defer, label, { ACTIVITY_LOG_TRIES: '1', ACTIVITY_LOG_ADMIN_TOKEN: ADMIN_TOKEN });
  await enqueue(
    config,
    sizes.map((size) => builtActivities(size)),
  );
  const failing = new Worker(
    config.queueName,
    async () => {
      throw new Error('made to fail by the test');
    },
    {
      connection: { host: REDIS.host, port: REDIS.port, maxRetriesPerRequest: null },
      prefix: QUEUE_PREFIX,
    },
  );
  // Closing it interrupts its blocking fetch; that is expected, not a failure of the test.
  failing.on('error', () => undefined);
  const admin = await QueueAdmin.connect(config.redis, config.queueName);
  try {
    await expect.poll(async () => (await admin.counts()).failed, { timeout: 10_000 }).toBe(sizes.length);
  } finally {
    await failing.close();
  }
  return { config, admin };
}

describe.runIf(redisUp)('backoffice failed jobs (Redis)', () => {
  it('reads only the newest page of failed jobs, with the total', async ({ defer }) => {
    const { admin } = await failJobs(defer, 'backoffice-failed-page', [1, 2, 3]);
    defer(() => admin.close());
    const page = await admin.failedPage(2);
    expect(page.total).toBe(3);
    expect(page.jobs).toHaveLength(2);
    const all = await admin.listFailed();
    expect(page.jobs.map((job) => job.id)).toEqual(all.slice(0, 2).map((job) => job.id));
    expect((await admin.failedPage(0)).jobs).toEqual([]);
  });

  it('lists failed jobs and retries one from the dashboard with the CSRF token', async ({ defer }) => {
    const { config, admin } = await failJobs(defer, 'backoffice-failed', [3]);

    const composed = composeActivityLog({ config });
    const { activityLog } = composed;
    const app = createActivityLogServer(composed, { config });
    defer(async () => {
      await admin.close();
      await app.close();
      await activityLog.close();
    });
    const { cookie, csrfToken } = await signIn(app);

    const listed = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs/failed-jobs',
      headers: { cookie },
    });
    expect(listed.statusCode).toBe(200);
    const body = listed.json<{
      queue: boolean;
      total: number;
      data: { id: string; activities: number; error: string }[];
    }>();
    expect(body).toMatchObject({ queue: true, total: 1 });
    expect(body.data[0]).toMatchObject({
      activities: 3,
      error: expect.stringContaining('made to fail by the test'),
    });

    const retried = await app.inject({
      method: 'POST',
      url: '/api/backoffice/activity-logs/failed-jobs/retry',
      headers: { cookie, 'x-csrf-token': csrfToken },
      payload: { ids: [body.data[0]!.id, 'no-such-job'] },
    });
    expect(retried.statusCode).toBe(200);
    expect(retried.json()).toEqual({
      success: true,
      data: { retried: [body.data[0]!.id], missing: ['no-such-job'] },
    });
    expect((await admin.counts()).failed).toBe(0);

    const invalid = await app.inject({
      method: 'POST',
      url: '/api/backoffice/activity-logs/failed-jobs/retry',
      headers: { cookie, 'x-csrf-token': csrfToken },
      payload: { ids: [] },
    });
    expect(invalid.statusCode).toBe(400);
  });
});
