import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { describe, expect } from 'vitest';
import type { CaptureStats } from '../../src/capture/capture-runner.js';
import { MysqlConnectionUsers } from '../../src/capture/mysql/mysql-connection-users.js';
import { type Config, loadConfig } from '../../src/config/config.js';
import { runWithContext } from '../../src/core/context.js';
import type { CaptureJson } from '../../src/metrics/capture-figures.js';
import type { Monitoring } from '../../src/metrics/monitoring.js';
import { CaptureLagAlert } from '../../src/runtime/capture-lag-alert.js';
import { CaptureWatch } from '../../src/runtime/capture-watch.js';
import { createActivityLog } from '../../src/runtime/create-activity-log.js';
import { captureStatus, runCapture, setUpCapture } from '../../src/runtime/run-capture.js';
import { startMonitoring } from '../../src/runtime/start-monitoring.js';
import { CAPTURE_POSITIONS_TABLE, CAPTURE_STATS_TABLE } from '../../src/store/capture-positions.js';
import { createStore } from '../../src/store/create-store.js';
import { REDIS_URL, removeQueue, uniqueQueueName } from '../helpers/queue.js';
import {
  MARIADB,
  MYSQL_URL,
  POSTGRES,
  POSTGRES_URL,
  REDIS,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const postgresUp = await serviceAvailable(POSTGRES);
const mariadbUp = await serviceAvailable(MARIADB);
const redisUp = await serviceAvailable(REDIS);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'activity-log.js');

/** What a test does to the application database, whichever it is. */
interface Database {
  query(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** The executor `tagTransaction` is given. */
  readonly executor: pg.Client | mysql.Connection;
}

interface CaptureScene {
  readonly table: string;
  readonly activityTable: string;
  readonly slot: string;
  readonly env: Record<string, string>;
  readonly config: Config;
  readonly db: Database;
}

type Dialect = 'postgres' | 'mariadb';

const quote = (dialect: Dialect, name: string) => (dialect === 'postgres' ? `"${name}"` : `\`${name}\``);

/**
 * An application table, an activity table and a slot of their own (PostgreSQL: a slot and a
 * publication; MariaDB: a replica server id and a saved position), all removed afterwards.
 */
async function scene(
  dialect: Dialect,
  defer: TestScope['defer'],
  extraEnv: Record<string, string> = {},
): Promise<CaptureScene> {
  const suffix = uniqueSuffix();
  const table = `orders_${suffix}`;
  const activityTable = `capture_activity_${suffix}`;
  const slot = `al_${suffix}`;
  const url = dialect === 'postgres' ? POSTGRES_URL : MYSQL_URL;
  const spoolDir = mkdtempSync(join(tmpdir(), 'activity-log-capture-'));
  defer(() => rmSync(spoolDir, { recursive: true, force: true }));
  let db: Database;
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    defer(() => client.end());
    db = { executor: client, query: async (text, params) => (await client.query(text, params)).rows };
    defer(async () => {
      await client.query(
        'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active',
        [slot],
      );
      for (let attempt = 0; attempt < 40; attempt++) {
        const slots = await client.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
          slot,
        ]);
        if (slots.rows.length === 0) break;
        if (slots.rows[0].active === false) {
          await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await client.query(`DROP PUBLICATION IF EXISTS "${slot}"`);
    });
  } else {
    const connection = await mysql.createConnection({ uri: MYSQL_URL, supportBigNumbers: true });
    defer(() => connection.end());
    db = {
      executor: connection,
      query: async (text, params) => (await connection.query(text, params))[0] as Record<string, unknown>[],
    };
  }
  const placeholder = dialect === 'postgres' ? '$1' : '?';
  defer(async () => {
    const q = (name: string) => quote(dialect, name);
    await db.query(
      `DROP TABLE IF EXISTS ${q(table)}, ${q(activityTable)}, ${q(`${activityTable}_seals`)}, ${q(`${activityTable}_migrations`)}`,
    );
    for (const bookkeeping of [CAPTURE_POSITIONS_TABLE, CAPTURE_STATS_TABLE]) {
      await db.query(`DELETE FROM ${bookkeeping} WHERE slot = ${placeholder}`, [slot]).catch(() => undefined);
    }
  });
  await db.query(
    dialect === 'postgres'
      ? `CREATE TABLE "${table}" (id integer PRIMARY KEY, status text NOT NULL, note text)`
      : `CREATE TABLE \`${table}\` (id INT PRIMARY KEY, status VARCHAR(20) NOT NULL, note TEXT)`,
  );
  const env: Record<string, string> = {
    DATABASE_URL: url,
    ACTIVITY_LOG_TABLE: activityTable,
    ACTIVITY_LOG_METHOD: 'batch',
    ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    ACTIVITY_LOG_CAPTURE_SOURCE: url,
    ACTIVITY_LOG_CAPTURE_TABLES: table,
    ACTIVITY_LOG_CAPTURE_SLOT: slot,
    ACTIVITY_LOG_CAPTURE_EXCLUDE_COLUMNS: `${table}.note`,
    ...extraEnv,
  };
  const config = loadConfig({ env });
  const store = createStore(config.database);
  await store.migrate();
  await store.close();
  await setUpCapture(config, () => undefined);
  return { table, activityTable, slot, env, config, db };
}

