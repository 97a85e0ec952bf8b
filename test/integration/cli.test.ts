import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { beforeAll, describe, expect } from 'vitest';
import { SHUTDOWN_GRACE_MS } from '../../src/cli/commands/serve.js';
import { type Config, loadConfig } from '../../src/config/config.js';
import { createActivityLog } from '../../src/runtime/create-activity-log.js';
import { createStore } from '../../src/store/create-store.js';
import { REDIS_URL, removeQueue, uniqueQueueName } from '../helpers/queue.js';
import {
  MARIADB,
  MYSQL_URL,
  POSTGRES,
  POSTGRES_URL,
  REDIS,
  type ServiceInfo,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'activity-log.js');
const DAY_MS = 86_400_000;

interface CliRun {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does) before the CLI tests');
  }
});

/** A fresh working directory, so nothing is read from or written to the repository (.env, ./storage). */
function workDir(defer: TestScope['defer']): string {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-cli-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts `node bin/activity-log.js <args>` with only PATH and `env` in its environment. */
function spawnCli(
  defer: TestScope['defer'],
  args: readonly string[],
  env: Record<string, string>,
  cwd: string,
): CliRun {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
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
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  defer(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

async function runCli(
  defer: TestScope['defer'],
  args: readonly string[],
  env: Record<string, string> = {},
  cwd: string = workDir(defer),
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnCli(defer, args, env, cwd);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
  const code = await run.exited;
  clearTimeout(timer);
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

describe('command line errors', () => {
  it('rejects an unknown command with one line listing the commands (exit 2)', async ({ defer }) => {
    const { code, stderr } = await runCli(defer, ['frobnicate']);
    expect(code).toBe(2);
    expect(lines(stderr)).toHaveLength(1);
    expect(stderr).toMatch(/^activity-log: unknown command 'frobnicate'.*commands: migrate, serve/);
  });

  it('rejects bad flag values with one line naming the flag and what is allowed (exit 2)', async ({
    defer,
  }) => {
    const cases: [string[], RegExp][] = [
      [['prune', '--days=abc'], /--days must be a whole number from 1 to 36500 \(got "abc"\)/],
      [['prune', '--days=0'], /--days must be a whole number from 1/],
      [['prune', '--chunk=0'], /--chunk must be a whole number from 1 to 10000 \(got "0"\)/],
      [['prune', '--chunk=50000'], /--chunk must be a whole number from 1 to 10000 \(got "50000"\)/],
      [['prune', '--log-name='], /--log-name must be 1 to 191 characters/],
      [['prune', '--dayz=3'], /unknown option '--dayz=3'.*--days/],
      [['serve', '--port=http'], /--port must be a whole number from 0 to 65535 \(got "http"\)/],
      [['migrate', 'extra'], /too many arguments for 'migrate'/],
    ];
    const runs = await Promise.all(cases.map(([args]) => runCli(defer, args)));
    for (const [i, [args, message]] of cases.entries()) {
      const { code, stdout, stderr } = runs[i]!;
      expect(code, args.join(' ')).toBe(2);
      expect(lines(stderr), args.join(' ')).toHaveLength(1);
      expect(stderr, args.join(' ')).toMatch(message);
      expect(stdout).toBe('');
    }
  });

  it('stops on bad configuration with one line naming the variable (exit 1); --verbose adds the stack', async ({
    defer,
  }) => {
    const plain = await runCli(defer, ['migrate'], { DB_POOL_MAX: 'abc' });
    expect(plain.code).toBe(1);
    expect(lines(plain.stderr)).toEqual([
      'activity-log: DB_POOL_MAX="abc" is not allowed: expected a whole number from 1 to 1000',
    ]);

    const verbose = await runCli(defer, ['migrate', '--verbose'], { DB_POOL_MAX: 'abc' });
    expect(verbose.code).toBe(1);
    expect(lines(verbose.stderr)[0]).toBe(lines(plain.stderr)[0]);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });

  it('refuses every queue command without QUEUE_CONNECTION=redis, with one line naming the variable (exit 1)', async ({
    defer,
  }) => {
    // Were a command to go ahead anyway, it would find no Redis rather than act on a real one.
    const env = { REDIS_URL: 'redis://127.0.0.1:1' };
    const cases: [string[], string][] = [
      [['restart'], 'activity-log restart'],
      [['restart', '--all-queues'], 'activity-log restart'],
      [['failed'], 'activity-log failed'],
      [['retry', 'all'], 'activity-log retry'],
      [['flush'], 'activity-log flush'],
      [['process'], 'activity-log process'],
      [['process', '--method=batch'], 'activity-log process'],
      [['work'], 'a queue worker'],
    ];
    const runs = await Promise.all(cases.map(([args]) => runCli(defer, args, env)));
    for (const [i, [args, what]] of cases.entries()) {
      const { code, stdout, stderr } = runs[i]!;
      expect(code, args.join(' ')).toBe(1);
      expect(lines(stderr), args.join(' ')).toHaveLength(1);
      expect(stderr, args.join(' ')).toContain(
        `activity-log: QUEUE_CONNECTION=sync is not allowed with ${what}: expected redis (set QUEUE_CONNECTION=redis and REDIS_URL or REDIS_HOST/REDIS_PORT`,
      );
      expect(stdout, args.join(' ')).toBe('');
    }
    expect(runs[5]!.stderr).toContain('; to replay only the spool, run activity-log spool replay)');
  });

  it('prints help and the version with exit 0', async ({ defer }) => {
    const help = await runCli(defer, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('prune [options]');
    const version = await runCli(defer, ['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

interface DatabaseUnderTest {
  readonly service: ServiceInfo;
  readonly url: string;
  readonly describe: RegExp;
  dropTables(tables: readonly string[]): Promise<void>;
}

const DATABASES: readonly DatabaseUnderTest[] = [
  {
    service: MARIADB,
    url: MYSQL_URL,
    describe: /on mysql root@[\d.]+:\d+\/test/,
    async dropTables(tables) {
      const connection = await mysql.createConnection(MYSQL_URL);
      try {
        for (const table of tables) await connection.query(`DROP TABLE IF EXISTS \`${table}\``);
      } finally {
        await connection.end();
      }
    },
  },
  {
    service: POSTGRES,
    url: POSTGRES_URL,
    describe: /on pgsql postgres@[\d.]+:\d+\/test/,
    async dropTables(tables) {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        for (const table of tables) await client.query(`DROP TABLE IF EXISTS "${table}"`);
      } finally {
        await client.end();
      }
    },
  },
];

for (const database of DATABASES) {
  const available = await serviceAvailable(database.service);

  describe.skipIf(!available)(`migrate and prune on ${database.service.name}`, () => {
    /** A table of its own for one test, dropped afterwards (with its migrations table). */
    function tableEnv(defer: TestScope['defer']): { env: Record<string, string>; config: Config } {
      const table = `cli_${uniqueSuffix()}`;
      defer(() =>
        database.dropTables([table, `${table}_migrations`, `${table}_seals`, `${table}_seals_pruned`]),
      );
      const env = { DATABASE_URL: database.url, ACTIVITY_LOG_TABLE: table };
      return { env, config: loadConfig({ env }) };
    }

    async function countRows(config: Config, logName?: string): Promise<number> {
      const store = createStore(config.database);
      try {
        return (await store.query({ limit: 500, logName })).data.length;
      } finally {
        await store.close();
      }
    }

    it('migrate creates the table, and a second run reports it up to date', async ({ defer }) => {
      const { env, config } = tableEnv(defer);
      const first = await runCli(defer, ['migrate'], env);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(new RegExp(`^migrated ${config.database.table} `));
      expect(first.stdout).toMatch(database.describe);
      expect(first.stdout).toMatch(/schema version 0 → \d+\n$/);

      const second = await runCli(defer, ['migrate'], env);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toMatch(/is already up to date \(schema version \d+\)\n$/);
      expect(await countRows(config)).toBe(0);
    });

    it('prune --dry-run counts and deletes nothing; prune deletes in chunks, per log or all', async ({
      defer,
    }) => {
      const { env, config } = tableEnv(defer);
      expect((await runCli(defer, ['migrate'], env)).code).toBe(0);
      const activityLog = createActivityLog({
        env,
        config: { method: 'sync', spoolDir: join(workDir(defer), 'spool') },
      });
      const now = Date.now();
      await activityLog.logMany([
        ...Array.from({ length: 20 }, (_, i) => ({
          description: `old order ${i}`,
          logName: 'orders',
          createdAt: new Date(now - (40 + i) * DAY_MS),
        })),
        ...Array.from({ length: 5 }, (_, i) => ({
          description: `old user ${i}`,
          logName: 'users',
          createdAt: new Date(now - (31 + i) * DAY_MS),
        })),
        ...Array.from({ length: 5 }, (_, i) => ({
          description: `recent order ${i}`,
          logName: 'orders',
          createdAt: new Date(now - i * DAY_MS),
        })),
      ]);
      await activityLog.close();
      expect(await countRows(config)).toBe(30);

      const dryRun = await runCli(defer, ['prune', '--days=30', '--dry-run'], env);
      expect(dryRun.code, dryRun.stderr).toBe(0);
      expect(dryRun.stdout).toMatch(
        /^would delete 25 activities older than \d{4}-\d{2}-\d{2} [\d:]+ UTC \(30 days\)\n$/,
      );
      expect(await countRows(config)).toBe(30);

      const orders = await runCli(defer, ['prune', '--days=30', '--log-name=orders', '--chunk=8'], env);
      expect(orders.code, orders.stderr).toBe(0);
      expect(lines(orders.stderr)).toEqual([
        'deleted 8 so far (chunk 1)',
        'deleted 16 so far (chunk 2)',
        'deleted 20 so far (chunk 3)',
      ]);
      expect(orders.stdout).toMatch(/^deleted 20 activities in log "orders" older than .* \(30 days\)\n$/);
      expect(await countRows(config, 'orders')).toBe(5);
      expect(await countRows(config, 'users')).toBe(5);

      const rest = await runCli(defer, ['prune', '--days=30'], env);
      expect(rest.code, rest.stderr).toBe(0);
      expect(rest.stdout).toMatch(/^deleted 5 activities older than/);
      expect(await countRows(config)).toBe(5);

      const nothing = await runCli(defer, ['prune'], { ...env, ACTIVITY_LOG_RETENTION_DAYS: '365' });
      expect(nothing.stdout).toMatch(/^deleted 0 activities older than .* \(365 days\)\n$/);
    });

    it('reports an unreachable database with one line (exit 1)', async ({ defer }) => {
      const unreachable = database.url.replace(/:\d+\//, ':1/');
      const { code, stderr } = await runCli(defer, ['migrate'], {
        DATABASE_URL: unreachable,
        DB_CONNECT_TIMEOUT_MS: '1000',
      });
      expect(code).toBe(1);
      expect(lines(stderr)).toHaveLength(1);
      expect(stderr).toMatch(/^activity-log: /);
    });
  });
}

const redisUp = await serviceAvailable(REDIS);

describe('serve (SQLite in a temporary directory)', () => {
  interface Served {
    readonly run: CliRun;
    readonly url: string;
    readonly cwd: string;
  }

  async function serve(
    defer: TestScope['defer'],
    args: string[],
    env: Record<string, string> = {},
  ): Promise<Served> {
    const cwd = workDir(defer);
    const run = spawnCli(defer, ['serve', '--port=0', ...args], env, cwd);
    const url = await waitFor('the listening line', () => {
      if (run.child.exitCode !== null) throw new Error(`serve exited early: ${run.stderr()}`);
      return /listening on (http:\/\/\S+)/.exec(run.stdout())?.[1];
    });
    return { run, url, cwd };
  }

  function token(stdout: string, variable: string): string {
    const match = new RegExp(`^ {2}${variable}=(\\S+)$`, 'm').exec(stdout);
    if (match === null) throw new Error(`no generated ${variable} in:\n${stdout}`);
    return match[1]!;
  }

  it('warns at start, one line each, about configured tokens short enough to be guessed', async ({
    defer,
  }) => {
    const { run } = await serve(defer, [], {
      ACTIVITY_LOG_INGEST_TOKEN: 'short',
      ACTIVITY_LOG_ADMIN_TOKEN: 'a-long-random-admin-token-value-0123456789',
    });
    run.child.kill('SIGTERM');
    await run.exited;
    const warnings = lines(run.stderr()).filter((line) => /short enough to be guessed/.test(line));
    expect(warnings).toEqual([
      'activity-log: warning: ACTIVITY_LOG_INGEST_TOKEN is only 5 characters, short enough to be guessed; use a long random value (e.g. 32 random bytes, as serve generates when it is unset)',
    ]);
  });

  it('generates tokens for the run, answers /health, ingests, and exits 0 on SIGTERM', async ({ defer }) => {
    const { run, url, cwd } = await serve(defer, ['--worker'], {
      ACTIVITY_LOG_METHOD: 'batch',
      ACTIVITY_LOG_SPOOL_DIR: './spool',
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(run.stdout()).toMatch(/migrated activity_log on sqlite \.\/storage\/activity-log\.sqlite/);
    expect(run.stderr()).toMatch(/--worker has no effect: ACTIVITY_LOG_METHOD=batch/);
    const ingestToken = token(run.stdout(), 'ACTIVITY_LOG_INGEST_TOKEN');
    const adminToken = token(run.stdout(), 'ACTIVITY_LOG_ADMIN_TOKEN');
    expect(ingestToken).not.toBe(adminToken);

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', delivery: { method: 'batch' } });

    const ingested = await fetch(`${url}/api/activities`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestToken}` },
      body: JSON.stringify([{ description: 'served', log_name: 'cli' }]),
    });
    expect(ingested.status).toBe(202);
    const { ids } = (await ingested.json()) as { ids: string[] };

    const found = await waitFor('the ingested activity', async () => {
      const response = await fetch(`${url}/api/backoffice/activity-logs?log_name=cli`, {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      const body = (await response.json()) as { data: { id: string }[] };
      return body.data.length > 0 ? body.data : undefined;
    });
    expect(found.map((activity) => activity.id)).toEqual(ids);

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.stdout()).toMatch(/stopped\n$/);
    expect(existsSync(join(cwd, 'storage', 'activity-log.sqlite'))).toBe(true);
  });

  /** Nothing is flushed by size or time during a test: only shutdown writes what was accepted. */
  const FLUSHED_ONLY_AT_SHUTDOWN = {
    ACTIVITY_LOG_METHOD: 'batch',
    ACTIVITY_LOG_FLUSH_INTERVAL_MS: '60000',
    ACTIVITY_LOG_INGEST_TOKEN: 'ingest-secret',
    ACTIVITY_LOG_ADMIN_TOKEN: 'admin-secret',
  };

  /** Descriptions of what a `serve` run in `cwd` stored in its embedded SQLite file, newest first. */
  async function servedDescriptions(cwd: string): Promise<string[]> {
    const store = createStore(
      loadConfig({ env: { DATABASE_URL: `sqlite:${join(cwd, 'storage', 'activity-log.sqlite')}` } }).database,
    );
    try {
      return (await store.query()).data.map((activity) => activity.description);
    } finally {
      await store.close();
    }
  }

  it('flushes accepted activities on SIGTERM before exiting', async ({ defer }) => {
    const { run, url, cwd } = await serve(defer, [], FLUSHED_ONLY_AT_SHUTDOWN);
    expect(run.stdout()).not.toContain('ingest-secret');
    expect(run.stdout()).not.toContain('generated for this run');

    const wrong = await fetch(`${url}/api/activities`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer nope' },
      body: JSON.stringify({ description: 'refused' }),
    });
    expect(wrong.status).toBe(401);
    const accepted = await fetch(`${url}/api/activities`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ingest-secret' },
      body: JSON.stringify({ description: 'flushed at shutdown' }),
    });
    expect(accepted.status).toBe(202);

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);

    expect(await servedDescriptions(cwd)).toEqual(['flushed at shutdown']);
  });

  it('on SIGTERM gives a client that never finishes its request a few seconds, then flushes and exits 0', async ({
    defer,
  }) => {
    const { run, url, cwd } = await serve(defer, [], FLUSHED_ONLY_AT_SHUTDOWN);
    const accepted = await fetch(`${url}/api/activities`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ingest-secret' },
      body: JSON.stringify({ description: 'accepted before the stalled client' }),
    });
    expect(accepted.status).toBe(202);
    // Headers and half a body, then nothing: the request never completes.
    const { port } = new URL(url);
    const stalled = connect(Number(port), '127.0.0.1');
    stalled.on('error', () => undefined);
    await new Promise<void>((resolve) => stalled.once('connect', () => resolve()));
    stalled.write(
      'POST /api/activities HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ingest-secret\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"descr',
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const signalled = Date.now();
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    const seconds = (Date.now() - signalled) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(SHUTDOWN_GRACE_MS / 1000 - 0.5);
    expect(seconds).toBeLessThan(SHUTDOWN_GRACE_MS / 1000 + 10);
    expect(run.stderr()).toMatch(/requests still open after 5 s; closing their connections/);
    stalled.destroy();
    expect(await servedDescriptions(cwd)).toEqual(['accepted before the stalled client']);
  }, 30_000);

  it('exits 0 on SIGINT too', async ({ defer }) => {
    const { run } = await serve(defer, []);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  });

  it.skipIf(!redisUp)(
    'runs a queue worker in-process with --worker and ACTIVITY_LOG_METHOD=queue',
    async ({ defer }) => {
      const queueName = uniqueQueueName('serve');
      const env = {
        ACTIVITY_LOG_METHOD: 'queue',
        QUEUE_CONNECTION: 'redis',
        REDIS_URL,
        ACTIVITY_LOG_QUEUE_NAME: queueName,
        ACTIVITY_LOG_INGEST_TOKEN: 'ingest-secret',
        ACTIVITY_LOG_ADMIN_TOKEN: 'admin-secret',
      };
      defer(() => removeQueue(loadConfig({ env }), queueName));
      const { run, url } = await serve(defer, ['--worker'], env);
      expect(run.stdout()).toContain(`queue worker started on ${queueName}`);

      const accepted = await fetch(`${url}/api/activities`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer ingest-secret' },
        body: JSON.stringify([{ description: 'through the queue' }, { description: 'and back' }]),
      });
      expect(accepted.status).toBe(202);
      const stored = await waitFor('the worker to store the queued activities', async () => {
        const response = await fetch(`${url}/api/backoffice/activity-logs`, {
          headers: { authorization: 'Bearer admin-secret' },
        });
        const body = (await response.json()) as { data: { description: string }[] };
        return body.data.length === 2 ? body.data : undefined;
      });
      expect(stored.map((activity) => activity.description).sort()).toEqual([
        'and back',
        'through the queue',
      ]);

      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    },
  );
});
