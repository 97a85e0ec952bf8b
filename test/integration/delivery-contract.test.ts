import mysql from 'mysql2/promise';
import { describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import { isActivityLogError } from '../../src/core/errors.js';
import { ActivityWorker } from '../../src/delivery/worker.js';
import { createActivityLog } from '../../src/index.js';
import { createStore } from '../../src/store/create-store.js';
import { activityInput, activityInputs } from '../helpers/activity-factory.js';
import { REDIS_URL, removeQueue, uniqueQueueName, waitFor } from '../helpers/queue.js';
import { MARIADB, MYSQL_URL, REDIS, serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { type TestScope, test } from '../helpers/test-context.js';

const mariadbUp = await serviceAvailable(MARIADB);
const redisUp = mariadbUp && (await serviceAvailable(REDIS));

/** A delivery method as users configure it, and what it needs besides the database. */
interface Method {
  readonly name: string;
  readonly available: boolean;
  readonly env: (suffix: string) => Record<string, string>;
  /** The method hands activities to a queue: a worker has to store them. */
  readonly queued: boolean;
}

const METHODS: readonly Method[] = [
  { name: 'sync', available: mariadbUp, queued: false, env: () => ({ ACTIVITY_LOG_METHOD: 'sync' }) },
  {
    name: 'batch',
    available: mariadbUp,
    queued: false,
    env: () => ({ ACTIVITY_LOG_METHOD: 'batch', ACTIVITY_LOG_FLUSH_INTERVAL_MS: '20' }),
  },
  {
    name: 'batch, durability=disk',
    available: mariadbUp,
    queued: false,
    env: () => ({
      ACTIVITY_LOG_METHOD: 'batch',
      ACTIVITY_LOG_FLUSH_INTERVAL_MS: '20',
      ACTIVITY_LOG_DURABILITY: 'disk',
    }),
  },
  {
    name: 'queue',
    available: redisUp,
    queued: true,
    env: (suffix) => ({
      ACTIVITY_LOG_METHOD: 'queue',
      QUEUE_CONNECTION: 'redis',
      REDIS_URL,
      ACTIVITY_LOG_QUEUE_NAME: uniqueQueueName(`contract-${suffix}`),
    }),
  },
];

/**
 * The same behaviours asked of every delivery method, against the real MariaDB (and Redis for
 * the queue, drained by a worker): what `log()` resolved is stored once, field for field, under
 * the id `log()` returned; transactions and batches mean the same; close() loses nothing.
 */
describe.each(METHODS.map((method) => [method.name, method] as const))(
  'delivery contract: %s',
  (_name, method) => {
    const it = test.skipIf(!method.available);

    async function setUp(defer: TestScope['defer']) {
      const suffix = uniqueSuffix();
      const table = `delivery_contract_${suffix}`;
      const spoolDir = await temporaryDirectory(defer, 'activity-log-contract-');
      const env = {
        DATABASE_URL: MYSQL_URL,
        ACTIVITY_LOG_TABLE: table,
        ACTIVITY_LOG_SPOOL_DIR: spoolDir,
        ...method.env(suffix),
      };
      const config = loadConfig({ env });
      const db = await mysql.createConnection(MYSQL_URL);
      defer(async () => {
        await db.query(
          `DROP TABLE IF EXISTS \`${table}\`, \`${table}_migrations\`, \`${table}_seals\`, \`${table}_seals_pruned\``,
        );
        await db.end();
      });
      const migrator = createStore(config.database);
      await migrator.migrate();
      await migrator.close();
      if (method.queued) defer(() => removeQueue(config, config.queueName));

      const activityLog = createActivityLog({ env, warn: () => undefined });
      defer(() => activityLog.close());
      const readStore = createStore(config.database);
      defer(() => readStore.close());

      let worker: ActivityWorker | null = null;
      if (method.queued) {
        const workerStore = createStore(config.database);
        worker = new ActivityWorker({ config, store: workerStore, pollIntervalMs: 50 });
        worker.events.on('warning', () => undefined);
        await worker.start();
        defer(async () => {
          await worker?.close();
          await workerStore.close();
        });
      }

      const rowCount = async () => {
        const [rows] = await db.query(`SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM \`${table}\``);
        const [row] = rows as { n: number; ids: number }[];
        return { rows: Number(row!.n), ids: Number(row!.ids) };
      };
      /** Everything handed over so far is written (and, with the queue, taken by the worker). */
      const settle = async (expectedRows: number) => {
        await activityLog.flush();
        await waitFor(async () => (await rowCount()).rows >= expectedRows, 20_000, `${expectedRows} rows`);
        // Give a duplicate a chance to show up before counting.
        await new Promise((resolve) => setTimeout(resolve, 100));
      };
      const storedById = async (ids: readonly string[]) => {
        const page = await readStore.query({ limit: 500 });
        const byId = new Map(page.data.map((activity) => [activity.id, activity]));
        return ids.map((id) => byId.get(id));
      };
      return { activityLog, rowCount, settle, storedById, close: () => activityLog.close() };
    }

    it('stores every activity log() and logMany() resolved, each exactly once, under the id they returned', async ({
      defer,
    }) => {
      const { activityLog, rowCount, settle } = await setUp(defer);
      const single = await Promise.all(activityInputs(120).map((input) => activityLog.log(input)));
      const many: Activity[] = [];
      for (let chunk = 0; chunk < 4; chunk++)
        many.push(...(await activityLog.logMany(activityInputs(30, 1000 + chunk * 30))));
      const returned = new Set([...single, ...many].map((activity) => activity.id));
      expect(returned.size).toBe(240);
      await settle(240);
      expect(await rowCount()).toEqual({ rows: 240, ids: 240 });
    });

    it('stores each field as log() returned it', async ({ defer }) => {
      const { activityLog, settle, storedById } = await setUp(defer);
      const logged = [
        await activityLog.log(activityInput(1, { batchUuid: '0190a0b0-0000-7000-8000-0000000000aa' })),
        await activityLog.log({ description: 'only a description' }),
        await activityLog.log(
          activityInput(2, {
            createdAt: '2026-01-02T03:04:05.678Z',
            properties: { deep: { a: [1, 'two', null, true] } },
          }),
        ),
      ];
      await settle(logged.length);
      expect(await storedById(logged.map((activity) => activity.id))).toEqual(logged);
    });

    it('transaction(): delivers what was logged inside when it resolves, nothing when it throws', async ({
      defer,
    }) => {
      const { activityLog, rowCount, settle, storedById } = await setUp(defer);
      const kept = await activityLog.transaction(async () => [
        await activityLog.log(activityInput(1)),
        await activityLog.log(activityInput(2)),
      ]);
      await expect(
        activityLog.transaction(async () => {
          await activityLog.log(activityInput(3));
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      await settle(2);
      expect(await rowCount()).toEqual({ rows: 2, ids: 2 });
      expect((await storedById(kept.map((activity) => activity.id))).map((row) => row?.id)).toEqual(
        kept.map((activity) => activity.id),
      );
    });

    it('withinBatch(): the activities logged inside share one batch_uuid once stored', async ({ defer }) => {
      const { activityLog, settle, storedById } = await setUp(defer);
      const logged = await activityLog.withinBatch(async () => [
        await activityLog.log({ description: 'first' }),
        await activityLog.log({ description: 'second' }),
      ]);
      await settle(2);
      const stored = await storedById(logged.map((activity) => activity.id));
      expect(stored[0]?.batchUuid).toMatch(/^[0-9a-f-]{36}$/);
      expect(stored[1]?.batchUuid).toBe(stored[0]?.batchUuid);
    });

    it('close() writes what is pending, and log() after it rejects with DELIVERY_CLOSED', async ({
      defer,
    }) => {
      const { activityLog, rowCount, close } = await setUp(defer);
      for (const input of activityInputs(50)) void activityLog.log(input);
      await close();
      const error = await activityLog.log(activityInput(99)).catch((caught: unknown) => caught);
      expect(isActivityLogError(error) && error.code).toBe('DELIVERY_CLOSED');
      await waitFor(async () => (await rowCount()).rows >= 50, 20_000, '50 rows');
      expect(await rowCount()).toEqual({ rows: 50, ids: 50 });
    });
  },
);