/** Runs `capture` in this process until `stop()`, writing its figures every 200 ms. */
function startCapture(
  config: Config,
  onMeasured?: (stats: CaptureStats) => Promise<void> | void,
): { stop: () => Promise<CaptureStats> } {
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
    reportIntervalMs: 200,
    ...(onMeasured === undefined ? {} : { onMeasured }),
  });
  return {
    stop: async () => {
      requestStop();
      return running;
    },
  };
}

/** Monitoring as `serve` has it, without Redis: the capture figures come from the activity database. */
function serveMonitoring(s: CaptureScene, defer: TestScope['defer']): Monitoring {
  const monitoring = startMonitoring({
    config: s.config,
    shared: false,
    alerts: false,
    capture: new CaptureWatch(s.config.database),
  });
  defer(() => monitoring.close());
  return monitoring;
}

async function captureEntry(monitoring: Monitoring, slot: string): Promise<CaptureJson | undefined> {
  const { data } = await monitoring.snapshot();
  return data.capture.find((entry) => entry.slot === slot);
}

async function waitFor<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what} not seen after ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One line of the Prometheus text: the value of `name` for this slot, or undefined. */
function metricOf(text: string, name: string, slot: string): number | undefined {
  const line = text
    .split('\n')
    .find((candidate) => candidate.startsWith(`${name}{`) && candidate.includes(`slot="${slot}"`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Inserts `rows` rows in transactions of ten, one every 20 ms. */
async function writeSteadily(s: CaptureScene, dialect: Dialect, rows: number): Promise<void> {
  const table = quote(dialect, s.table);
  for (let first = 1; first <= rows; first += 10) {
    const values = Array.from({ length: 10 }, (_, i) => `(${first + i}, 'new')`).join(', ');
    await s.db.query(`INSERT INTO ${table} (id, status) VALUES ${values}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function storedActivities(s: CaptureScene, dialect: Dialect): Promise<Record<string, unknown>[]> {
  const rows = await s.db.query(`SELECT * FROM ${quote(dialect, s.activityTable)}`);
  return rows.map((row) => ({
    ...row,
    properties: typeof row.properties === 'string' ? JSON.parse(row.properties) : row.properties,
  }));
}

for (const dialect of ['postgres', 'mariadb'] as const) {
  const available = dialect === 'postgres' ? postgresUp : mariadbUp;

  describe.skipIf(!available)(`capture operations (${dialect})`, () => {
    it('shows a running capture in the snapshot and /metrics with its lag, retained log and events per second, and as stopped once it stops', async ({
      defer,
    }) => {
      const s = await scene(dialect, defer);
      const monitoring = serveMonitoring(s, defer);
      const capture = startCapture(s.config);
      let stopped = false;
      defer(() => (stopped ? undefined : capture.stop()));
      const writing = writeSteadily(s, dialect, 600);
      const live = await waitFor(
        'a live capture with events per second',
        () => captureEntry(monitoring, s.slot),
        (entry) => entry?.live === true && entry.events_per_second > 0 && entry.position !== null,
      );
      expect(live).toMatchObject({ kind: dialect, state: 'streaming', pid: process.pid });
      expect(live!.source).toContain(s.slot);
      expect(live!.lag_bytes).toBeTypeOf('number');
      expect(live!.retained_bytes).toBeTypeOf('number');
      expect(live!.lag_seconds).toBeGreaterThanOrEqual(0);
      expect(Date.parse(live!.position_saved_at!)).toBeGreaterThan(Date.now() - 30_000);

      const text = await monitoring.prometheus();
      expect(metricOf(text, 'activity_log_capture_up', s.slot)).toBe(1);
      expect(metricOf(text, 'activity_log_capture_events_per_second', s.slot)).toBeGreaterThan(0);
      expect(metricOf(text, 'activity_log_capture_lag_seconds', s.slot)).toBeGreaterThanOrEqual(0);
      expect(metricOf(text, 'activity_log_capture_retained_bytes', s.slot)).toBeGreaterThanOrEqual(0);
      expect(text).toMatch(
        new RegExp(`activity_log_capture_state\\{[^}]*slot="${s.slot}"[^}]*state="streaming"\\} 1`),
      );

      await writing;
      await capture.stop();
      stopped = true;
      const after = await captureEntry(monitoring, s.slot);
      expect(after).toMatchObject({ state: 'stopped', live: false, events_per_second: 0, activities: 600 });
      expect(metricOf(await monitoring.prometheus(), 'activity_log_capture_up', s.slot)).toBe(0);
      const status = await captureStatus(s.config);
      expect(status.process).toMatchObject({ state: 'stopped', live: false, activities: 600 });
      expect(status.process!.position).toBe(status.saved!.position);
    });

    it('records an untagged change with no causer and properties.source, a tagged one without it', async ({
      defer,
    }) => {
      const s = await scene(dialect, defer);
      const activityLog = createActivityLog({ env: s.env });
      defer(() => activityLog.close());
      const capture = startCapture(s.config);
      const table = quote(dialect, s.table);
      await s.db.query(`INSERT INTO ${table} (id, status) VALUES (1, 'console')`);
      let xid: number | null = null;
      if (dialect === 'postgres') {
        await s.db.query('BEGIN');
        await s.db.query(`INSERT INTO ${table} (id, status) VALUES (2, 'console')`);
        const [row] = await s.db.query('SELECT (pg_current_xact_id()::text::bigint % 4294967296) AS xid');
        xid = Number(row!.xid);
        await s.db.query('COMMIT');
      } else {
        await s.db.query(`INSERT INTO ${table} (id, status) VALUES (2, 'console')`);
      }
      await runWithContext({ causer: { type: 'User', id: '42' } }, async () => {
        await s.db.query('BEGIN');
        await activityLog.tagTransaction(s.db.executor);
        await s.db.query(`INSERT INTO ${table} (id, status) VALUES (3, 'app')`);
        await s.db.query('COMMIT');
      });
      await waitFor(
        'three activities',
        () => storedActivities(s, dialect),
        (rows) => rows.length >= 3,
      );
      await capture.stop();
      const rows = await storedActivities(s, dialect);
      const byId = (id: string) => rows.find((row) => row.subject_id === id)!;
      for (const id of ['1', '2']) {
        expect(byId(id).causer_id).toBeNull();
        // Neither pgoutput nor MariaDB 10.11's binary log says which database user wrote a transaction.
        expect(byId(id).properties).toHaveProperty('source', null);
      }
      if (xid !== null) expect((byId('2').properties as { capture: { xid: number } }).capture.xid).toBe(xid);
      expect(byId('3').causer_id).toBe('42');
      expect(byId('3').properties).not.toHaveProperty('source');
    });
  });
}

describe.skipIf(!postgresUp)('capture operations (postgres, a separate process)', () => {
  it('shows the capture of a process killed with SIGKILL as stale once its figures pass the staleness bound', async ({
    defer,
  }) => {
    const s = await scene('postgres', defer);
    const monitoring = serveMonitoring(s, defer);
    const child = spawn(process.execPath, [BIN, 'capture'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...s.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise((resolve) => child.once('close', resolve));
    defer(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const writing = writeSteadily(s, 'postgres', 100);
    const live = await waitFor(
      'the capture process live',
      () => captureEntry(monitoring, s.slot),
      (entry) => entry?.live === true && entry.activities > 0,
    );
    expect(live!.pid).toBe(child.pid);
    await writing;
    child.kill('SIGKILL');
    await exited;
    const stale = await waitFor(
      'the figures stale',
      () => captureEntry(monitoring, s.slot),
      (entry) => entry?.state === 'stale',
      40_000,
    );
    expect(stale).toMatchObject({ live: false, events_per_second: 0 });
    expect(stale!.report_age_seconds).toBeGreaterThanOrEqual(15);
    expect(metricOf(await monitoring.prometheus(), 'activity_log_capture_up', s.slot)).toBe(0);
  }, 90_000);

  it('fires capture_lag once the WAL kept behind the slot passes ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB', async ({
    defer,
  }) => {
    const posted: { rule: string; status: string; message: string }[] = [];
    const webhook = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8');
      });
      request.on('end', () => {
        posted.push(JSON.parse(body));
        response.end();
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    defer(() => new Promise((resolve) => webhook.close(resolve)));
    const port = (webhook.address() as AddressInfo).port;
    const s = await scene('postgres', defer, {
      ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB: '1',
      ACTIVITY_LOG_ALERT_WEBHOOK: `http://127.0.0.1:${port}/alerts`,
    });
    const warnings: string[] = [];
    const alert = new CaptureLagAlert(s.config, (line) => warnings.push(line));
    const capture = startCapture(s.config, (stats) => alert.check(stats));
    defer(() => capture.stop());
    // About 4 MB of WAL the slot must keep until capture has made it durable.
    const note = randomBytes(2048).toString('base64');
    for (let first = 1; first <= 2000; first += 500) {
      await s.db.query(
        `INSERT INTO "${s.table}" (id, status, note) SELECT g, 'bulk', $1 || g FROM generate_series($2::int, $3::int) AS g`,
        [note, first, first + 499],
      );
    }
    await waitFor(
      'capture_lag posted',
      async () => posted.length,
      (n) => n > 0,
    );
    expect(posted[0]).toMatchObject({ rule: 'capture_lag', status: 'firing' });
    expect(posted[0]!.message).toContain('ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB=1');
    expect(warnings[0]).toMatch(/^alert capture_lag firing: capture of slot al_/);
  });
});

