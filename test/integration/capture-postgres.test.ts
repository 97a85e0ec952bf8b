import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect } from 'vitest';
import type { CaptureStats } from '../../src/capture/capture-runner.js';
import { type Config, loadConfig } from '../../src/config/config.js';
import { runWithContext } from '../../src/core/context.js';
import { createActivityLog } from '../../src/runtime/create-activity-log.js';
import { runCapture, setUpCapture } from '../../src/runtime/run-capture.js';
import { CAPTURE_POSITIONS_TABLE, CAPTURE_STATS_TABLE } from '../../src/store/capture-positions.js';
import { createStore } from '../../src/store/create-store.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { POSTGRES, POSTGRES_URL, serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const available = await serviceAvailable(POSTGRES);

interface CaptureScene {
  readonly table: string;
  readonly activityTable: string;
  readonly slot: string;
  readonly env: Record<string, string>;
  readonly config: Config;
  readonly db: pg.Client;
}

/**
 * An application table `orders_<suffix>`, an activity table, a slot and publication of their own,
 * all removed afterwards (the slot first: a slot left behind keeps WAL forever).
 */
async function scene(
  defer: TestScope['defer'],
  options: { readonly columns?: string; readonly env?: Record<string, string> } = {},
): Promise<CaptureScene> {
  const suffix = uniqueSuffix();
  const table = `orders_${suffix}`;
  const activityTable = `capture_activity_${suffix}`;
  const slot = `al_${suffix}`;
  const spoolDir = mkdtempSync(join(tmpdir(), 'activity-log-capture-'));
  defer(() => rmSync(spoolDir, { recursive: true, force: true }));
  const db = new pg.Client({ connectionString: POSTGRES_URL });
  await db.connect();
  defer(() => db.end());
  defer(async () => {
    await db.query(
      'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active',
      [slot],
    );
    for (let attempt = 0; attempt < 40; attempt++) {
      const slots = await db.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      if (slots.rows.length === 0) break;
      if (slots.rows[0].active === false) {
        await db.query('SELECT pg_drop_replication_slot($1)', [slot]);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await db.query(`DROP PUBLICATION IF EXISTS "${slot}"`);
    await db.query(
      `DROP TABLE IF EXISTS "${table}", "${activityTable}", "${activityTable}_seals", "${activityTable}_migrations"`,
    );
    await db.query(`DELETE FROM ${CAPTURE_POSITIONS_TABLE} WHERE slot = $1`, [slot]).catch(() => undefined);
    await db.query(`DELETE FROM ${CAPTURE_STATS_TABLE} WHERE slot = $1`, [slot]).catch(() => undefined);
  });
  await db.query(
    `CREATE TABLE "${table}" (${options.columns ?? 'id integer PRIMARY KEY, status text NOT NULL, total numeric(10,2), password text, note text'})`,
  );
  const env: Record<string, string> = {
    DATABASE_URL: POSTGRES_URL,
    ACTIVITY_LOG_TABLE: activityTable,
    ACTIVITY_LOG_METHOD: 'batch',
    ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    ACTIVITY_LOG_CAPTURE_SOURCE: POSTGRES_URL,
    ACTIVITY_LOG_CAPTURE_TABLES: table,
    ACTIVITY_LOG_CAPTURE_SLOT: slot,
    ACTIVITY_LOG_CAPTURE_SUBJECTS: `${table}:Order`,
    ACTIVITY_LOG_CAPTURE_EXCLUDE_COLUMNS: `${table}.note`,
    ...options.env,
  };
  const config = loadConfig({ env });
  const store = createStore(config.database);
  await store.migrate();
  await store.close();
  await setUpCapture(config, () => undefined);
  return { table, activityTable, slot, env, config, db };
}

/** Runs `capture` in this process until `stop()`; resolves with its final figures. */
function startCapture(config: Config): { stop: () => Promise<CaptureStats> } {
  let requestStop: () => void = () => undefined;
  const stopRequested = new Promise<void>((resolve) => {
    requestStop = resolve;
  });
  const running = runCapture(config, {
    from: 'saved',
    print: () => undefined,
    warn: (line) => process.stderr.write(`${line}\n`),
    stopRequested,
    checkpointIntervalMs: 50,
  });
  return {
    stop: async () => {
      requestStop();
      return running;
    },
  };
}

interface StoredActivity {
  id: string;
  event: string;
  subject_type: string | null;
  subject_id: string | null;
  causer_type: string | null;
  causer_id: string | null;
  ip_address: string | null;
  url: string | null;
  batch_uuid: string | null;
  log_name: string;
  properties: Record<string, Record<string, unknown>>;
}

async function activities(s: CaptureScene): Promise<StoredActivity[]> {
  const result = await s.db.query<StoredActivity>(
    `SELECT * FROM "${s.activityTable}" ORDER BY (properties->'capture'->>'position')::pg_lsn, (properties->'capture'->>'index')::int`,
  );
  return result.rows;
}

function bytesIn(dir: string): number {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(join(entry.parentPath, entry.name)).size, 0);
}

async function count(s: CaptureScene): Promise<number> {
  const result = await s.db.query<{ n: string }>(`SELECT count(*) AS n FROM "${s.activityTable}"`);
  return Number(result.rows[0]!.n);
}

async function waitForCount(s: CaptureScene, expected: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await count(s);
    if (n >= expected) return;
    if (Date.now() > deadline)
      throw new Error(`expected ${expected} activities, found ${n} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(!available)('change capture from PostgreSQL', () => {
  it('records inserts, updates and deletes of raw SQL with old and new values, and nothing of a rolled-back transaction', async ({
    defer,
  }) => {
    const s = await scene(defer);
    const capture = startCapture(s.config);
    await s.db.query(
      `INSERT INTO "${s.table}" (id, status, total, password, note) VALUES (1, 'new', 10.50, 'hunter2', 'private')`,
    );
    await s.db.query(`UPDATE "${s.table}" SET status = 'paid', note = 'changed' WHERE id = 1`);
    await s.db.query('BEGIN');
    await s.db.query(`INSERT INTO "${s.table}" (id, status) VALUES (2, 'never')`);
    await s.db.query(`UPDATE "${s.table}" SET status = 'never' WHERE id = 1`);
    await s.db.query('ROLLBACK');
    await s.db.query(`DELETE FROM "${s.table}" WHERE id = 1`);
    await waitForCount(s, 3);
    await capture.stop();

    const rows = await activities(s);
    expect(rows.map((row) => [row.event, row.subject_type, row.subject_id])).toEqual([
      ['created', 'Order', '1'],
      ['updated', 'Order', '1'],
      ['deleted', 'Order', '1'],
    ]);
    expect(rows.every((row) => row.log_name === 'capture' && row.causer_id === null)).toBe(true);
    // The excluded column and the secret-looking one are absent, not redacted.
    expect(rows[0]!.properties.attributes).toEqual({ id: 1, status: 'new', total: '10.50' });
    expect(rows[1]!.properties.attributes).toEqual({ status: 'paid' });
    expect(rows[1]!.properties.old).toEqual({ status: 'new' });
    expect(rows[2]!.properties.old).toEqual({ id: 1, status: 'paid', total: '10.50' });
    expect(new Set(rows.map((row) => row.batch_uuid)).size).toBe(3);
    expect(JSON.stringify(rows)).not.toContain('never');
  });

  it('turns one UPDATE of 1,000 rows into 1,000 activities of one batch with each row old and new values', async ({
    defer,
  }) => {
    const s = await scene(defer);
    await s.db.query(
      `INSERT INTO "${s.table}" (id, status, total) SELECT g, 'new', g FROM generate_series(1, 1000) AS g`,
    );
    const capture = startCapture(s.config);
    await s.db.query(`UPDATE "${s.table}" SET status = 'shipped', total = total + 1 WHERE id <= 1000`);
    await waitForCount(s, 2000);
    await capture.stop();

    const updates = (await activities(s)).filter((row) => row.event === 'updated');
    expect(updates).toHaveLength(1000);
    expect(new Set(updates.map((row) => row.batch_uuid)).size).toBe(1);
    expect(new Set(updates.map((row) => row.subject_id)).size).toBe(1000);
    for (const row of updates) {
      const id = Number(row.subject_id);
      expect(row.properties.old).toEqual({ status: 'new', total: `${id}.00` });
      expect(row.properties.attributes).toEqual({ status: 'shipped', total: `${id + 1}.00` });
    }
  });

  it('reports a TOAST value an update left alone as unchanged, never as null', async ({ defer }) => {
    const s = await scene(defer, { columns: 'id integer PRIMARY KEY, status text NOT NULL, body text' });
    const body = randomBytes(20_000).toString('hex');
    await s.db.query(
      `INSERT INTO "${s.table}" (id, status, body) VALUES (1, 'draft', $1), (2, 'draft', $1)`,
      [body],
    );
    // Row 1 with a full before-image, row 2 as a table without REPLICA IDENTITY FULL sends it.
    await s.db.query(`UPDATE "${s.table}" SET status = 'final' WHERE id = 1`);
    await s.db.query(`ALTER TABLE "${s.table}" REPLICA IDENTITY DEFAULT`);
    await s.db.query(`UPDATE "${s.table}" SET status = 'final' WHERE id = 2`);
    const capture = startCapture(s.config);
    await waitForCount(s, 4);
    await capture.stop();

    const updates = (await activities(s)).filter((row) => row.event === 'updated');
    expect(updates.map((row) => row.subject_id)).toEqual(['1', '2']);
    expect(updates[0]!.properties.attributes).toEqual({ status: 'final' });
    expect(updates[0]!.properties.old).toEqual({ status: 'draft' });
    expect(updates[1]!.properties.attributes).toEqual({ id: 2, status: 'final' });
    expect(updates[1]!.properties.attributes).not.toHaveProperty('body');
    expect(updates[1]!.properties.capture!.unchanged).toEqual(['body']);
  });

  it('gives every row change of a tagged transaction the causer and request of its tag', async ({
    defer,
  }) => {
    const s = await scene(defer);
    await s.db.query(
      `INSERT INTO "${s.table}" (id, status) SELECT g, 'new' FROM generate_series(1, 50) AS g`,
    );
    const activityLog = createActivityLog({ env: s.env });
    defer(() => activityLog.close());
    const capture = startCapture(s.config);
    await runWithContext(
      {
        causer: { type: 'User', id: '42' },
        ipAddress: '203.0.113.9',
        url: '/orders/ship',
        method: 'POST',
        userAgent: 'test-agent',
      },
      async () => {
        await s.db.query('BEGIN');
        await activityLog.tagTransaction(s.db);
        await s.db.query(`UPDATE "${s.table}" SET status = 'shipped'`);
        await s.db.query('COMMIT');
      },
    );
    await s.db.query(`UPDATE "${s.table}" SET status = 'untagged' WHERE id = 1`);
    await waitForCount(s, 101);
    await capture.stop();

    const updates = (await activities(s)).filter((row) => row.event === 'updated');
    const tagged = updates.filter((row) => row.properties.attributes!.status === 'shipped');
    expect(tagged).toHaveLength(50);
    for (const row of tagged) {
      expect([row.causer_type, row.causer_id, row.ip_address, row.url]).toEqual([
        'User',
        '42',
        '203.0.113.9',
        '/orders/ship',
      ]);
    }
    const untagged = updates.find((row) => row.properties.attributes!.status === 'untagged');
    expect(untagged?.causer_id).toBeNull();
  });

  it('spools the activities while the activity database is down and stores each once when it is back', async ({
    defer,
  }) => {
    const proxy = await FaultProxy.start({ host: POSTGRES.host, port: POSTGRES.port });
    defer(() => proxy.close());
    const s = await scene(defer, {
      env: {
        DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
        ACTIVITY_LOG_BREAKER_COOLDOWN_MS: '500',
        DB_CONNECT_TIMEOUT_MS: '500',
      },
    });
    const capture = startCapture(s.config);
    await s.db.query(
      `INSERT INTO "${s.table}" (id, status) SELECT g, 'before' FROM generate_series(1, 100) AS g`,
    );
    await waitForCount(s, 100);
    await proxy.refuse();
    for (let first = 101; first <= 400; first += 100) {
      await s.db.query(
        `INSERT INTO "${s.table}" (id, status) SELECT g, 'during' FROM generate_series($1::int, $2::int) AS g`,
        [first, first + 99],
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await count(s)).toBe(100);
    expect(bytesIn(s.env.ACTIVITY_LOG_SPOOL_DIR!)).toBeGreaterThan(0);
    await proxy.pass();
    await waitForCount(s, 400);
    const stats = await capture.stop();

    const counts = await s.db.query<{ n: string; ids: string }>(
      `SELECT count(*) AS n, count(DISTINCT subject_id) AS ids FROM "${s.activityTable}"`,
    );
    expect(counts.rows[0]).toEqual({ n: '400', ids: '400' });
    expect(stats.durableActivities).toBe(400);
    const saved = await s.db.query(`SELECT position FROM ${CAPTURE_POSITIONS_TABLE} WHERE slot = $1`, [
      s.slot,
    ]);
    expect(saved.rows[0]?.position).toBe(stats.position);
  });
});
