import type mysql from 'mysql2/promise';
import { describe, expect } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { ACTIVITY_FIELDS } from '../../src/core/activity-fields.js';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { enqueueSampleJobs, waitFor } from '../helpers/queue.js';
import { queueTestTable, runCli, spawnCli, type TestTable } from '../helpers/queue-cli.js';
import { MARIADB, REDIS, serviceAvailable } from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const servicesUp = (await serviceAvailable(REDIS)) && (await serviceAvailable(MARIADB));

interface StoredRow extends mysql.RowDataPacket {
  id: string;
  log_name: string;
  description: string;
  subject_type: string | null;
  subject_id: string | null;
  event: string | null;
  causer_type: string | null;
  causer_id: string | null;
  properties: string | Record<string, unknown>;
  batch_uuid: string | null;
  ip_address: string | null;
  url: string | null;
  method: string | null;
  user_agent: string | null;
  /** UTC text, `YYYY-MM-DD HH:MM:SS.sss`. */
  created_at: string;
}

describe.skipIf(!servicesUp)('queue delivery end to end (real processes, Redis and MariaDB)', () => {
  async function setUp(
    defer: TestScope['defer'],
    label: string,
    env: Record<string, string> = {},
  ): Promise<TestTable> {
    const table = await queueTestTable(defer, label, env);
    await table.migrate();
    return table;
  }

  it('stores 100,000 activities logged through the queue, drained by two work processes, each exactly once and intact', async ({
    defer,
  }) => {
    const total = 100_000;
    const table = await setUp(defer, 'e2e', { ACTIVITY_LOG_BATCH_SIZE: '500' });
    const { activityLog, delivery } = composeActivityLog({ env: table.env });
    expect(delivery.method).toBe('queue');
    const logged = new Map<string, Activity>();
    for (let i = 0; i < total; i++) {
      const activity = await activityLog.log({
        description: `updated order :subject.id (${i})`,
        logName: i % 3 === 0 ? 'orders' : 'billing',
        event: i % 2 === 0 ? 'updated' : 'created',
        subject: { type: 'Order', id: i },
        causer: i % 5 === 0 ? null : { type: 'User', id: i % 97 },
        properties: { attributes: { total: i / 100, tags: ['a', 'ü'] }, old: { total: null } },
        ipAddress: i % 2 === 0 ? '203.0.113.9' : '2001:db8::1',
        url: `https://shop.example/orders/${i}`,
        method: 'PATCH',
        userAgent: i % 7 === 0 ? null : 'Mozilla/5.0',
      });
      logged.set(activity.id, activity);
      // As in a server, the flush timers and Redis I/O get their turn between requests.
      if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
    }
    await activityLog.close();
    expect(logged.size).toBe(total);

    const workers = [
      spawnCli(['work', '--stop-when-empty'], table.env),
      spawnCli(['work', '--stop-when-empty'], table.env),
    ];
    const exits = await Promise.all(workers.map((worker) => worker.exited));
    expect(exits).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
    const storedByWorkers = workers.map((worker) =>
      Number(/(\d+) activities stored/.exec(worker.stdout())?.[1]),
    );
    expect(storedByWorkers[0]! + storedByWorkers[1]!).toBe(total);
    expect(storedByWorkers.every((count) => count > 0)).toBe(true);

    expect(await table.count()).toEqual({ rows: total, distinct: total });
    // The activity's columns: the seal's are empty with sealing off.
    const columns = ACTIVITY_FIELDS.map((field) => `\`${field.column}\``).join(', ');
    const [rows] = await table.sql.query<StoredRow[]>(`SELECT ${columns} FROM \`${table.table}\``);
    let checked = 0;
    for (const row of rows) {
      const activity = logged.get(row.id);
      expect(activity, `row ${row.id} was never logged`).toBeDefined();
      const properties = typeof row.properties === 'string' ? JSON.parse(row.properties) : row.properties;
      expect({ ...row, properties, created_at: Date.parse(`${row.created_at.replace(' ', 'T')}Z`) }).toEqual({
        id: activity!.id,
        log_name: activity!.logName,
        description: activity!.description,
        subject_type: activity!.subjectType,
        subject_id: activity!.subjectId,
        event: activity!.event,
        causer_type: activity!.causerType,
        causer_id: activity!.causerId,
        properties: activity!.properties,
        batch_uuid: activity!.batchUuid,
        ip_address: activity!.ipAddress,
        url: activity!.url,
        method: activity!.method,
        user_agent: activity!.userAgent,
        created_at: activity!.createdAt.getTime(),
      });
      checked++;
    }
    expect(checked).toBe(total);
  }, 240_000);

  it('hands the job of a worker killed with SIGKILL mid-insert to another worker; rows stay exact', async ({
    defer,
  }) => {
    const table = await setUp(defer, 'sigkill', { ACTIVITY_LOG_RETRY_AFTER: '2' });
    await enqueueSampleJobs(table.config, 3, 100);

    // With the table locked, the first worker's INSERT waits: it is killed in the middle of a job.
    await table.sql.query(`LOCK TABLES \`${table.table}\` WRITE`);
    const doomed = spawnCli(['work', '--concurrency=1', '--batch-size=100'], table.env);
    const admin = await QueueAdmin.connect(table.config.redis, table.config.queueName);
    defer(() => admin.close());
    await waitFor(async () => (await admin.counts()).active === 1, 15_000, 'the first worker to take a job');
    await new Promise((resolve) => setTimeout(resolve, 300));
    doomed.child.kill('SIGKILL');
    expect((await doomed.exited).signal).toBe('SIGKILL');
    await table.sql.query('UNLOCK TABLES');
    expect((await admin.counts()).active).toBe(1);

    const started = Date.now();
    const rescuer = await runCli(['work', '--max-jobs=3', '--batch-size=100'], table.env, 30_000);
    expect(rescuer.code).toBe(0);
    expect(rescuer.stdout).toContain('worker stopped (--max-jobs reached): 3 jobs, 300 activities');
    // The orphaned job came back within about retry-after (2 s), not after the 90 s default.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await table.count()).toEqual({ rows: 300, distinct: 300 });
    const counts = await admin.counts();
    expect([counts.active, counts.waiting, counts.delayed, counts.failed]).toEqual([0, 0, 0, 0]);
  });

  it('keeps working through `process --method=queue` when several jobs are ready', async ({ defer }) => {
    const table = await setUp(defer, 'process-queue');
    await enqueueSampleJobs(table.config, 20, 50);
    const run = await runCli(['process', '--method=queue'], table.env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /process --method=queue stopped \(queue empty\): 20 jobs, 1000 activities stored/,
    );
    // Ready 50-activity jobs are merged up to ACTIVITY_LOG_BATCH_SIZE (500) per INSERT.
    const inserts = Number(/(\d+) inserts/.exec(run.stdout)?.[1]);
    expect(inserts).toBeLessThan(20);
    expect(await table.count()).toEqual({ rows: 1000, distinct: 1000 });
  });
});