describe.skipIf(!postgresUp || !redisUp)('capture operations (postgres, with the queue)', () => {
  it('sends the capture figures through Redis with the process report, where a reader of the queue sees them', async ({
    defer,
  }) => {
    const queueName = uniqueQueueName('capture-ops');
    const s = await scene('postgres', defer, {
      QUEUE_CONNECTION: 'redis',
      REDIS_URL,
      ACTIVITY_LOG_METHOD: 'queue',
      ACTIVITY_LOG_QUEUE_NAME: queueName,
    });
    defer(() => removeQueue(s.config, queueName));
    // Reads Redis only: no CaptureWatch on the activity database.
    const reader = startMonitoring({ config: s.config, shared: true, alerts: false });
    defer(() => reader.close());
    const capture = startCapture(s.config);
    let stopped = false;
    defer(() => (stopped ? undefined : capture.stop()));
    const writing = writeSteadily(s, 'postgres', 300);
    const seen = await waitFor(
      'the capture figures in Redis',
      async () => (await reader.snapshot()).data,
      (data) => data.capture.some((entry) => entry.slot === s.slot && entry.live && entry.activities > 0),
    );
    expect(seen.source).toBe('redis');
    const entry = seen.capture.find((candidate) => candidate.slot === s.slot)!;
    expect(entry).toMatchObject({ kind: 'postgres', pid: process.pid });
    expect(entry.events_per_second).toBeGreaterThan(0);
    await writing;
    await capture.stop();
    stopped = true;
  });
});

