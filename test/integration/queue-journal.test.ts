import { readdir } from 'node:fs/promises';
import { describe, expect } from 'vitest';
import { ActivityWorker } from '../../src/delivery/worker.js';
import { resilienceOf } from '../../src/resilience/resilient-sink.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { migratedTable } from '../helpers/mariadb-table.js';
import { startPrivateRedis } from '../helpers/private-redis.js';
import { uniqueQueueName, waitFor } from '../helpers/queue.js';
import { MARIADB, REDIS, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it } from '../helpers/test-context.js';

const mariadbUp = await serviceAvailable(MARIADB);
// The shared Redis stands for the redis-server binary being installed.
const redisUp = await serviceAvailable(REDIS);

async function segments(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => name.endsWith('.seg'));
  } catch {
    return [];
  }
}

describe.skipIf(!mariadbUp || !redisUp)(
  'queue with ACTIVITY_LOG_DURABILITY=disk (a private Redis without persistence)',
  () => {
    it('a Redis killed with SIGKILL before any worker ran loses nothing whose log() resolved: the journal enqueues it again', async ({
      deferQuietly,
    }) => {
      const redis = await startPrivateRedis();
      deferQuietly(() => redis.close());
      const { table, count, storedIds, drop } = await migratedTable('queue_journal');
      deferQuietly(drop);
      const spoolDir = await temporaryDirectory(deferQuietly, 'activity-log-queue-journal-');
      const lines: string[] = [];
      const { activityLog, config, delivery, store } = composeActivityLog({
        env: {
          DATABASE_URL: `mysql://root@${MARIADB.host}:${MARIADB.port}/test`,
          ACTIVITY_LOG_TABLE: table,
          QUEUE_CONNECTION: 'redis',
          REDIS_URL: redis.url,
          ACTIVITY_LOG_METHOD: 'queue',
          ACTIVITY_LOG_QUEUE_NAME: uniqueQueueName('journal'),
          ACTIVITY_LOG_DURABILITY: 'disk',
          ACTIVITY_LOG_SPOOL_DIR: spoolDir,
          ACTIVITY_LOG_FLUSH_INTERVAL_MS: '20',
          ACTIVITY_LOG_BATCH_SIZE: '100',
          ACTIVITY_LOG_BREAKER_COOLDOWN_MS: '500',
        },
        warn: (line) => lines.push(line),
      });
      deferQuietly(() => activityLog.close());
      const resilience = resilienceOf(delivery)!;

      const logged: string[] = [];
      for (let i = 0; i < 20; i++) {
        const batch = await activityLog.logMany(
          Array.from({ length: 50 }, (_, j) => ({
            description: `journaled ${i * 50 + j}`,
            logName: 'journal',
          })),
        );
        logged.push(...batch.map((activity) => activity.id));
      }
      // Enqueued, and kept in the journal: no worker has stored them yet.
      // An enqueue may time out once on a loaded machine (the private Redis loading BullMQ's
      // scripts): the segment is then replayed after the breaker's cooldown.
      await waitFor(
        () => resilience.pending() === 0 && resilience.spool.held().length > 0,
        30_000,
        () =>
          `the journal to be enqueued (${resilience.pending()} pending, ${resilience.spool.held().length} segments held, breaker ${resilience.breaker.state}; warnings: ${lines.join(' | ') || 'none'})`,
      );
      expect((await segments(spoolDir)).length).toBeGreaterThan(0);

      await redis.kill();
      await redis.restart();
      await waitFor(
        () => lines.some((line) => /lost jobs of spool segment/.test(line)),
        20_000,
        'the loss to be noticed',
      );

      const worker = new ActivityWorker({ config: config, store: store });
      worker.events.on('warning', () => undefined);
      await worker.start();
      deferQuietly(() => worker.close());
      await waitFor(async () => (await count()).n >= logged.length, 20_000, 'the worker to store everything');
      // Once stored, the journal lets go of it.
      await waitFor(
        async () => (await segments(spoolDir)).length === 0,
        10_000,
        'the journal to be released',
      );
      await worker.close();

      const stored = await storedIds();
      expect(logged.filter((id) => !stored.has(id))).toEqual([]);
      expect(await count()).toEqual({ n: logged.length, d: logged.length });
    });
  },
);
