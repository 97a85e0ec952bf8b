import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { isActivityLogError } from '../../src/core/errors.js';
import { resilienceOf } from '../../src/resilience/resilient-sink.js';
import { composeActivityLog, createActivityLog } from '../../src/runtime/create-activity-log.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { migratedTable } from '../helpers/mariadb-table.js';
import { waitFor } from '../helpers/queue.js';
import { MARIADB, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it } from '../helpers/test-context.js';

const mariadbUp = await serviceAvailable(MARIADB);

describe('failures said out loud', () => {
  it('sync on a table that was never migrated: log() rejects with STORE_SCHEMA_MISSING, one line says to migrate, nothing is spooled', async ({
    deferQuietly,
  }) => {
    const dir = await temporaryDirectory(deferQuietly, 'activity-log-loud-sync-unmigrated-');
    const lines: string[] = [];
    const { activityLog, delivery } = composeActivityLog({
      env: {
        DATABASE_URL: `sqlite:${join(dir, 'never-migrated.sqlite')}`,
        ACTIVITY_LOG_METHOD: 'sync',
        ACTIVITY_LOG_SPOOL_DIR: join(dir, 'spool'),
      },
      warn: (line) => lines.push(line),
    });
    deferQuietly(() => activityLog.close());
    for (let i = 0; i < 3; i++) {
      const error = await activityLog.log({ description: `unmigrated ${i}` }).then(
        () => null,
        (failure: unknown) => failure,
      );
      expect(isActivityLogError(error, 'STORE_SCHEMA_MISSING')).toBe(true);
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^activity-log: .*activity_log.*migrate/);
    expect(resilienceOf(delivery)!.pending()).toBe(0);
  });

  it('batch on a table that was never migrated: one line says to migrate, the activities wait in the spool and are stored once it is migrated', async ({
    deferQuietly,
  }) => {
    const dir = await temporaryDirectory(deferQuietly, 'activity-log-loud-batch-unmigrated-');
    const lines: string[] = [];
    const { activityLog, delivery, store } = composeActivityLog({
      env: {
        DATABASE_URL: `sqlite:${join(dir, 'later.sqlite')}`,
        ACTIVITY_LOG_METHOD: 'batch',
        ACTIVITY_LOG_SPOOL_DIR: join(dir, 'spool'),
        ACTIVITY_LOG_FLUSH_INTERVAL_MS: '10',
        ACTIVITY_LOG_BREAKER_COOLDOWN_MS: '500',
      },
      warn: (line) => lines.push(line),
    });
    deferQuietly(() => activityLog.close());
    for (let i = 0; i < 50; i++) await activityLog.log({ description: `before migrate ${i}` });
    await activityLog.flush();
    await waitFor(() => resilienceOf(delivery)!.pending() === 50, 5000, 'the activities to be spooled');
    const migrateFirst = (line: string) => /no activity table.*migrate` first/.test(line);
    expect(lines.filter(migrateFirst), lines.join('\n')).toHaveLength(1);

    await store.migrate();
    await waitFor(
      async () => (await activityLog.query({ limit: 100 })).data.length === 50,
      10_000,
      'the spool to be replayed into the migrated table',
    );
    expect(lines.filter(migrateFirst)).toHaveLength(1);
  });

  it.skipIf(!mariadbUp)(
    'says when the breaker opens and closes and when spooling starts and stops, naming the destination and never the password',
    async ({ deferQuietly }) => {
      const { table, db, drop } = await migratedTable('loud');
      deferQuietly(drop);
      // A user of its own with a password, which no line may show.
      const user = `loud_${table.slice(-12)}`;
      await db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 's3cret-password'`);
      deferQuietly(() => db.query(`DROP USER IF EXISTS '${user}'@'%'`));
      await db.query(`GRANT ALL ON test.* TO '${user}'@'%'`);
      const proxy = await FaultProxy.start(MARIADB);
      deferQuietly(() => proxy.close());
      const dir = await temporaryDirectory(deferQuietly, 'activity-log-loud-breaker-');
      const lines: string[] = [];
      const activityLog = createActivityLog({
        env: {
          DATABASE_URL: `mysql://${user}:s3cret-password@127.0.0.1:${proxy.port}/test`,
          ACTIVITY_LOG_TABLE: table,
          ACTIVITY_LOG_METHOD: 'batch',
          ACTIVITY_LOG_SPOOL_DIR: join(dir, 'spool'),
          ACTIVITY_LOG_FLUSH_INTERVAL_MS: '10',
          ACTIVITY_LOG_BREAKER_FAILURES: '2',
          DB_CONNECT_TIMEOUT_MS: '500',
        },
        warn: (line) => lines.push(line),
      });
      deferQuietly(() => activityLog.close());
      await activityLog.log({ description: 'while healthy' });
      await activityLog.flush();
      expect(lines, lines.join('\n')).toEqual([]);

      await proxy.refuse();
      for (let i = 0; i < 20; i++) {
        await activityLog.log({ description: `while refused ${i}` });
        await activityLog.flush();
      }
      await waitFor(() => lines.some((line) => /circuit breaker opened/.test(line)), 10_000, 'the open line');
      expect(lines.some((line) => /a write to the store failed .*127\.0\.0\.1.*spool/.test(line))).toBe(true);

      await proxy.pass();
      await waitFor(
        () => lines.some((line) => /spool at .* is replayed/.test(line)),
        15_000,
        'the replayed line',
      );
      expect(lines.some((line) => /circuit breaker closed/.test(line))).toBe(true);
      expect(lines.every((line) => line.startsWith('activity-log: '))).toBe(true);
      expect(lines.join('\n')).not.toContain('s3cret-password');
      expect(lines.filter((line) => /opened/.test(line))).toHaveLength(1);
    },
  );
});

describe.skipIf(!mariadbUp)('recovery after a database restart', () => {
  it('replays the spool within seconds of the database coming back, well before a 10 s cooldown has passed', async ({
    deferQuietly,
  }) => {
    const { table, count, drop } = await migratedTable('recovery');
    deferQuietly(drop);
    const proxy = await FaultProxy.start(MARIADB);
    deferQuietly(() => proxy.close());
    const dir = await temporaryDirectory(deferQuietly, 'activity-log-recovery-');
    const { activityLog, delivery } = composeActivityLog({
      env: {
        DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`,
        ACTIVITY_LOG_TABLE: table,
        ACTIVITY_LOG_METHOD: 'batch',
        ACTIVITY_LOG_SPOOL_DIR: join(dir, 'spool'),
        ACTIVITY_LOG_FLUSH_INTERVAL_MS: '10',
        ACTIVITY_LOG_BREAKER_FAILURES: '2',
        ACTIVITY_LOG_BREAKER_COOLDOWN_MS: '10000',
        DB_CONNECT_TIMEOUT_MS: '500',
      },
      warn: () => undefined,
    });
    deferQuietly(() => activityLog.close());
    const resilience = resilienceOf(delivery)!;
    await proxy.refuse();
    for (let i = 0; i < 100; i++) {
      await activityLog.log({ description: `during the restart ${i}` });
      if (i % 10 === 9) await activityLog.flush();
    }
    await waitFor(() => resilience.breaker.state !== 'closed', 5000, 'the breaker to open');
    // A restart of about three seconds.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await proxy.pass();
    const backAt = Date.now();
    await waitFor(async () => (await count()).n === 100, 10_000, 'the spool to be replayed');
    expect(Date.now() - backAt).toBeLessThan(3000);
  });
});
