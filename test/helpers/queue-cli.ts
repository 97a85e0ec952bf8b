import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { type Config, loadConfig } from '../../src/config/config.js';
import { createStore } from '../../src/store/create-store.js';
import { REDIS_URL, removeQueue, uniqueQueueName } from './queue.js';
import { MYSQL_URL, uniqueSuffix } from './services.js';
import type { TestScope } from './test-context.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${ROOT}bin/activity-log.js`;

/** A running `activity-log` process with its output collected. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `node bin/activity-log.js <args>` (the build in dist/) with `env` on top of a clean
 * environment; `prefix` is a command that runs it (e.g. in another network namespace), which must
 * end by exec'ing it so that the child's pid is node's.
 */
export function spawnCli(
  args: readonly string[],
  env: Record<string, string>,
  prefix: readonly string[] = [],
): CliProcess {
  if (!existsSync(`${ROOT}dist/cli/main.js`)) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does) before the CLI tests');
  }
  const command = [...prefix, process.execPath, BIN, ...args];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    // No .env or inherited ACTIVITY_LOG_* settings may leak in: only PATH and the test's values.
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs the CLI to completion (killing it after `timeoutMs`) and returns its exit code and output. */
export async function runCli(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawnCli(args, env);
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), timeoutMs);
  const { code } = await cli.exited;
  clearTimeout(timer);
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

/** A MariaDB table made for one test, with the environment that points the CLI at it. */
export interface TestTable {
  readonly table: string;
  readonly config: Config;
  /** Environment for `activity-log` processes: database, table, Redis, queue. */
  readonly env: Record<string, string>;
  readonly sql: mysql.Connection;
  migrate(): Promise<void>;
  count(): Promise<{ rows: number; distinct: number }>;
  drop(): Promise<void>;
}

/** Points a queue and a (not yet created) table at MariaDB; `migrate()` creates the table. */
export async function mariadbTable(
  label: string,
  queueName: string,
  extraEnv: Record<string, string> = {},
): Promise<TestTable> {
  const table = `t_${label}_${uniqueSuffix()}`.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 60);
  // A spool of its own: what one test leaves there must not be replayed into another's table.
  const spoolDir = join(tmpdir(), `activity-log-test-spool-${table}`);
  const env = {
    DATABASE_URL: MYSQL_URL,
    ACTIVITY_LOG_TABLE: table,
    ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    QUEUE_CONNECTION: 'redis',
    REDIS_URL,
    ACTIVITY_LOG_METHOD: 'queue',
    ACTIVITY_LOG_QUEUE_NAME: queueName,
    ...extraEnv,
  };
  const config = loadConfig({ env });
  // DATETIME(3) is stored as UTC text; read it as text so no local time zone is applied.
  const sql = await mysql.createConnection({ uri: MYSQL_URL, dateStrings: true });
  return {
    table,
    config,
    env,
    sql,
    async migrate() {
      const store = createStore(config.database);
      try {
        await store.migrate();
      } finally {
        await store.close();
      }
    },
    async count() {
      const [rows] = await sql.query<mysql.RowDataPacket[]>(
        `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM \`${table}\``,
      );
      return { rows: Number(rows[0]!.n), distinct: Number(rows[0]!.d) };
    },
    async drop() {
      await sql.query(`DROP TABLE IF EXISTS \`${table}\``);
      await sql.query(
        `DROP TABLE IF EXISTS \`${table}_migrations\`, \`${table}_seals\`, \`${table}_seals_pruned\``,
      );
      await sql.end();
      await rm(spoolDir, { recursive: true, force: true });
    },
  };
}

/**
 * A queue of its own and a MariaDB table pointed at it (not migrated yet) for one test; the
 * table's drop and the queue's removal are handed to `defer`.
 */
export async function queueTestTable(
  defer: TestScope['defer'],
  label: string,
  env: Record<string, string> = {},
): Promise<TestTable> {
  const queueName = uniqueQueueName(label);
  const table = await mariadbTable(label, queueName, env);
  defer(() => table.drop());
  defer(() => removeQueue(table.config, queueName));
  return table;
}
