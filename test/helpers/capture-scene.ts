import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { CaptureStats } from '../../src/capture/capture-runner.js';
import { type Config, loadConfig } from '../../src/config/config.js';
import { runCapture, setUpCapture } from '../../src/runtime/run-capture.js';
import { CAPTURE_POSITIONS_TABLE, CAPTURE_STATS_TABLE } from '../../src/store/capture-positions.js';
import { createStore } from '../../src/store/create-store.js';
import { MYSQL_URL, POSTGRES_URL, uniqueSuffix } from './services.js';
import type { TestScope } from './test-context.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'activity-log.js');

export type CaptureDialect = 'postgres' | 'mariadb';

/** One statement on the application database, with `?`/`$n` placeholders as the dialect has them. */
export type Sql = (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

export interface CaptureScene {
  readonly dialect: CaptureDialect;
  readonly table: string;
  readonly activityTable: string;
  readonly slot: string;
  readonly env: Record<string, string>;
  readonly config: Config;
  /** A connection to the application (and activity) database. */
  readonly sql: Sql;
  /** Quotes an identifier as the dialect does. */
  readonly quote: (name: string) => string;
  /** Another connection, for a second concurrent transaction; closed afterwards. */
  connect(): Promise<{ readonly sql: Sql; readonly executor: unknown }>;
  /** The executor `tagTransaction` takes, on the scene's own connection. */
  readonly executor: unknown;
}

export interface SceneOptions {
  readonly columns?: string;
  readonly env?: Record<string, string>;
  /** The capture source URL when it differs from the test database's (a proxy in front of it). */
  readonly sourceUrl?: string;
}

const DEFAULT_COLUMNS: Record<CaptureDialect, string> = {
  postgres: 'id integer PRIMARY KEY, status text NOT NULL, total numeric(10,2), password text, note text',
  mariadb:
    'id INT PRIMARY KEY, status VARCHAR(20) NOT NULL, total DECIMAL(10,2), password VARCHAR(50), note VARCHAR(50)',
};

async function pgConnection(defer: TestScope['defer']): Promise<{ sql: Sql; executor: pg.Client }> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  defer(() => client.end());
  return {
    sql: async (text, params = []) => (await client.query(text, params)).rows as Record<string, unknown>[],
    executor: client,
  };
}

async function mariadbConnection(
  defer: TestScope['defer'],
): Promise<{ sql: Sql; executor: mysql.Connection }> {
  const connection = await mysql.createConnection({ uri: MYSQL_URL, supportBigNumbers: true });
  defer(() => connection.end());
  return {
    sql: async (text, params = []) => {
      const [rows] = await connection.query(text, params);
      return (Array.isArray(rows) ? rows : []) as Record<string, unknown>[];
    },
    executor: connection,
  };
}

/**
 * An application table `orders_<suffix>`, an activity table, a slot (PostgreSQL: and publication)
 * of their own, set up for capture with `note` excluded; all removed afterwards (on PostgreSQL the
 * slot first: a slot left behind keeps WAL forever).
 */
