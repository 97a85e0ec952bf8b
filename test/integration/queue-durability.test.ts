import { Redis } from 'ioredis';
import { describe, expect } from 'vitest';
import { createQueueSink } from '../../src/delivery/queue-sink.js';
import { ActivityWorker } from '../../src/delivery/worker.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { createStore } from '../../src/store/create-store.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { queueConfig, REDIS_URL, removeQueue, uniqueQueueName } from '../helpers/queue.js';
import { REDIS, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const redisUp = await serviceAvailable(REDIS);

describe.skipIf(!redisUp)('Redis durability (the test Redis runs without persistence)', () => {
  /**
   * A proxy of its own in front of the test Redis: an address no other test in this process has
   * been warned about, since the warning is given once per process and server.
   */
  async function freshAddress(defer: TestScope['defer']): Promise<string> {
    const proxy = await FaultProxy.start(REDIS);
    defer(() => proxy.close());
    return `redis://127.0.0.1:${proxy.port}`;
  }

  it('producers and workers warn once per process that Redis loses the queue in a crash, naming it and what to set', async ({
    defer,
  }) => {
    const direct = new Redis(REDIS_URL);
    const [, appendonly] = (await direct.config('GET', 'appendonly')) as string[];
    await direct.quit();
    expect(appendonly, 'the test Redis runs with appendonly no (DEVELOPERS.md)').toBe('no');

    const queueName = uniqueQueueName('durability');
    defer(() => removeQueue(queueConfig(queueName), queueName));
    const producerAddress = await freshAddress(defer);
    const producerConfig = queueConfig(queueName, { REDIS_URL: producerAddress });
    const warnings: string[] = [];
    const sinks = [1, 2].map(() =>
      createQueueSink({
        redis: producerConfig.redis,
        queueName,
        tries: 3,
        batchSize: 10,
        warn: (message) => warnings.push(message),
      }),
    );
    for (const sink of sinks) defer(() => sink.close());
    for (const sink of sinks) await sink.ping();
    expect(warnings).toEqual([
      `Redis at ${producerAddress} is not durable: appendonly no, so a Redis crash or restart loses every queued activity; set appendonly yes and appendfsync everysec`,
    ]);
    for (const sink of sinks) {
      expect(sink.durability()).toMatchObject({ durable: false, appendonly: 'no', appendfsync: 'everysec' });
    }

    const workerAddress = await freshAddress(defer);
    const workerConfig = queueConfig(queueName, { REDIS_URL: workerAddress });
    const workerWarnings: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const store = createStore(workerConfig.database);
      defer(() => store.close());
      const worker = new ActivityWorker({ config: workerConfig, store });
      defer(() => worker.close());
      const seen: string[] = [];
      worker.events.on('warning', (warning) => seen.push(warning.message));
      await worker.start();
      workerWarnings.push(seen.filter((message) => message.includes('durable')));
    }
    expect(workerWarnings).toEqual([
      [
        `Redis at ${workerAddress} is not durable: appendonly no, so a Redis crash or restart loses every queued activity; set appendonly yes and appendfsync everysec`,
      ],
      [],
    ]);
  });

  it('GET /health reports the queue as not durable, with the reason, and stays 200', async ({ defer }) => {
    const queueName = uniqueQueueName('durability-health');
    defer(() => removeQueue(queueConfig(queueName), queueName));
    const spoolDir = await temporaryDirectory(defer, 'activity-log-durability-');
    const composed = composeActivityLog({
      env: {
        QUEUE_CONNECTION: 'redis',
        REDIS_URL: await freshAddress(defer),
        ACTIVITY_LOG_METHOD: 'queue',
        ACTIVITY_LOG_QUEUE_NAME: queueName,
        DATABASE_URL: 'sqlite::memory:',
        ACTIVITY_LOG_SPOOL_DIR: spoolDir,
      },
    });
    const { activityLog } = composed;
    defer(() => activityLog.close());
    const app = createActivityLogServer(composed);
    defer(() => app.close());

    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toMatchObject({
      status: 'ok',
      queue: {
        ok: true,
        durable: false,
        durability:
          'not durable: appendonly no, so a Redis crash or restart loses every queued activity; set appendonly yes and appendfsync everysec',
      },
    });
  });
});
