import { Redis } from 'ioredis';
import { describe, expect } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { ActivityLogError } from '../../src/core/errors.js';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { QUEUE_PREFIX } from '../../src/delivery/queue-keys.js';
import {
  ActivityWorker,
  type JobFailedEvent,
  type JobsRefusedEvent,
  type StoredEvent,
} from '../../src/delivery/worker.js';
import { Spool } from '../../src/resilience/spool.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { MemoryStore } from '../helpers/memory-sink.js';
import {
  enqueue,
  queueConfig,
  REDIS_URL,
  removeQueue,
  testQueue,
  uniqueQueueName,
  waitFor,
} from '../helpers/queue.js';
import { REDIS, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it } from '../helpers/test-context.js';

const redisUp = await serviceAvailable(REDIS);

/** A store whose inserts fail while `failing` is set, with a given error code. */
class FlakyStore extends MemoryStore {
  failing: ActivityLogError | null = null;
  readonly insertSizes: number[] = [];

  override async insertMany(activities: readonly Activity[]): Promise<number> {
    if (this.failing !== null) throw this.failing;
    this.insertSizes.push(activities.length);
    return super.insertMany(activities);
  }
}

describe.skipIf(!redisUp)('queue worker (in-process, real Redis)', () => {
  it('stores ready jobs merged into multi-row inserts, every activity once', async ({ defer }) => {
    const config = testQueue(defer, 'merge', { ACTIVITY_LOG_BATCH_SIZE: '100' });
    const activities = builtActivities(1000);
    const batches = Array.from({ length: 40 }, (_, i) => activities.slice(i * 25, i * 25 + 25));
    await enqueue(config, batches);

    const store = new FlakyStore();
    const worker = new ActivityWorker({ config, store, stopWhenEmpty: true, concurrency: 1 });
    const stored: StoredEvent[] = [];
    worker.events.on('stored', (event) => stored.push(event));
    await worker.start();
    const summary = await worker.done;

    expect(summary.reason).toBe('empty');
    expect(summary.jobs).toBe(40);
    expect(summary.activities).toBe(1000);
    expect(summary.inserted).toBe(1000);
    expect(store.rows.size).toBe(1000);
    // 25-activity jobs merged four at a time up to the batch size of 100.
    expect(store.insertSizes.every((size) => size <= 100)).toBe(true);
    expect(store.insertSizes.length).toBeLessThan(40);
    expect(stored.some((event) => event.jobIds.length > 1)).toBe(true);
    for (const activity of activities) expect(store.rows.get(activity.id)).toEqual(activity);

    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    defer(() => admin.close());
    expect((await admin.counts()).storedActivities).toBe(1000);
  });

  it('fails a job after its tries, lists it with the error, and stores it once after retry', async ({
    defer,
  }) => {
    const config = testQueue(defer, 'failing', { ACTIVITY_LOG_TRIES: '2' });
    const activities = builtActivities(30);
    await enqueue(config, [activities]);

    const store = new FlakyStore();
    store.failing = new ActivityLogError('STORE_FAILED', 'ER_TRG_DOES_NOT_EXIST: the trigger is broken');
    const failures: JobFailedEvent[] = [];
    const worker = new ActivityWorker({ config, store, stopWhenEmpty: true });
    worker.events.on('jobFailed', (event) => failures.push(event));
    await worker.start();
    const summary = await worker.done;

    expect(failures.map((f) => [f.attempt, f.willRetry])).toEqual([
      [1, true],
      [2, false],
    ]);
    expect(summary.failedJobs).toBe(1);
    expect(summary.retriedJobs).toBe(1);
    expect(store.rows.size).toBe(0);

    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    defer(() => admin.close());
    const failed = await admin.listFailed();
    expect(failed).toHaveLength(1);
    expect(failed[0]!.attempts).toBe(2);
    expect(failed[0]!.activities).toBe(30);
    expect(failed[0]!.error).toContain('STORE_FAILED');

    // As if it had also stalled: a retried job starts with no stalls counted against it.
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    defer(async () => redis.disconnect());
    const jobKey = `${QUEUE_PREFIX}:${config.queueName}:${failed[0]!.id}`;
    await redis.hset(jobKey, 'stc', '2');
    expect(await admin.retry([failed[0]!.id, 'no-such-job'])).toEqual({
      retried: [failed[0]!.id],
      missing: ['no-such-job'],
    });
    expect(await redis.hget(jobKey, 'stc')).toBeNull();
    store.failing = null;
    const again = new ActivityWorker({ config, store, stopWhenEmpty: true });
    await again.start();
    expect((await again.done).jobs).toBe(1);
    expect(store.rows.size).toBe(30);
    expect(store.insertSizes).toEqual([30]);
    expect((await admin.counts()).failed).toBe(0);
  });

  it('stores every honest activity of jobs merged with refused ones, keeps the refused ones aside and completes every job', async ({
    defer,
  }) => {
    const spoolDir = await temporaryDirectory(defer, 'worker-refused-');
    const config = testQueue(defer, 'isolate', { ACTIVITY_LOG_TRIES: '1', ACTIVITY_LOG_SPOOL_DIR: spoolDir });
    const good = builtActivities(20);
    const bad = builtActivities(5, 1000);
    // One refused activity among honest ones in each of three jobs, and a job of refused ones only.
    await enqueue(config, [
      [...good.slice(0, 7), bad[0]!],
      [bad[1]!, ...good.slice(7, 14)],
      [...good.slice(14), bad[2]!],
      bad.slice(3),
    ]);

    const store = new FlakyStore();
    const badIds = new Set(bad.map((a) => a.id));
    const statements: number[] = [];
    store.insertMany = async function (this: FlakyStore, batch: readonly Activity[]) {
      statements.push(batch.length);
      if (batch.some((a) => badIds.has(a.id))) throw new ActivityLogError('STORE_DATA_TOO_LONG', 'too long');
      return MemoryStore.prototype.insertMany.call(this, batch);
    };
    const refused: JobsRefusedEvent[] = [];
    const worker = new ActivityWorker({ config, store, stopWhenEmpty: true, concurrency: 1 });
    worker.events.on('refused', (event) => refused.push(event));
    worker.events.on('warning', () => undefined);
    await worker.start();
    const summary = await worker.done;

    expect(summary.jobs).toBe(4);
    expect(summary.failedJobs).toBe(0);
    expect(summary.refused).toBe(5);
    expect([...store.rows.keys()].sort()).toEqual(good.map((a) => a.id).sort());
    expect(refused.reduce((sum, event) => sum + event.count, 0)).toBe(5);
    // Found by halving: far fewer statements than one per activity.
    expect(statements.length).toBeLessThan(25);
    const spool = new Spool({ dir: spoolDir, maxBytes: 1024 * 1024 });
    defer(() => spool.close());
    const kept = await spool.rejected();
    expect(kept.map((record) => record.activity.id).sort()).toEqual(bad.map((a) => a.id).sort());
    expect(kept.every((record) => record.error.code === 'STORE_DATA_TOO_LONG')).toBe(true);
    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    defer(() => admin.close());
    expect((await admin.counts()).failed).toBe(0);
  });

  it('never splits a job across statements, and isolates a refused activity within its statement', async ({
    defer,
  }) => {
    const spoolDir = await temporaryDirectory(defer, 'worker-whole-jobs-');
    const config = testQueue(defer, 'whole-jobs', {
      ACTIVITY_LOG_TRIES: '1',
      ACTIVITY_LOG_BATCH_SIZE: '5',
      ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    });
    const first = builtActivities(3);
    const second = builtActivities(3, 100);
    await enqueue(config, [first, second]);
    const store = new FlakyStore();
    const bad = second[2]!.id;
    const statements: number[] = [];
    store.insertMany = async function (this: FlakyStore, batch: readonly Activity[]) {
      statements.push(batch.length);
      if (batch.some((a) => a.id === bad)) throw new ActivityLogError('STORE_DATA_TOO_LONG', 'too long');
      return MemoryStore.prototype.insertMany.call(this, batch);
    };
    const worker = new ActivityWorker({ config, store, stopWhenEmpty: true, concurrency: 1 });
    worker.events.on('warning', () => undefined);
    await worker.start();
    const summary = await worker.done;
    // 3 + 3 rows do not fit one 5-row statement: two statements of whole jobs; the refused one is
    // halved into its first two activities and the refused one alone.
    expect(statements).toEqual([3, 3, 2, 1]);
    expect(summary.jobs).toBe(2);
    expect(summary.failedJobs).toBe(0);
    expect(summary.inserted).toBe(5);
    expect(summary.refused).toBe(1);
    expect([...store.rows.keys()].sort()).toEqual([...first, ...second.slice(0, 2)].map((a) => a.id).sort());
  });

  it('keeps renewing the lock of a job fetched again after its lock was lost, and counts it once', async ({
    defer,
  }) => {
    const config = testQueue(defer, 'lost-lock', {
      ACTIVITY_LOG_RETRY_AFTER: '2',
      DB_QUERY_TIMEOUT_MS: '60000',
    });
    const activities = builtActivities(3);
    await enqueue(config, [activities]);
    const releases: (() => void)[] = [];
    const store = new FlakyStore();
    store.insertMany = async function (this: FlakyStore, batch: readonly Activity[]) {
      await new Promise<void>((resolve) => releases.push(resolve));
      return MemoryStore.prototype.insertMany.call(this, batch);
    };
    const worker = new ActivityWorker({
      config,
      store,
      concurrency: 2,
      timeoutSeconds: 30,
      pollIntervalMs: 200,
    });
    const stored: StoredEvent[] = [];
    worker.events.on('stored', (event) => stored.push(event));
    worker.events.on('warning', () => undefined);
    await worker.start();
    defer(async () => {
      await worker.close();
    });
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    defer(async () => redis.disconnect());
    await waitFor(() => releases.length === 1, 5000, 'the first attempt');
    const [jobId] = await redis.lrange(`${QUEUE_PREFIX}:${config.queueName}:active`, 0, -1);
    // The lock is lost (an event-loop stall, a Redis blip): the stalled check puts the job back
    // and this worker takes it again while the first copy is still running.
    await redis.del(`${QUEUE_PREFIX}:${config.queueName}:${jobId}:lock`);
    await waitFor(() => releases.length === 2, 8000, 'the job fetched again');
    releases[0]!();
    await waitFor(() => worker.heldJobs() === 1, 2000, 'the first copy to finish');
    // The second copy runs past the lock duration: its lock must be renewed meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(releases).toHaveLength(2);
    expect(worker.heldJobs()).toBe(1);
    releases[1]!();
    await waitFor(() => worker.heldJobs() === 0, 2000, 'the second copy to finish');
    const summary = await worker.close();
    expect(stored.reduce((sum, event) => sum + event.count, 0)).toBe(3);
    expect(summary.jobs).toBe(1);
    expect(summary.lostJobs).toBe(1);
    expect(store.rows.size).toBe(3);
  }, 20_000);

  it('stops on request while Redis is unreachable instead of waiting for it to come back', async ({
    defer,
  }) => {
    const proxy = await FaultProxy.start(REDIS);
    defer(() => proxy.close());
    const queueName = uniqueQueueName('offline-stop');
    const config = queueConfig(queueName, { REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
    defer(() => removeQueue(queueConfig(queueName), queueName));
    const worker = new ActivityWorker({ config, store: new FlakyStore(), pollIntervalMs: 200 });
    worker.events.on('warning', () => undefined);
    await worker.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await proxy.refuse();
    await new Promise((resolve) => setTimeout(resolve, 300));
    worker.stop('signal');
    const outcome = await Promise.race([
      worker.done.then((summary) => summary.reason),
      new Promise((resolve) => setTimeout(() => resolve('still running after 5 s'), 5000)),
    ]);
    expect(outcome).toBe('signal');
  });

  it('fails an attempt that runs past --timeout', async ({ defer }) => {
    const config = testQueue(defer, 'timeout', { ACTIVITY_LOG_TRIES: '1', ACTIVITY_LOG_RETRY_AFTER: '10' });
    await enqueue(config, [builtActivities(3)]);
    const store = new FlakyStore();
    store.insertMany = () => new Promise<number>(() => {});
    const failures: JobFailedEvent[] = [];
    const worker = new ActivityWorker({ config, store, stopWhenEmpty: true, timeoutSeconds: 1 });
    worker.events.on('jobFailed', (event) => failures.push(event));
    await worker.start();
    await worker.done;
    expect(failures).toHaveLength(1);
    expect(failures[0]!.error.code).toBe('QUEUE_JOB_TIMEOUT');
  });

  it('counts --max-jobs exactly and leaves the rest queued', async ({ defer }) => {
    const config = testQueue(defer, 'max-jobs');
    await enqueue(
      config,
      Array.from({ length: 10 }, (_, i) => builtActivities(5, i * 5)),
    );
    const store = new FlakyStore();
    const worker = new ActivityWorker({ config, store, maxJobs: 3, concurrency: 4 });
    await worker.start();
    const summary = await worker.done;
    expect(summary.reason).toBe('max-jobs');
    expect(summary.jobs).toBe(3);
    expect(store.rows.size).toBe(15);
    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    defer(() => admin.close());
    expect((await admin.counts()).waiting).toBe(7);
  });

  it('moves a job that is not an activity job to the failed set without retrying it', async ({ defer }) => {
    const config = testQueue(defer, 'invalid');
    const { Queue } = await import('bullmq');
    const { QUEUE_PREFIX } = await import('../../src/delivery/queue-keys.js');
    const queue = new Queue(config.queueName, {
      connection: { url: config.redis.url! },
      prefix: QUEUE_PREFIX,
    });
    await queue.add('activities', { something: 'else' }, { attempts: 5 });
    await queue.close();
    const failures: JobFailedEvent[] = [];
    const worker = new ActivityWorker({ config, store: new FlakyStore(), stopWhenEmpty: true });
    worker.events.on('jobFailed', (event) => failures.push(event));
    await worker.start();
    const summary = await worker.done;
    expect(summary.failedJobs).toBe(1);
    expect(failures[0]!.error.code).toBe('QUEUE_JOB_INVALID');
    expect(failures[0]!.attempt).toBe(1);
  });

  it('stops when restart is requested after it started, not before', async ({ defer }) => {
    const config = testQueue(defer, 'restart');
    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    defer(() => admin.close());
    await admin.requestRestart('queue');
    await new Promise((resolve) => setTimeout(resolve, 5));
    const worker = new ActivityWorker({ config, store: new FlakyStore(), pollIntervalMs: 200 });
    await worker.start();
    let stopped = false;
    void worker.done.then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(stopped).toBe(false);
    await admin.requestRestart('queue');
    const summary = await worker.done;
    expect(summary.reason).toBe('restart');
  });

  it('refuses to start with a clear error when Redis is unreachable', async () => {
    const config = queueConfig('unreachable', { REDIS_URL: 'redis://127.0.0.1:1' });
    const worker = new ActivityWorker({ config, store: new FlakyStore() });
    await expect(worker.start()).rejects.toMatchObject({
      code: 'QUEUE_UNAVAILABLE',
      message: expect.stringContaining('redis://127.0.0.1:1'),
    });
  });
});
