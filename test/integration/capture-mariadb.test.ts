import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { describe, expect } from 'vitest';
import type { CaptureStats } from '../../src/capture/capture-runner.js';
import { type Config, loadConfig } from '../../src/config/config.js';
import { runWithContext } from '../../src/core/context.js';
import { createActivityLog } from '../../src/runtime/create-activity-log.js';
import { runCapture, setUpCapture } from '../../src/runtime/run-capture.js';
import { CAPTURE_POSITIONS_TABLE, CAPTURE_STATS_TABLE } from '../../src/store/capture-positions.js';
import { createStore } from '../../src/store/create-store.js';
import { MARIADB, MYSQL_URL, serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const available = await serviceAvailable(MARIADB);

interface CaptureScene {
  readonly table: string;
  readonly activityTable: string;
  readonly slot: string;
  readonly env: Record<string, string>;
  readonly config: Config;
  readonly db: mysql.Connection;
}

/**
 * An application table `orders_<suffix>`, an activity table and a slot name (the replica server id
 * and the saved position) of their own; the tables and the position are removed afterwards.
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
  const db = await mysql.createConnection({ uri: MYSQL_URL, supportBigNumbers: true });
  defer(() => db.end());
  defer(async () => {
    await db.query(
      `DROP TABLE IF EXISTS \`${table}\`, \`${activityTable}\`, \`${activityTable}_seals\`, \`${activityTable}_migrations\``,
    );
    await db.query(`DELETE FROM ${CAPTURE_POSITIONS_TABLE} WHERE slot = ?`, [slot]).catch(() => undefined);
    await db.query(`DELETE FROM ${CAPTURE_STATS_TABLE} WHERE slot = ?`, [slot]).catch(() => undefined);
  });
  await db.query(
    `CREATE TABLE \`${table}\` (${options.columns ?? 'id INT PRIMARY KEY, status VARCHAR(20) NOT NULL, total DECIMAL(10,2), password VARCHAR(50), note VARCHAR(50)'})`,
  );
  const env: Record<string, string> = {
    DATABASE_URL: MYSQL_URL,
    ACTIVITY_LOG_TABLE: activityTable,
    ACTIVITY_LOG_METHOD: 'batch',
    ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    ACTIVITY_LOG_CAPTURE_SOURCE: MYSQL_URL,
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

async function sql(s: CaptureScene, text: string, params: unknown[] = []): Promise<unknown[]> {
  const [rows] = await s.db.query(text, params);
  return rows as unknown[];
}

async function activities(s: CaptureScene): Promise<StoredActivity[]> {
  const rows = (await sql(
    s,
    `SELECT * FROM \`${s.activityTable}\` ORDER BY CAST(SUBSTRING_INDEX(JSON_UNQUOTE(JSON_EXTRACT(properties, '$.capture.position')), '-', -1) AS UNSIGNED), CAST(JSON_EXTRACT(properties, '$.capture.index') AS UNSIGNED)`,
  )) as (Omit<StoredActivity, 'properties'> & { properties: string | object })[];
  return rows.map((row) => ({
    ...row,
    properties: (typeof row.properties === 'string'
      ? JSON.parse(row.properties)
      : row.properties) as StoredActivity['properties'],
  }));
}

async function count(s: CaptureScene): Promise<number> {
  const rows = (await sql(s, `SELECT COUNT(*) AS n FROM \`${s.activityTable}\``)) as { n: number }[];
  return Number(rows[0]!.n);
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

describe.skipIf(!available)('change capture from MariaDB', () => {
  it('records inserts, updates and deletes of raw SQL from the binary log with old and new values, and nothing of a rolled-back transaction', async ({
    defer,
  }) => {
    const s = await scene(defer);
    const capture = startCapture(s.config);
    await s.db.query(
      `INSERT INTO \`${s.table}\` (id, status, total, password, note) VALUES (1, 'new', 10.50, 'hunter2', 'private')`,
    );
    await s.db.query(`UPDATE \`${s.table}\` SET status = 'paid', note = 'changed' WHERE id = 1`);
    await s.db.query('BEGIN');
    await s.db.query(`INSERT INTO \`${s.table}\` (id, status) VALUES (2, 'never')`);
    await s.db.query(`UPDATE \`${s.table}\` SET status = 'never' WHERE id = 1`);
    await s.db.query('ROLLBACK');
    await s.db.query(`DELETE FROM \`${s.table}\` WHERE id = 1`);
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

  it('follows the binary log across a rotation, and resumes past it from the saved position', async ({
    defer,
  }) => {
    const s = await scene(defer);
    let capture = startCapture(s.config);
    const insert = (id: number) =>
      s.db.query(`INSERT INTO \`${s.table}\` (id, status) VALUES (?, 'new')`, [id]);
    await insert(1);
    await insert(2);
    await waitForCount(s, 2);
    await s.db.query('FLUSH BINARY LOGS');
    await insert(3);
    await insert(4);
    await waitForCount(s, 4);
    await capture.stop();

    // Stopped after the rotation: the saved position is in the new file, and what was written
    // while capture was down (before and after another rotation) is read on restart.
    await insert(5);
    await s.db.query('FLUSH BINARY LOGS');
    await insert(6);
    capture = startCapture(s.config);
    await waitForCount(s, 6);
    await capture.stop();
    const rows = await activities(s);
    expect(rows.map((row) => Number(row.subject_id)).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(rows.map((row) => row.id)).size).toBe(6);
  });

  it('records JSON, DATETIME(3), DECIMAL, utf8mb4 text, NULL and a BIGINT past 2^53 as their values', async ({
    defer,
  }) => {
    const s = await scene(defer, {
      columns:
        'id BIGINT PRIMARY KEY, doc JSON, at DATETIME(3), amount DECIMAL(12,3), title VARCHAR(40) CHARACTER SET utf8mb4, gone VARCHAR(10)',
    });
    const capture = startCapture(s.config);
    await s.db.query(
      `INSERT INTO \`${s.table}\` (id, doc, at, amount, title, gone) VALUES (9007199254740993, '{"a":[1,"x"]}', '2026-01-02 03:04:05.678', 12345.678, 'caf\u00e9 \u{1F600}', NULL)`,
    );
    await waitForCount(s, 1);
    await capture.stop();
    const [row] = await activities(s);
    expect(row!.subject_id).toBe('9007199254740993');
    const attributes = row!.properties.attributes!;
    // MariaDB's JSON is text with a JSON check, so it comes as the text written; a BIGINT past
    // 2^53 and a DECIMAL come as exact strings, DATETIME(3) as UTC ISO-8601 with milliseconds.
    expect(attributes).toEqual({
      id: '9007199254740993',
      doc: '{"a":[1,"x"]}',
      at: '2026-01-02T03:04:05.678Z',
      amount: '12345.678',
      title: 'caf\u00e9 \u{1F600}',
      gone: null,
    });
  });

  it('turns one UPDATE of 1,000 rows into 1,000 activities of one batch with each row old and new values', async ({
    defer,
  }) => {
    const s = await scene(defer);
    await s.db.query(
      `INSERT INTO \`${s.table}\` (id, status, total) SELECT seq, 'new', seq FROM seq_1_to_1000`,
    );
    const capture = startCapture(s.config);
    await s.db.query(`UPDATE \`${s.table}\` SET status = 'shipped', total = total + 1 WHERE id <= 1000`);
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

  it('gives every row change of a tagged transaction the causer and request of its tag', async ({
    defer,
  }) => {
    const s = await scene(defer);
    await s.db.query(`INSERT INTO \`${s.table}\` (id, status) SELECT seq, 'new' FROM seq_1_to_50`);
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
        await s.db.query(`UPDATE \`${s.table}\` SET status = 'shipped'`);
        await s.db.query('COMMIT');
      },
    );
    await s.db.query(`UPDATE \`${s.table}\` SET status = 'untagged' WHERE id = 1`);
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
});
