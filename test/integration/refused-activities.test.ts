import { describe, expect } from 'vitest';
import { isActivityLogError } from '../../src/core/errors.js';
import { newActivityId } from '../../src/core/ids.js';
import { ActivityWorker } from '../../src/delivery/worker.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { Spool } from '../../src/resilience/spool.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { REDIS_URL, removeQueue, uniqueQueueName, waitFor } from '../helpers/queue.js';
import { REFUSED_PREFIX, REFUSING_TARGETS, type RefusingTarget } from '../helpers/refusing-table.js';
import { REDIS, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const available = new Map<string, boolean>();
for (const target of REFUSING_TARGETS) {
  available.set(target.name, target.service === undefined ? true : await serviceAvailable(target.service));
}
const redisUp = await serviceAvailable(REDIS);
const INGEST_TOKEN = 'ingest-token-for-refused-activities';

/** Every target whose server answers (SQLite always does). */
const reachable = REFUSING_TARGETS.filter((target) => available.get(target.name) === true);
const networked = reachable.filter((target) => target.service !== undefined);

describe('activities the database refuses', () => {
  async function setUp(
    deferQuietly: TestScope['deferQuietly'],
    target: RefusingTarget,
    label: string,
    env: Record<string, string>,
  ) {
    const table = await target.create(label);
    deferQuietly(() => table.drop());
    const spoolDir = await temporaryDirectory(deferQuietly, `activity-log-refused-${label}-`);
    const composed = composeActivityLog({
      env: {
        ...table.env,
        ACTIVITY_LOG_SPOOL_DIR: spoolDir,
        ACTIVITY_LOG_FLUSH_INTERVAL_MS: '20',
        ACTIVITY_LOG_INGEST_TOKEN: INGEST_TOKEN,
        ...env,
      },
      warn: () => undefined,
    });
    const { activityLog } = composed;
    deferQuietly(() => activityLog.close());
    return { table, spoolDir, activityLog, composed };
  }

  /** 20 honest inputs and one the database refuses, at `position`. */
  function mixed(label: string, position: number) {
    const honest = Array.from({ length: 20 }, (_, i) => ({
      id: newActivityId(),
      description: `${label} honest ${i}`,
      logName: 'refused-test',
    }));
    const refused = {
      id: newActivityId(),
      description: `${REFUSED_PREFIX}: ${label}`,
      logName: 'refused-test',
    };
    const inputs = [...honest.slice(0, position), refused, ...honest.slice(position)];
    return { honest, refused, inputs };
  }

  async function rejectedIds(spoolDir: string): Promise<string[]> {
    const spool = new Spool({ dir: spoolDir, maxBytes: 1024 * 1024 });
    try {
      return (await spool.rejected()).map((record) => String(record.activity.id));
    } finally {
      await spool.close();
    }
  }

  describe.each(reachable.map((target) => [target.name, target] as const))('%s', (_name, target) => {
    it('sync: a 1,000-item ingest whose last item the database refuses stores nothing, and the same request without it stores each once', async ({
      deferQuietly,
    }) => {
      const { table, composed } = await setUp(deferQuietly, target, 'sync_ingest', {
        ACTIVITY_LOG_METHOD: 'sync',
      });
      const app = createActivityLogServer(composed);
      deferQuietly(() => app.close());
      const items = Array.from({ length: 1000 }, (_, i) => ({
        id: newActivityId(),
        // About 5 MB of text in all: more than one INSERT statement on MariaDB.
        description: i === 999 ? `${REFUSED_PREFIX} (last item)` : `ingest item ${i} ${'x'.repeat(2000)}`,
        log_name: 'refused-test',
        properties: { i, padding: 'y'.repeat(3000) },
      }));
      const send = (payload: unknown) =>
        app.inject({
          method: 'POST',
          url: '/api/activities',
          headers: { authorization: `Bearer ${INGEST_TOKEN}` },
          payload: payload as object,
        });

      const refused = await send(items);
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error.code).toBe('STORE_DATA_INVALID');
      expect((await table.ids()).size).toBe(0);

      const honest = items.slice(0, 999);
      expect((await send(honest)).statusCode).toBe(202);
      expect((await send(honest)).statusCode).toBe(202);
      const stored = await table.ids();
      expect(stored.size).toBe(999);
      expect(honest.every((item) => stored.has(item.id))).toBe(true);
    });

    it('sync: logMany() with one refused activity among 20 rejects with the error and stores none; log() of the honest ones is unaffected', async ({
      deferQuietly,
    }) => {
      const { table, activityLog } = await setUp(deferQuietly, target, 'sync_many', {
        ACTIVITY_LOG_METHOD: 'sync',
      });
      const { honest, inputs } = mixed('sync', 13);
      const error = await activityLog.logMany(inputs).then(
        () => null,
        (failure: unknown) => failure,
      );
      expect(isActivityLogError(error, 'STORE_DATA_INVALID')).toBe(true);
      expect((await table.ids()).size).toBe(0);
      await Promise.all(honest.map((input) => activityLog.log(input)));
      expect((await table.ids()).size).toBe(20);
    });

    it('batch: the honest activities around a refused one are stored within seconds; the refused one is kept once in rejected.ndjson', async ({
      deferQuietly,
    }) => {
      const { table, spoolDir, activityLog } = await setUp(deferQuietly, target, 'batch', {
        ACTIVITY_LOG_METHOD: 'batch',
        ACTIVITY_LOG_BATCH_SIZE: '500',
      });
      const { honest, refused, inputs } = mixed('batch', 7);
      for (const input of inputs) await activityLog.log(input);
      const started = Date.now();
      await waitFor(async () => (await table.ids()).size === 20, 5000, 'the honest activities to be stored');
      expect(Date.now() - started).toBeLessThan(5000);
      await activityLog.flush();
      const stored = await table.ids();
      expect(honest.every((input) => stored.has(input.id))).toBe(true);
      expect(stored.has(refused.id)).toBe(false);
      await activityLog.close();
      expect(await rejectedIds(spoolDir)).toEqual([refused.id]);
    });
  });

  describe.each(networked.map((target) => [target.name, target] as const))(
    '%s with the queue',
    (_name, target) => {
      it.skipIf(!redisUp)(
        'queue: the worker stores the honest activities of a job holding a refused one, keeps that one once in rejected.ndjson, and completes the job',
        async ({ deferQuietly }) => {
          const queueName = uniqueQueueName('refused');
          const { table, spoolDir, activityLog, composed } = await setUp(deferQuietly, target, 'queue', {
            ACTIVITY_LOG_METHOD: 'queue',
            QUEUE_CONNECTION: 'redis',
            REDIS_URL,
            ACTIVITY_LOG_QUEUE_NAME: queueName,
            ACTIVITY_LOG_TRIES: '1',
          });
          deferQuietly(() => removeQueue(composed.config, queueName));
          const { honest, refused, inputs } = mixed('queue', 11);
          await activityLog.logMany(inputs);
          await activityLog.flush();
          const worker = new ActivityWorker({
            config: composed.config,
            store: composed.store,
            stopWhenEmpty: true,
          });
          worker.events.on('warning', () => undefined);
          await worker.start();
          const summary = await worker.done;
          expect(summary.failedJobs).toBe(0);
          expect(summary.refused).toBe(1);
          const stored = await table.ids();
          expect(stored.size).toBe(20);
          expect(honest.every((input) => stored.has(input.id))).toBe(true);
          expect(await rejectedIds(spoolDir)).toEqual([refused.id]);
        },
      );
    },
  );
});

/** Keeps the suite honest about what it runs: a typo in a target name would silently skip it. */
describe('refused-activity targets', () => {
  it('covers MariaDB, PostgreSQL and SQLite', () => {
    expect(REFUSING_TARGETS.map((target) => target.name)).toEqual(['MariaDB', 'PostgreSQL', 'SQLite']);
  });
});
