import { afterEach, describe, expect, it } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { ActivityLogError } from '../../src/core/errors.js';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { ActivityWorker, type JobFailedEvent, type StoredEvent } from '../../src/delivery/worker.js';
import { MemoryStore } from '../helpers/memory-sink.js';
import { enqueue, queueConfig, removeQueue, sampleActivities, uniqueQueueName } from '../helpers/queue.js';
import { REDIS, serviceAvailable } from '../helpers/services.js';

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
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function setUp(label: string, env: Record<string, string> = {}) {
    const queueName = uniqueQueueName(label);
    const config = queueConfig(queueName, env);
    cleanups.push(() => removeQueue(config, queueName));
    return config;
  }

  it('stores ready jobs merged into multi-row inserts, every activity once', async () => {
    const config = setUp('merge', { ACTIVITY_LOG_BATCH_SIZE: '100' });
    const activities = sampleActivities(1000);
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
    cleanups.push(() => admin.close());
    expect((await admin.counts()).storedActivities).toBe(1000);
  });

  it('fails a job after its tries, lists it with the error, and stores it once after retry', async () => {
    const config = setUp('failing', { ACTIVITY_LOG_TRIES: '2' });
    const activities = sampleActivities(30);
    await enqueue(config, [activities]);

    const store = new FlakyStore();
    store.failing = new ActivityLogError('STORE_DATA_TOO_LONG', 'description does not fit its column');
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
    cleanups.push(() => admin.close());
    const failed = await admin.listFailed();
    expect(failed).toHaveLength(1);
    expect(failed[0]!.attempts).toBe(2);
    expect(failed[0]!.activities).toBe(30);
    expect(failed[0]!.error).toContain('STORE_DATA_TOO_LONG');

    expect(await admin.retry([failed[0]!.id, 'no-such-job'])).toEqual({
      retried: [failed[0]!.id],
      missing: ['no-such-job'],
    });
    store.failing = null;
    const again = new ActivityWorker({ config, store, stopWhenEmpty: true });
    await again.start();
    expect((await again.done).jobs).toBe(1);
    expect(store.rows.size).toBe(30);
    expect(store.insertSizes).toEqual([30]);
    expect((await admin.counts()).failed).toBe(0);
  });

  it('does not let one bad job fail the jobs merged with it', async () => {
    const config = setUp('isolate', { ACTIVITY_LOG_TRIES: '1' });
    const good = sampleActivities(20);
    const bad = sampleActivities(5, 1000);
    await enqueue(config, [good.slice(0, 10), bad, good.slice(10)]);

    const store = new FlakyStore();
    const badIds = new Set(bad.map((a) => a.id));
    store.insertMany = async function (this: FlakyStore, batch: readonly Activity[]) {
      if (batch.some((a) => badIds.has(a.id))) throw new ActivityLogError('STORE_DATA_TOO_LONG', 'too long');
      return MemoryStore.prototype.insertMany.call(this, batch);
    };
    const worker = new ActivityWorker({ config, store, stopWhenEmpty: true, concurrency: 1 });
    await worker.start();
    const summary = await worker.done;
    expect(summary.jobs).toBe(2);
    expect(summary.failedJobs).toBe(1);
    expect(store.rows.size).toBe(20);
  });

  it('fails an attempt that runs past --timeout', async () => {
    const config = setUp('timeout', { ACTIVITY_LOG_TRIES: '1', ACTIVITY_LOG_RETRY_AFTER: '10' });
    await enqueue(config, [sampleActivities(3)]);
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

  it('counts --max-jobs exactly and leaves the rest queued', async () => {
    const config = setUp('max-jobs');
    await enqueue(
      config,
      Array.from({ length: 10 }, (_, i) => sampleActivities(5, i * 5)),
    );
    const store = new FlakyStore();
    const worker = new ActivityWorker({ config, store, maxJobs: 3, concurrency: 4 });
    await worker.start();
    const summary = await worker.done;
    expect(summary.reason).toBe('max-jobs');
    expect(summary.jobs).toBe(3);
    expect(store.rows.size).toBe(15);
    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    cleanups.push(() => admin.close());
    expect((await admin.counts()).waiting).toBe(7);
  });

  it('moves a job that is not an activity job to the failed set without retrying it', async () => {
    const config = setUp('invalid');
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
  });

  it('stops when restart is requested after it started, not before', async () => {
    const config = setUp('restart');
    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    cleanups.push(() => admin.close());
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
