import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { resilienceOf } from '../../src/resilience/resilient-sink.js';
import { encodeSpoolRecord } from '../../src/resilience/spool-record.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { builtActivity } from '../helpers/activity-factory.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { migratedTable } from '../helpers/mariadb-table.js';
import { DIST_INDEX, startProducer } from '../helpers/producer-process.js';
import { waitFor } from '../helpers/queue.js';
import { MARIADB, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const mariadbUp = await serviceAvailable(MARIADB);

/**
 * The producer: eight concurrent callers log as fast as they can with ACTIVITY_LOG_DURABILITY=disk
 * and print each id once its log() has resolved, until the process is killed.
 */
const PRODUCER = `
import { createActivityLog } from ${JSON.stringify(DIST_INDEX)};
const activityLog = createActivityLog({ env: JSON.parse(process.env.PRODUCER_ENV) });
let n = 0;
async function caller() {
  for (;;) {
    const activity = await activityLog.log({ description: 'crash test ' + n++, logName: 'crash', properties: { n } });
    process.stdout.write(activity.id + '\\n');
  }
}
for (let i = 0; i < 8; i++) caller().catch((error) => { console.error(error); process.exit(1); });
`;

describe.skipIf(!mariadbUp)('resilience: crashes and a full spool (MariaDB, fault proxy)', () => {
  async function fixture(deferQuietly: TestScope['deferQuietly'], label: string) {
    const { table, db, storedIds, drop } = await migratedTable(`resilience_${label}`);
    deferQuietly(drop);
    const proxy = await FaultProxy.start(MARIADB);
    deferQuietly(() => proxy.close());
    const workDir = await temporaryDirectory(deferQuietly, `activity-log-${label}-`);
    return { table, db, proxy, workDir, spoolDir: join(workDir, 'spool'), storedIds };
  }

  it('durability=disk: every activity whose log() resolved before SIGKILL is stored after a restart; a torn last record is skipped and counted', async ({
    deferQuietly,
  }) => {
    const { table, proxy, workDir, spoolDir, storedIds } = await fixture(deferQuietly, 'sigkill');
    const env = {
      DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`,
      ACTIVITY_LOG_TABLE: table,
      ACTIVITY_LOG_METHOD: 'batch',
      ACTIVITY_LOG_DURABILITY: 'disk',
      ACTIVITY_LOG_SPOOL_DIR: spoolDir,
      ACTIVITY_LOG_FLUSH_INTERVAL_MS: '20',
      ACTIVITY_LOG_BATCH_SIZE: '200',
      ACTIVITY_LOG_BREAKER_FAILURES: '2',
      ACTIVITY_LOG_BREAKER_COOLDOWN_MS: '300',
      DB_CONNECT_TIMEOUT_MS: '500',
      DB_QUERY_TIMEOUT_MS: '1000',
    };
    const producer = await startProducer(workDir, PRODUCER, env);
    deferQuietly(() => producer.kill());
    const resolvedCount = () => producer.acknowledged().length;

    // Stored while healthy, then journaled only, then killed mid-stream.
    await waitFor(async () => resolvedCount() > 500, 10_000, 'the producer to log while MariaDB is up');
    await proxy.refuse();
    const atRefusal = resolvedCount();
    await waitFor(
      async () => resolvedCount() > atRefusal + 2000,
      10_000,
      'the producer to log while MariaDB is down',
    );
    expect(await producer.kill()).toBe('SIGKILL');
    // Only the one-line warnings of the outage (the breaker opening, spooling), nothing unexpected.
    expect(
      producer
        .errors()
        .split('\n')
        .filter((line) => line !== '' && !line.startsWith('activity-log: ')),
    ).toEqual([]);
    const resolved = producer.acknowledged();

    // A write torn by the crash: the first half of one more record, whose log() never resolved.
    const segments = (await readdir(spoolDir)).filter((name) => name.endsWith('.seg')).sort();
    expect(segments.length).toBeGreaterThan(0);
    const unresolved = builtActivity({ description: 'never resolved', logName: 'crash' });
    const torn = encodeSpoolRecord(unresolved);
    await appendFile(join(spoolDir, segments.at(-1)!), torn.subarray(0, Math.floor(torn.length / 2)));

    // Restart: a new process with the same spool directory and MariaDB back.
    await proxy.pass();
    const { activityLog: restarted, delivery: restartedDelivery } = composeActivityLog({ env });
    deferQuietly(() => restarted.close());
    const resilience = resilienceOf(restartedDelivery)!;
    let corrupt = 0;
    let claimed = 0;
    resilience.spool.events.on('corruptRecordSkipped', ({ count }) => {
      corrupt += count;
    });
    resilience.spool.events.on('claimed', () => {
      claimed++;
    });
    await waitFor(
      async () => {
        const stored = await storedIds();
        return resolved.every((id) => stored.has(id));
      },
      20_000,
      'every resolved activity to be stored',
    );
    await restarted.close();
    const stored = await storedIds();
    expect(resolved.filter((id) => !stored.has(id))).toEqual([]);
    expect(stored.has(unresolved.id)).toBe(false);
    expect(corrupt).toBe(1);
    expect(claimed).toBeGreaterThan(0);
    expect((await readdir(spoolDir)).filter((name) => name.endsWith('.seg'))).toEqual([]);
  });

  it('a full spool drops only the newest activities, counts every drop, and keeps what it holds intact', async ({
    deferQuietly,
  }) => {
    const { table, proxy, spoolDir, storedIds, db } = await fixture(deferQuietly, 'spoolfull');
    await proxy.refuse();
    const { activityLog, delivery } = composeActivityLog({
      env: { DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`, ACTIVITY_LOG_TABLE: table },
      config: {
        method: 'batch',
        batchSize: 100,
        flushIntervalMs: 10,
        breakerFailures: 2,
        breakerCooldownMs: 300,
        spoolDir,
        spoolMaxMb: 1,
        database: { connectTimeoutMs: 500, queryTimeoutMs: 1000 },
      },
    });
    deferQuietly(() => activityLog.close());
    const resilience = resilienceOf(delivery)!;
    let droppedEvents = 0;
    resilience.spool.bus.on('dropped', ({ count }) => {
      droppedEvents += count;
    });
    const padding = 'x'.repeat(400);
    const logged: string[] = [];
    for (let i = 0; i < 4000; i++) {
      logged.push((await activityLog.log({ description: `spool limit ${i}`, properties: { padding } })).id);
      if (i % 100 === 99) await activityLog.flush().catch(() => undefined);
    }
    await activityLog.flush();
    const dropped = resilience.spool.droppedTotal;
    expect(dropped).toBeGreaterThan(0);
    expect(droppedEvents).toBe(dropped);
    expect(dropped).toBeLessThan(4000);
    const status = await resilience.spool.status();
    expect(status.bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(status.activities).toBe(4000 - dropped);

    await proxy.pass();
    await waitFor(async () => (await storedIds()).size >= 4000 - dropped, 20_000, 'the spool to be replayed');
    await activityLog.close();
    const stored = await storedIds();
    expect(stored.size).toBe(4000 - dropped);
    expect(logged.slice(0, 4000 - dropped).every((id) => stored.has(id))).toBe(true);
    const [rows] = await db.query(
      `SELECT description, JSON_UNQUOTE(JSON_EXTRACT(properties, '$.padding')) AS padding FROM \`${table}\` WHERE id = ?`,
      [logged[0]],
    );
    expect((rows as { description: string; padding: string }[])[0]).toEqual({
      description: 'spool limit 0',
      padding,
    });
  });
});
