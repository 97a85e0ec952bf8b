import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { BatchDelivery } from '../../src/delivery/batch.js';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { createQueueSink } from '../../src/delivery/queue-sink.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { testQueue, uniqueQueueName, waitFor } from '../helpers/queue.js';
import { REDIS, serviceAvailable } from '../helpers/services.js';
import { test as it } from '../helpers/test-context.js';

const redisUp = await serviceAvailable(REDIS);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

describe.skipIf(!redisUp)('queue producer (real Redis)', () => {
  it('enqueues one job per batch with the activities intact', async ({ defer }) => {
    const config = testQueue(defer, 'producer', { ACTIVITY_LOG_BATCH_SIZE: '100' });
    const { queueName } = config;
    const sink = createQueueSink({ redis: config.redis, queueName, tries: 3, batchSize: 100 });
    const delivery = new BatchDelivery(sink, { method: 'queue', batchSize: 100, flushIntervalMs: 10 });
    for (const activity of builtActivities(1050)) delivery.deliver(activity);
    await delivery.close();

    const admin = await QueueAdmin.connect(config.redis, queueName);
    defer(() => admin.close());
    expect((await admin.counts()).waiting).toBe(11);
  });

  it('keeps activities while Redis is down and enqueues them once it is back', async ({ defer }) => {
    const port = await freePort();
    const config = loadConfig({
      env: {
        QUEUE_CONNECTION: 'redis',
        REDIS_URL: `redis://127.0.0.1:${port}`,
        DATABASE_URL: 'sqlite::memory:',
      },
    });
    const queueName = uniqueQueueName('recover');
    const sink = createQueueSink({ redis: config.redis, queueName, tries: 3, batchSize: 50 });
    const delivery = new BatchDelivery(sink, {
      method: 'queue',
      batchSize: 50,
      flushIntervalMs: 10,
      retryMaxDelayMs: 200,
    });
    let failures = 0;
    delivery.bus.on('writeFailed', () => failures++);
    for (const activity of builtActivities(120)) delivery.deliver(activity);
    await waitFor(() => failures > 0, 3000, 'the enqueue to fail');
    expect(delivery.pending()).toBe(120);

    const server: ChildProcess = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    defer(async () => {
      server.kill('SIGKILL');
    });
    await waitFor(() => delivery.pending() === 0, 15_000, 'the kept activities to be enqueued');
    await delivery.close();

    const admin = await QueueAdmin.connect(config.redis, queueName);
    defer(() => admin.close());
    expect((await admin.counts()).waiting).toBe(3);
  });
});