describe.skipIf(!mariadbUp)('the database user of a MariaDB/MySQL connection', () => {
  it('is looked up by connection id while the connection lives, and never for a transaction before the server started', async ({
    defer,
  }) => {
    const side = await mysql.createConnection({ uri: MYSQL_URL });
    defer(() => side.end());
    const writer = await mysql.createConnection({ uri: MYSQL_URL });
    defer(() => writer.end().catch(() => undefined));
    const users = new MysqlConnectionUsers(
      async (text, values) => (await side.query(text, values))[0] as never,
    );
    const [[row]] = (await writer.query(
      'SELECT CONNECTION_ID() AS id, CURRENT_USER() AS user',
    )) as unknown as [{ id: number; user: string }[]];
    expect(await users.userOf(Number(row!.id), new Date())).toBe(row!.user.split('@')[0]);
    expect(await users.userOf(Number(row!.id) + 1_000_000, new Date())).toBeUndefined();
    const [[status]] = (await side.query(
      "SELECT VARIABLE_VALUE AS uptime FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'",
    )) as unknown as [{ uptime: string }[]];
    const beforeStart = new Date(Date.now() - (Number(status!.uptime) + 60) * 1000);
    const fresh = new MysqlConnectionUsers(
      async (text, values) => (await side.query(text, values))[0] as never,
    );
    expect(await fresh.userOf(Number(row!.id), beforeStart)).toBeUndefined();
  });
});