export async function captureScene(
  dialect: CaptureDialect,
  defer: TestScope['defer'],
  options: SceneOptions = {},
): Promise<CaptureScene> {
  const suffix = uniqueSuffix();
  const table = `orders_${suffix}`;
  const activityTable = `capture_activity_${suffix}`;
  const slot = `al_${suffix}`;
  const spoolDir = mkdtempSync(join(tmpdir(), 'activity-log-capture-'));
  defer(() => rmSync(spoolDir, { recursive: true, force: true }));
  const connect = () => (dialect === 'postgres' ? pgConnection(defer) : mariadbConnection(defer));
  const { sql, executor } = await connect();
  const quote = (name: string) => (dialect === 'postgres' ? `"${name}"` : `\`${name}\``);
  defer(async () => {
    if (dialect === 'postgres') {
      await sql(
        'SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active',
        [slot],
      );
      for (let attempt = 0; attempt < 40; attempt++) {
        const slots = await sql('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
        if (slots.length === 0) break;
        if (slots[0]!.active === false) {
          await sql('SELECT pg_drop_replication_slot($1)', [slot]);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await sql(`DROP PUBLICATION IF EXISTS "${slot}"`);
    }
    await sql(
      `DROP TABLE IF EXISTS ${[table, activityTable, `${activityTable}_seals`, `${activityTable}_migrations`].map(quote).join(', ')}`,
    );
    for (const bookkeeping of [CAPTURE_POSITIONS_TABLE, CAPTURE_STATS_TABLE]) {
      await sql(`DELETE FROM ${bookkeeping} WHERE slot = ${dialect === 'postgres' ? '$1' : '?'}`, [
        slot,
      ]).catch(() => undefined);
    }
  });
  await sql(`CREATE TABLE ${quote(table)} (${options.columns ?? DEFAULT_COLUMNS[dialect]})`);
  const url = dialect === 'postgres' ? POSTGRES_URL : MYSQL_URL;
  const env: Record<string, string> = {
    DATABASE_URL: url,
    ACTIVITY_LOG_TABLE: activityTable,
    ACTIVITY_LOG_METHOD: 'batch',
    ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    ACTIVITY_LOG_CAPTURE_SOURCE: options.sourceUrl ?? url,
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
  // Set up through the database itself: a proxy in front of the source may be cut later.
  await setUpCapture(loadConfig({ env: { ...env, ACTIVITY_LOG_CAPTURE_SOURCE: url } }), () => undefined);
  return {
    dialect,
    table,
    activityTable,
    slot,
    env,
    config,
    sql,
    quote,
    executor,
    connect,
  };
}

export interface InProcessCapture {
  /** Lines capture wrote for the operator on stderr. */
  readonly warnings: string[];
  /** Settles when capture stops by itself (it gave up). */
  readonly running: Promise<CaptureStats>;
  stop(): Promise<CaptureStats>;
}

/** Runs `capture` in this process until `stop()`; resolves with its final figures. */
export function startCapture(config: Config, options: { reconnectDelayMs?: number } = {}): InProcessCapture {
  let requestStop: () => void = () => undefined;
  const stopRequested = new Promise<void>((resolve) => {
    requestStop = resolve;
  });
  const warnings: string[] = [];
  const running = runCapture(config, {
    from: 'saved',
    print: () => undefined,
    warn: (line) => {
      warnings.push(line);
      process.stderr.write(`${line}\n`);
    },
    stopRequested,
    checkpointIntervalMs: 50,
    ...(options.reconnectDelayMs === undefined ? {} : { reconnectDelayMs: options.reconnectDelayMs }),
  });
  running.catch(() => undefined);
  return {
    warnings,
    running,
    stop: async () => {
      requestStop();
      return running;
    },
  };
}

export interface CaptureProcess {
  readonly child: ChildProcess;
  /** Resolves once it printed `capture started`. */
  readonly started: Promise<void>;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

/** Runs `activity-log capture` as a child process of its own (killed afterwards if still running). */
export function spawnCapture(s: CaptureScene, defer: TestScope['defer']): CaptureProcess {
  const child = spawn(process.execPath, [BIN, 'capture'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...s.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const started = new Promise<void>((resolve) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      if (chunk.includes('capture started')) resolve();
    });
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  defer(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, started, exited, stderr: () => stderr };
}

export interface StoredActivity {
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
  description: string;
  properties: Record<string, Record<string, unknown>>;
}

/** The stored activities, properties parsed. */
export async function activities(s: CaptureScene): Promise<StoredActivity[]> {
  const rows = await s.sql(`SELECT * FROM ${s.quote(s.activityTable)}`);
  return rows.map((row) => ({
    ...(row as unknown as StoredActivity),
    properties: (typeof row.properties === 'string'
      ? JSON.parse(row.properties)
      : row.properties) as StoredActivity['properties'],
  }));
}

/** Activities in the order of the stream: by transaction position (LSN, GTID sequence number), then index. */
export function inStreamOrder(rows: readonly StoredActivity[]): StoredActivity[] {
  const rank = (position: string): bigint => {
    const lsn = /^([0-9A-F]+)\/([0-9A-F]+)$/i.exec(position);
    if (lsn !== null) return (BigInt(`0x${lsn[1]}`) << 32n) + BigInt(`0x${lsn[2]}`);
    return BigInt(/(\d+)$/.exec(position)?.[1] ?? '0');
  };
  const key = (row: StoredActivity) => rank(String(row.properties.capture!.position));
  return [...rows].sort((a, b) => {
    const byPosition = key(a) - key(b);
    if (byPosition !== 0n) return byPosition < 0n ? -1 : 1;
    return Number(a.properties.capture!.index) - Number(b.properties.capture!.index);
  });
}

/** Rows, distinct ids and distinct subjects stored. */
export async function counts(s: CaptureScene): Promise<{ rows: number; ids: number; subjects: number }> {
  const [row] = await s.sql(
    `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids, COUNT(DISTINCT subject_id) AS subjects FROM ${s.quote(s.activityTable)}`,
  );
  return { rows: Number(row!.n), ids: Number(row!.ids), subjects: Number(row!.subjects) };
}

export async function count(s: CaptureScene): Promise<number> {
  const [row] = await s.sql(`SELECT COUNT(*) AS n FROM ${s.quote(s.activityTable)}`);
  return Number(row!.n);
}

export async function waitForCount(s: CaptureScene, expected: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await count(s);
    if (n >= expected) return;
    if (Date.now() > deadline)
      throw new Error(`expected ${expected} activities, found ${n} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `INSERT` of rows `first..last` (id, status) in one statement. */
export function insertRange(s: CaptureScene, first: number, last: number, status = 'new'): Promise<unknown> {
  return s.dialect === 'postgres'
    ? s.sql(
        `INSERT INTO ${s.quote(s.table)} (id, status) SELECT g, $3 FROM generate_series($1::int, $2::int) AS g`,
        [first, last, status],
      )
    : s.sql(`INSERT INTO ${s.quote(s.table)} (id, status) SELECT seq, ? FROM seq_${first}_to_${last}`, [
        status,
      ]);
}

export interface KillLoopResult {
  readonly kills: number;
  /** Activities stored when each kill was done. */
  readonly storedAtKills: readonly number[];
  /** The exit code of the last process, stopped with SIGTERM once every row was stored. */
  readonly lastExitCode: number | null;
  readonly lastStderr: string;
}

/**
 * Writes `rows` rows in statements of `perStatement` (one transaction each) while `capture` runs
 * as a child process that is killed with SIGKILL a moment after each time it stored more, and
 * started again, at least three times; then runs it once more until every row is stored.
 */
export async function killCaptureDuringLoad(
  s: CaptureScene,
  defer: TestScope['defer'],
  options: { readonly rows: number; readonly perStatement: number; readonly pauseMs: number },
): Promise<KillLoopResult> {
  let writing = true;
  const writer = (async () => {
    for (let first = 1; first <= options.rows; first += options.perStatement) {
      await insertRange(s, first, first + options.perStatement - 1);
      await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
    writing = false;
  })();
  let kills = 0;
  const storedAtKills: number[] = [];
  while (writing || kills < 3) {
    const before = await count(s);
    const capture = spawnCapture(s, defer);
    await Promise.race([capture.started, capture.exited]);
    // Killed a moment after it stored more: with activities in flight and the position unsaved.
    const deadline = Date.now() + 10_000;
    while ((await count(s)) === before && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 1000));
    capture.child.kill('SIGKILL');
    await capture.exited;
    kills++;
    storedAtKills.push(await count(s));
  }
  await writer;
  const last = spawnCapture(s, defer);
  await waitForCount(s, options.rows, 60_000);
  // Past start-up (its signal handlers in place) before it is asked to stop.
  await last.started;
  last.child.kill('SIGTERM');
  const lastExitCode = await last.exited;
  return { kills, storedAtKills, lastExitCode, lastStderr: last.stderr() };
}
