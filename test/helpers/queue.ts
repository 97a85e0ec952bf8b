import { type Config, loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { createQueueSink } from '../../src/delivery/queue-sink.js';
import { builtActivities } from './activity-factory.js';
import { REDIS, uniqueSuffix } from './services.js';

export const REDIS_URL = `redis://${REDIS.host}:${REDIS.port}`;

/** A queue name no other test uses. */
export function uniqueQueueName(label: string): string {
  return `test-${label}-${uniqueSuffix()}`.replace(/[^A-Za-z0-9_.-]/g, '-');
}

/** Config for queue tests: Redis on loopback, the given queue, short retry-after. */
export function queueConfig(queueName: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    env: {
      QUEUE_CONNECTION: 'redis',
      REDIS_URL,
      ACTIVITY_LOG_METHOD: 'queue',
      ACTIVITY_LOG_QUEUE_NAME: queueName,
      DATABASE_URL: 'sqlite::memory:',
      ...env,
    },
  });
}

/**
 * {@link queueConfig} for a queue of its own (`config.queueName`), whose removal from Redis is
 * handed to `defer` (the test's fixture).
 */
export function testQueue(
  defer: (cleanup: () => unknown) => void,
  label: string,
  env: Record<string, string> = {},
): Config {
  const queueName = uniqueQueueName(label);
  const config = queueConfig(queueName, env);
  defer(() => removeQueue(config, queueName));
  return config;
}

/** Deletes everything the queue left in Redis. */
export async function removeQueue(config: Config, queueName: string): Promise<void> {
  const admin = await QueueAdmin.connect(config.redis, queueName);
  try {
    await admin.removeQueue();
  } finally {
    await admin.close();
  }
}

/** Enqueues `batches` on the config's queue, one job per batch (each of at most 10,000 activities). */
export async function enqueue(config: Config, batches: readonly (readonly Activity[])[]): Promise<void> {
  const sink = createQueueSink({
    redis: config.redis,
    queueName: config.queueName,
    tries: config.tries,
    batchSize: 10_000,
  });
  for (const batch of batches) await sink.write(batch);
  await sink.close();
}

/** Enqueues `jobs` jobs of `perJob` {@link builtActivities} each; resolves to the activities, in order. */
export async function enqueueSampleJobs(config: Config, jobs: number, perJob: number): Promise<Activity[]> {
  const activities = builtActivities(jobs * perJob);
  await enqueue(
    config,
    Array.from({ length: jobs }, (_, i) => activities.slice(i * perJob, (i + 1) * perJob)),
  );
  return activities;
}

/**
 * Polls `check` until it returns true or `timeoutMs` passes. `what` may be a function, read only
 * on a timeout, so the message can say the state the wait ended in.
 */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string | (() => string),
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
}
