import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { closeRedis, createRedisClient } from '../../src/delivery/redis-connection.js';
import { ActivityWorker, type JobFailedEvent } from '../../src/delivery/worker.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { ClusterReader } from '../../src/metrics/redis-metrics.js';
import { resilienceOf } from '../../src/resilience/resilient-sink.js';
import { composeActivityLog, createActivityLog } from '../../src/runtime/create-activity-log.js';
import { createStore } from '../../src/store/create-store.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { type MigratedTable, migratedTable } from '../helpers/mariadb-table.js';
import { enqueue, queueConfig, removeQueue, testQueue, uniqueQueueName, waitFor } from '../helpers/queue.js';
import { MARIADB, MYSQL_URL, REDIS, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const servicesUp = (await serviceAvailable(REDIS)) && (await serviceAvailable(MARIADB));

const COOLDOWN_MS = 400;
/** Longer than every Redis command timeout, so each connection open when Redis went silent times out. */
const SILENT_REDIS_MS = 12_000;

describe.skipIf(!servicesUp)('resilience of the queue path (real Redis and MariaDB, fault proxy)', () => {
  /** A migrated MariaDB table of its own, dropped after the test. */
  async function activityTable(
    deferQuietly: TestScope['deferQuietly'],
    label: string,
  ): Promise<MigratedTable> {
    const table = await migratedTable(`rq_${label}`);
    deferQuietly(table.drop);
    return table;
  }

  it('producer: while Redis is refused, log() resolves at once, the queue breaker opens and activities are spooled; once Redis is back they are enqueued and stored exactly once', async ({
    deferQuietly,
  }) => {
    const queueName = uniqueQueueName('producer-outage');
    const { table, count } = await activityTable(deferQuietly, 'producer');
    const proxy = await FaultProxy.start(REDIS);
    deferQuietly(() => proxy.close());
    const spoolDir = await temporaryDirectory(deferQuietly, 'activity-log-rq-');
    const direct = queueConfig(queueName, { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: table });
    deferQuietly(() => removeQueue(direct, queueName));

    const { activityLog, delivery } = composeActivityLog({
      env: {
        QUEUE_CONNECTION: 'redis',
        REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
        ACTIVITY_LOG_METHOD: 'queue',
        ACTIVITY_LOG_QUEUE_NAME: queueName,
        DATABASE_URL: MYSQL_URL,
        ACTIVITY_LOG_TABLE: table,
      },
      config: {
        batchSize: 50,
        flushIntervalMs: 10,
        breakerFailures: 2,
        breakerCooldownMs: COOLDOWN_MS,
        spoolDir,
      },
    });
    deferQuietly(() => activityLog.close());
    const resilience = resilienceOf(delivery)!;
    expect(resilience.breaker.name).toBe('queue');
    const transitions: string[] = [];
    resilience.breaker.events.on('stateChange', ({ from, to }) => transitions.push(`${from}→${to}`));
    let spooled = 0;
    resilience.bus.on('spooled', ({ count: n }) => {
      spooled += n;
    });

    const ids: string[] = [];
    const latencies: number[] = [];
    const logSome = async (n: number, from: number) => {
      for (let i = from; i < from + n; i++) {
        const started = performance.now();
        const activity = await activityLog.log({
          description: `post ${i} edited`,
          subject: { type: 'Post', id: i },
        });
        latencies.push(performance.now() - started);
        ids.push(activity.id);
        if (i % 10 === 0) await sleep(5);
      }
    };

    await logSome(100, 0);
    await proxy.refuse();
    await logSome(300, 100);
    await waitFor(() => transitions.includes('closed→open'), 10_000, 'the queue breaker to open');
    await waitFor(() => spooled > 0, 10_000, 'activities to be spooled');
    await logSome(100, 400);
    // The producer never waits on Redis: log() only appends to the in-process buffer.
    expect(Math.max(...latencies)).toBeLessThan(1000);

    await proxy.pass();
    const admin = await QueueAdmin.connect(direct.redis, queueName);
    deferQuietly(() => admin.close());
    await waitFor(
      () => resilience.pending() === 0 && transitions.at(-1) === 'half_open→closed',
      20_000,
      'the spool to be replayed into the queue',
    );
    await activityLog.close();

    const store = createStore(direct.database);
    deferQuietly(() => store.close());
    const worker = new ActivityWorker({ config: direct, store, stopWhenEmpty: true });
    await worker.start();
    const summary = await worker.done;
    expect(summary.failedJobs).toBe(0);
    expect(await count()).toEqual({ n: ids.length, d: ids.length });
    expect(new Set(ids).size).toBe(500);
    expect(spooled).toBeGreaterThan(0);
    expect(transitions).toContain('open→half_open');
  });

  it('producer and worker: after Redis went silent (a dead server behind a load balancer) for longer than the command timeout, both reconnect within seconds of it answering again and every activity is stored once', async ({
    deferQuietly,
  }) => {
    const queueName = uniqueQueueName('silent-redis');
    const { table, count } = await activityTable(deferQuietly, 'silent');
    const proxy = await FaultProxy.start(REDIS);
    deferQuietly(() => proxy.close());
    const spoolDir = await temporaryDirectory(deferQuietly, 'activity-log-rq-');
    const env = {
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      DATABASE_URL: MYSQL_URL,
      ACTIVITY_LOG_TABLE: table,
    };
    const viaProxy = queueConfig(queueName, env);
    deferQuietly(() => removeQueue(queueConfig(queueName), queueName));

    const activityLog = createActivityLog({
      env: {
        QUEUE_CONNECTION: 'redis',
        ACTIVITY_LOG_METHOD: 'queue',
        ACTIVITY_LOG_QUEUE_NAME: queueName,
        ...env,
      },
      config: {
        batchSize: 50,
        flushIntervalMs: 10,
        breakerFailures: 2,
        breakerCooldownMs: COOLDOWN_MS,
        spoolDir,
      },
    });
    deferQuietly(() => activityLog.close());
    const store = createStore(viaProxy.database);
    deferQuietly(() => store.close());
    const worker = new ActivityWorker({ config: viaProxy, store, pollIntervalMs: 200 });
    deferQuietly(() => worker.close());
    await worker.start();

    const ids: string[] = [];
    const logSome = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const activity = await activityLog.log({
          description: `post ${ids.length} edited`,
          subject: { type: 'Post', id: ids.length },
        });
        ids.push(activity.id);
      }
    };
    await logSome(100);
    await waitFor(async () => (await count()).n === 100, 15_000, 'the first activities to be stored');

    // The connections stay open and carry nothing, now and after the server is back.
    await proxy.blackhole({ sticky: true });
    const silentUntil = Date.now() + SILENT_REDIS_MS;
    while (Date.now() < silentUntil) {
      await logSome(10);
      await sleep(250);
    }
    expect((await count()).n).toBe(100);

    await proxy.pass();
    const answering = performance.now();
    await logSome(100);
    await waitFor(
      async () => (await count()).n === ids.length,
      30_000,
      'the activities logged while Redis was silent, and after, to be stored',
    );
    const recoverySeconds = (performance.now() - answering) / 1000;
    expect(recoverySeconds).toBeLessThan(15);
    expect(await count()).toEqual({ n: ids.length, d: ids.length });
    const admin = await QueueAdmin.connect(queueConfig(queueName).redis, queueName);
    deferQuietly(() => admin.close());
    await waitFor(() => worker.heldJobs() === 0, 10_000, 'the worker to complete the jobs it stored');
    expect(await admin.counts()).toMatchObject({ waiting: 0, delayed: 0, active: 0, failed: 0 });
  }, 90_000);

  it('worker: while MariaDB is refused, jobs wait in Redis with their tries intact; a probe after the cooldown resumes the work and every activity is stored once', async ({
    deferQuietly,
  }) => {
    const { table, count } = await activityTable(deferQuietly, 'worker');
    const proxy = await FaultProxy.start(MARIADB);
    deferQuietly(() => proxy.close());
    const config = testQueue(deferQuietly, 'worker-outage', {
      DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`,
      ACTIVITY_LOG_TABLE: table,
      ACTIVITY_LOG_TRIES: '2',
      ACTIVITY_LOG_BREAKER_FAILURES: '2',
      ACTIVITY_LOG_BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
      DB_CONNECT_TIMEOUT_MS: '500',
      DB_QUERY_TIMEOUT_MS: '1000',
    });
    const activities = builtActivities(1000);
    await enqueue(
      config,
      Array.from({ length: 20 }, (_, i) => activities.slice(i * 50, i * 50 + 50)),
    );

    await proxy.refuse();
    const store = createStore(config.database);
    deferQuietly(() => store.close());
    const worker = new ActivityWorker({ config, store, pollIntervalMs: 200 });
    deferQuietly(() => worker.close());
    const failures: JobFailedEvent[] = [];
    let returned = 0;
    worker.events.on('jobFailed', (event) => failures.push(event));
    worker.events.on('jobsReturned', (event) => {
      returned += event.jobIds.length;
    });
    const transitions: string[] = [];
    worker.breaker.events.on('stateChange', ({ from, to }) => transitions.push(`${from}→${to}`));
    await worker.start();

    await waitFor(() => transitions.includes('closed→open'), 10_000, 'the store breaker to open');
    // Several cooldowns pass with failing probes; not one try is used.
    await sleep(COOLDOWN_MS * 4);
    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    deferQuietly(() => admin.close());
    const during = await admin.counts();
    expect(failures).toEqual([]);
    expect(returned).toBeGreaterThan(0);
    expect(during.failed).toBe(0);
    expect(during.waiting + during.active).toBe(20);
    expect(transitions.filter((t) => t === 'half_open→open').length).toBeGreaterThan(0);

    await proxy.pass();
    await waitFor(async () => (await count()).n === 1000, 20_000, 'every activity to be stored');
    const summary = await worker.close();
    expect(summary.jobs).toBe(20);
    expect(summary.failedJobs).toBe(0);
    expect(summary.retriedJobs).toBe(0);
    expect(await count()).toEqual({ n: 1000, d: 1000 });
    expect(transitions.at(-1)).toBe('half_open→closed');
  });

  /** A queue whose workers write to a table of their own behind a MariaDB proxy that refuses connections. */
  async function queueOverRefusedMariadb(
    deferQuietly: TestScope['deferQuietly'],
    label: string,
    env: Record<string, string> = {},
  ) {
    const { table } = await activityTable(deferQuietly, label);
    const proxy = await FaultProxy.start(MARIADB);
    deferQuietly(() => proxy.close());
    await proxy.refuse();
    const config = testQueue(deferQuietly, `${label}-outage`, {
      DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`,
      ACTIVITY_LOG_TABLE: table,
      DB_CONNECT_TIMEOUT_MS: '500',
      ...env,
    });
    return { config, queueName: config.queueName };
  }

  it('worker --stop-when-empty: with MariaDB refused it stops as store-unavailable and leaves every job waiting, tries intact', async ({
    deferQuietly,
  }) => {
    const { config, queueName } = await queueOverRefusedMariadb(deferQuietly, 'drain', {
      ACTIVITY_LOG_BREAKER_FAILURES: '2',
    });
    const activities = builtActivities(200);
    await enqueue(config, [activities.slice(0, 100), activities.slice(100)]);

    const store = createStore(config.database);
    deferQuietly(() => store.close());
    const worker = new ActivityWorker({ config, store, stopWhenEmpty: true });
    await worker.start();
    const summary = await worker.done;
    expect(summary.reason).toBe('store-unavailable');
    expect(summary.failedJobs).toBe(0);
    expect(summary.jobs).toBe(0);

    const admin = await QueueAdmin.connect(config.redis, queueName);
    deferQuietly(() => admin.close());
    const counts = await admin.counts();
    expect(counts.waiting).toBe(2);
    expect(counts.failed).toBe(0);
  });
  it('worker --once: with MariaDB refused, the default breaker still closed, it stops as store-unavailable and hands its job back', async ({
    deferQuietly,
  }) => {
    const { config, queueName } = await queueOverRefusedMariadb(deferQuietly, 'once');
    await enqueue(config, [builtActivities(10)]);
    const store = createStore(config.database);
    deferQuietly(() => store.close());
    const worker = new ActivityWorker({ config, store, once: true });
    await worker.start();
    const summary = await worker.done;
    expect(worker.breaker.state).toBe('closed');
    expect(summary).toMatchObject({ reason: 'store-unavailable', jobs: 0, returnedJobs: 1, failedJobs: 0 });
    const admin = await QueueAdmin.connect(config.redis, queueName);
    deferQuietly(() => admin.close());
    expect(await admin.counts()).toMatchObject({ waiting: 1, failed: 0 });
  });

  it('the metrics reader closed while Redis has stopped answering leaves no unhandled rejection', async ({
    deferQuietly,
  }) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    deferQuietly(async () => process.off('unhandledRejection', onUnhandled));
    const proxy = await FaultProxy.start(REDIS);
    deferQuietly(() => proxy.close());
    const config = queueConfig(uniqueQueueName('reader-close'), {
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
    });
    const redis = createRedisClient(config.redis, 'metrics');
    const ready = new Promise<void>((resolve) => {
      // Redis stops answering the moment the connection is ready: whatever the reader sends while
      // starting up is never answered.
      redis.once('ready', () => {
        void proxy.blackhole();
        resolve();
      });
    });
    const reader = new ClusterReader(redis, config.queueName);
    await ready;
    await reader.close();
    await closeRedis(redis);
    await waitFor(() => redis.status === 'end', 20_000, 'the client to close');
    // Rejections are reported after the microtasks that could still handle them.
    await sleep(100);
    expect(unhandled).toEqual([]);
  });

  it('a worker stopped as soon as it started leaves no unhandled rejection', async ({ deferQuietly }) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    deferQuietly(async () => process.off('unhandledRejection', onUnhandled));
    const proxy = await FaultProxy.start(REDIS);
    deferQuietly(() => proxy.close());
    // A slow network: each connection takes a while to open.
    proxy.latencyMs = 50;
    const queueName = uniqueQueueName('quick-stop');
    const config = queueConfig(queueName, { REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    deferQuietly(() => removeQueue(queueConfig(queueName), queueName));
    const store = createStore(config.database);
    deferQuietly(() => store.close());
    const worker = new ActivityWorker({ config, store });
    worker.events.on('warning', () => undefined);
    await worker.start();
    expect(await worker.close()).toMatchObject({ reason: 'closed', jobs: 0 });
    await sleep(500);
    expect(unhandled).toEqual([]);
  });

  it('GET /health reports Redis with the queue method: 200 while it answers, 503 naming the queue when it is refused', async ({
    deferQuietly,
  }) => {
    const queueName = uniqueQueueName('health');
    const proxy = await FaultProxy.start(REDIS);
    deferQuietly(() => proxy.close());
    const spoolDir = await temporaryDirectory(deferQuietly, 'activity-log-rq-');
    const composed = composeActivityLog({
      env: {
        QUEUE_CONNECTION: 'redis',
        REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
        ACTIVITY_LOG_METHOD: 'queue',
        ACTIVITY_LOG_QUEUE_NAME: queueName,
        DATABASE_URL: 'sqlite::memory:',
        ACTIVITY_LOG_SPOOL_DIR: spoolDir,
      },
    });
    const { activityLog } = composed;
    deferQuietly(() => activityLog.close());
    const app = createActivityLogServer(composed);
    deferQuietly(() => app.close());

    const healthy = await app.inject({ method: 'GET', url: '/health' });
    expect(healthy.statusCode).toBe(200);
    expect(healthy.json()).toMatchObject({ status: 'ok', queue: { ok: true }, breaker: { name: 'queue' } });

    await proxy.refuse();
    const down = await app.inject({ method: 'GET', url: '/health' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({
      status: 'unavailable',
      failing: ['queue'],
      queue: { ok: false, error: { code: 'QUEUE_UNAVAILABLE' } },
      store: { ok: true },
    });
  });
});
