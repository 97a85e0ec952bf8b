import { Cluster } from 'ioredis';
import { describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { metricsKeys } from '../../src/delivery/queue-keys.js';
import {
  closeRedis,
  connectRedis,
  createRedisClient,
  describeRedis,
  whenConnected,
} from '../../src/delivery/redis-connection.js';
import { readRedisDurability } from '../../src/delivery/redis-durability.js';
import { ActivityWorker } from '../../src/delivery/worker.js';
import { RedisAlertState } from '../../src/metrics/alerts.js';
import type { PerformanceSnapshot } from '../../src/metrics/snapshot.js';
import { connectMonitoringReader } from '../../src/runtime/start-monitoring.js';
import { MemoryStore } from '../helpers/memory-sink.js';
import { enqueueSampleJobs, testQueue, waitFor } from '../helpers/queue.js';
import { type CliProcess, queueTestTable, runCli, spawnCli, type TestTable } from '../helpers/queue-cli.js';
import { availableRedisTargets } from '../helpers/redis-cluster.js';
import { MARIADB, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

/*
 * The queue's key behaviours on a single Redis and on a Redis Cluster (REDIS_CLUSTER_NODES) alike:
 * every key carries the {activity-log} hash tag, so nothing may need to change between the two.
 */
const targets = await availableRedisTargets();
const mariadbUp = await serviceAvailable(MARIADB);

describe.each(targets)('the queue on a $name', (target) => {
  async function counts(table: TestTable) {
    const admin = await QueueAdmin.connect(table.config.redis, table.config.queueName);
    try {
      return await admin.counts();
    } finally {
      await admin.close();
    }
  }

  function spawnWorker(defer: TestScope['defer'], env: Record<string, string>): CliProcess {
    const worker = spawnCli(['work'], env);
    defer(async () => {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    });
    return worker;
  }

  it('connects through the configured kind of client', async ({ defer }) => {
    const config = testQueue(defer, 'kind', target.env);
    const redis = createRedisClient(config.redis, 'command', { lazyConnect: true });
    defer(() => closeRedis(redis));
    await connectRedis(redis, config.redis);
    expect(redis instanceof Cluster).toBe('REDIS_CLUSTER_NODES' in target.env);
    // No persistence on the test servers: every node says so.
    const durability = await readRedisDurability(redis);
    expect(durability.durable).toBe(false);
    if (redis instanceof Cluster) expect(durability.description).toMatch(/\(6 of 6 cluster nodes\)$/);
  });

  it('stores every enqueued activity exactly once with an in-process worker', async ({ defer }) => {
    const config = testQueue(defer, 'once', { ...target.env, ACTIVITY_LOG_BATCH_SIZE: '100' });
    const activities = await enqueueSampleJobs(config, 40, 25);
    const store = new MemoryStore();
    const worker = new ActivityWorker({ config, store, stopWhenEmpty: true, concurrency: 2 });
    await worker.start();
    const summary = await worker.done;
    expect(summary).toMatchObject({ reason: 'empty', jobs: 40, activities: 1000, inserted: 1000 });
    expect(store.rows.size).toBe(1000);
    for (const activity of activities) expect(store.rows.get(activity.id)).toEqual(activity);
    const admin = await QueueAdmin.connect(config.redis, config.queueName);
    defer(() => admin.close());
    expect(await admin.counts()).toMatchObject({ storedActivities: 1000, waiting: 0, failed: 0 });
  });

  it('keeps alert state: one of two callers gets "fire", one "resolve"', async ({ defer }) => {
    const config = testQueue(defer, 'alerts', target.env);
    const redis = createRedisClient(config.redis, 'metrics');
    defer(() => closeRedis(redis));
    await whenConnected(redis, 5000);
    const keyOf = (rule: string) => metricsKeys(config.queueName).alert(rule);
    const a = new RedisAlertState(redis, keyOf);
    const b = new RedisAlertState(redis, keyOf);
    const fired = await Promise.all([
      a.transition('queue_size', true, 1000, 500),
      b.transition('queue_size', true, 1000, 500),
    ]);
    expect(fired.sort()).toEqual(['fire', 'none']);
    expect(await b.transition('queue_size', true, 1500, 500)).toBe('renotify');
    const resolved = await Promise.all([
      a.transition('queue_size', false, 1700, 500),
      b.transition('queue_size', false, 1700, 500),
    ]);
    expect(resolved.sort()).toEqual(['none', 'resolve']);
  });

  describe.skipIf(!mariadbUp)('with the CLI and MariaDB', () => {
    it('failed lists a job that kept failing, retry stores it once, flush deletes the rest', async ({
      defer,
    }) => {
      const table = await queueTestTable(defer, 'failed', target.env);
      await enqueueSampleJobs(table.config, 3, 10);
      // The table does not exist yet, so every insert is refused.
      expect((await runCli(['work', '--tries=1', '--stop-when-empty'], table.env)).code).toBe(0);
      const failed = JSON.parse((await runCli(['failed', '--json'], table.env)).stdout) as { id: string }[];
      expect(failed).toHaveLength(3);

      await table.migrate();
      const retried = await runCli(['retry', failed[0]!.id], table.env);
      expect(retried.stdout, retried.stderr).toBe('retried 1 job\n');
      expect((await runCli(['work', '--stop-when-empty'], table.env)).code).toBe(0);
      expect(await table.count()).toEqual({ rows: 10, distinct: 10 });

      const flushed = await runCli(['flush'], table.env);
      expect(flushed.stdout, flushed.stderr).toBe('deleted 2 failed jobs\n');
      expect((await counts(table)).failed).toBe(0);
      expect((await runCli(['failed'], table.env)).stdout).toBe('no failed jobs\n');
    });

    it('lists both workers in the snapshot with the cross-process totals, and restart stops both', async ({
      deferQuietly,
    }) => {
      const table = await queueTestTable(deferQuietly, 'snap', {
        ...target.env,
        ACTIVITY_LOG_SPOOL_DIR: await temporaryDirectory(deferQuietly, 'queue-cluster-'),
      });
      await table.migrate();
      const reader = await connectMonitoringReader(table.config);
      deferQuietly(() => reader.close());
      const workers = [spawnWorker(deferQuietly, table.env), spawnWorker(deferQuietly, table.env)];
      await waitFor(async () => (await reader.snapshot()).data.workers.length === 2, 30_000, 'two workers');

      const N = 400;
      await enqueueSampleJobs(table.config, 40, N / 40);
      await waitFor(
        async () => (await reader.snapshot()).data.total_processed === N,
        30_000,
        `${N} activities processed`,
      );
      expect(await table.count()).toEqual({ rows: N, distinct: N });
      await waitFor(
        async () =>
          (await reader.snapshot()).data.workers.reduce((sum, worker) => sum + worker.stored, 0) === N,
        10_000,
        'the workers to report what they stored',
      );
      const status = await runCli(['status', '--json'], table.env);
      expect(status.code, status.stderr).toBe(0);
      const { data } = JSON.parse(status.stdout) as PerformanceSnapshot;
      expect(data.source).toBe('redis');
      expect(data.total_processed).toBe(N);
      expect(new Set(data.workers.map((worker) => worker.pid))).toEqual(
        new Set(workers.map((worker) => worker.child.pid)),
      );

      const restart = await runCli(['restart'], table.env);
      expect(restart.code, restart.stderr).toBe(0);
      for (const worker of workers) {
        expect(await worker.exited).toEqual({ code: 0, signal: null });
        expect(worker.stdout()).toContain('worker stopped (restart requested)');
      }
    }, 60_000);
  });
});

describe('REDIS_CLUSTER_NODES', () => {
  it('wins over REDIS_URL: the nodes are described, not the URL', () => {
    const config = loadConfig({
      env: { REDIS_URL: 'redis://10.0.0.9:6379', REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2' },
    });
    expect(describeRedis(config.redis)).toBe('redis://127.0.0.1:1,127.0.0.1:2 (cluster)');
  });

  it('fails a command with one line naming the nodes when none answers', async () => {
    const config = loadConfig({ env: { QUEUE_CONNECTION: 'redis', REDIS_CLUSTER_NODES: '127.0.0.1:1' } });
    await expect(QueueAdmin.connect(config.redis, 'any')).rejects.toThrow(
      /^Redis at redis:\/\/127\.0\.0\.1:1 \(cluster\) is not reachable: /,
    );
  });
});
