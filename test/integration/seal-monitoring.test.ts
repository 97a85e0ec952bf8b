import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect } from 'vitest';
import type { AlertPayload } from '../../src/metrics/alerts.js';
import type { PerformanceSnapshot } from '../../src/metrics/snapshot.js';
import { parsePrometheus } from '../helpers/prometheus-text.js';
import { type CliProcess, runCli, spawnCli } from '../helpers/queue-cli.js';
import {
  MARIADB_TARGET,
  POSTGRES_TARGET,
  type ServiceInfo,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';
import { type TestScope, test } from '../helpers/test-context.js';

/**
 * Monitoring of tamper evidence on every dialect, through `serve`: the seals and sealed rows, the
 * checkpoint and the scheduled verify in the snapshot and in /metrics, and a row altered with plain
 * SQL raising `verify_failed` on the alert webhook (and resolving it once the row is put back).
 */

const ADMIN = 'admin-token-for-seal-monitoring';
const INGEST = 'ingest-token-for-seal-monitoring';

interface Admin {
  exec(text: string): Promise<void>;
  rows<T>(text: string): Promise<T[]>;
  close(): Promise<void>;
}

interface Target {
  readonly name: string;
  readonly service: ServiceInfo | undefined;
  databaseUrl(table: string): string;
  q(name: string): string;
  connect(table: string): Promise<Admin>;
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-seal-monitoring-'));
const sqliteFile = (table: string) => join(sqliteDir, `${table}.sqlite`);
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

const TARGETS: readonly Target[] = [
  {
    name: 'SQLite',
    service: undefined,
    databaseUrl: (table) => `sqlite:${sqliteFile(table)}`,
    q: (name) => `"${name}"`,
    connect: async (table) => {
      const db = new Database(sqliteFile(table));
      return {
        exec: async (text) => {
          db.exec(text);
        },
        rows: async <T>(text: string) => db.prepare(text).all() as T[],
        close: async () => {
          db.close();
        },
      };
    },
  },
  {
    name: MARIADB_TARGET.name,
    service: MARIADB_TARGET.service,
    databaseUrl: () => MARIADB_TARGET.url,
    q: (name) => `\`${name}\``,
    connect: async () => {
      const db = await mysql.createConnection(MARIADB_TARGET.url);
      return {
        exec: async (text) => {
          await db.query(text);
        },
        rows: async <T>(text: string) => (await db.query(text))[0] as T[],
        close: () => db.end(),
      };
    },
  },
  {
    name: POSTGRES_TARGET.name,
    service: POSTGRES_TARGET.service,
    databaseUrl: () => POSTGRES_TARGET.url,
    q: (name) => `"${name}"`,
    connect: async () => {
      const db = new pg.Client({ connectionString: POSTGRES_TARGET.url });
      await db.connect();
      return {
        exec: async (text) => {
          await db.query(text);
        },
        rows: async <T>(text: string) => (await db.query(text)).rows as T[],
        close: () => db.end(),
      };
    },
  },
];

/** A webhook receiver on loopback that keeps every alert it is sent; `defer` closes it. */
async function alertReceiver(defer: TestScope['defer']): Promise<{ url: string; alerts: AlertPayload[] }> {
  const alerts: AlertPayload[] = [];
  const server: Server = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      alerts.push(JSON.parse(body) as AlertPayload);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, alerts };
}

/** Polls `read` until `done` holds for its value; fails naming `what` and the serve output after `timeoutMs`. */
async function waitFor<T>(
  what: string,
  serve: CliProcess,
  read: () => Promise<T> | T,
  done: (value: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline || serve.child.exitCode !== null) {
      throw new Error(
        `${what}: last seen ${JSON.stringify(value)}\nstdout: ${serve.stdout()}\nstderr: ${serve.stderr()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

for (const target of TARGETS) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`tamper evidence monitoring: ${target.name}`, () => {
    test('serve shows seals, rows sealed, the checkpoint and the scheduled verify, and alerts on a tampered row', async ({
      defer,
    }) => {
      const dir = mkdtempSync(join(tmpdir(), 'activity-seal-monitoring-serve-'));
      defer(() => rmSync(dir, { recursive: true, force: true }));
      const table = `sealmon_${uniqueSuffix()}`;
      const admin = await target.connect(table);
      defer(async () => {
        for (const name of [table, `${table}_migrations`, `${table}_seals`]) {
          await admin.exec(`DROP TABLE IF EXISTS ${target.q(name)}`);
        }
        await admin.close();
      });
      expect((await runCli(['keygen', `--out=${dir}`], {})).code).toBe(0);
      const hook = await alertReceiver(defer);
      const serve = spawnCli(['serve', '--port=0'], {
        DATABASE_URL: target.databaseUrl(table),
        ACTIVITY_LOG_TABLE: table,
        ACTIVITY_LOG_SEAL: 'on',
        ACTIVITY_LOG_METHOD: 'batch',
        ACTIVITY_LOG_SPOOL_DIR: join(dir, 'spool'),
        ACTIVITY_LOG_SIGNING_KEY: join(dir, 'activity-log-signing-key.pem'),
        ACTIVITY_LOG_CHECKPOINT_DIR: join(dir, 'checkpoints'),
        ACTIVITY_LOG_CHECKPOINT_INTERVAL_S: '1',
        ACTIVITY_LOG_VERIFY_INTERVAL_S: '1',
        ACTIVITY_LOG_ALERT_WEBHOOK: hook.url,
        ACTIVITY_LOG_ADMIN_TOKEN: ADMIN,
        ACTIVITY_LOG_INGEST_TOKEN: INGEST,
      });
      defer(async () => {
        if (serve.child.exitCode === null) serve.child.kill('SIGTERM');
        await serve.exited;
      });
      const listening = await waitFor(
        'serve did not start',
        serve,
        () => /listening on (http:\/\/\S+)/.exec(serve.stdout())?.[1] ?? null,
        (url) => url !== null,
      );
      const base = listening!;
      const snapshot = async () =>
        (
          (await (
            await fetch(`${base}/api/backoffice/activity-logs/performance`, {
              headers: { authorization: `Bearer ${ADMIN}` },
            })
          ).json()) as PerformanceSnapshot
        ).data.integrity;
      const metrics = async () =>
        parsePrometheus(
          await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text(),
        );

      // Three requests, each stored (and sealed) before the next: three seals, 16 rows.
      const ids: string[] = [];
      let rows = 0;
      for (const size of [5, 7, 4]) {
        const response = await fetch(`${base}/api/activities`, {
          method: 'POST',
          headers: { authorization: `Bearer ${INGEST}`, 'content-type': 'application/json' },
          body: JSON.stringify(
            Array.from({ length: size }, (_, index) => ({
              description: `sealed ${rows + index}`,
              log_name: 'sealmon',
            })),
          ),
        });
        expect(response.status).toBe(202);
        ids.push(...((await response.json()) as { ids: string[] }).ids);
        rows += size;
        await waitFor(
          `${rows} rows not sealed`,
          serve,
          snapshot,
          (integrity) => integrity?.rows_sealed === rows,
        );
      }
      const inDatabase = await admin.rows<{ seals: number | string; rows: number | string }>(
        `SELECT COUNT(*) AS seals, SUM(row_count) AS ${target.q('rows')} FROM ${target.q(`${table}_seals`)} WHERE seq > 0`,
      );
      expect(inDatabase.map((row) => [Number(row.seals), Number(row.rows)])).toEqual([[3, 16]]);

      const intact = await waitFor(
        'no intact verify of 16 rows with the checkpoint at the head',
        serve,
        snapshot,
        (integrity) =>
          integrity?.verify.status === 'ok' &&
          integrity.verify.rows === 16 &&
          integrity.checkpoint?.seq === 3,
      );
      expect(intact).toMatchObject({
        seals_written: 3,
        rows_sealed: 16,
        read_error: null,
        checkpoint_behind_seconds: 0,
        verify: { status: 'ok', seals: 3, rows: 16, problems: 0, first_problem: null, interval_seconds: 1 },
      });
      expect(intact!.checkpoint!.age_seconds).toBeGreaterThanOrEqual(0);
      const before = await metrics();
      expect(before.get('activity_log_seals_written_total')).toBe(3);
      expect(before.get('activity_log_rows_sealed_total')).toBe(16);
      expect(before.get('activity_log_verify_last_success')).toBe(1);
      expect(before.get('activity_log_verify_last_rows')).toBe(16);
      expect(before.has('activity_log_checkpoint_age_seconds')).toBe(true);
      expect(before.get('activity_log_checkpoint_behind_seconds')).toBe(0);

      // One field of one row of seal 1, changed with plain SQL.
      const rowsTable = target.q(table);
      const tampered = ids[2]!;
      await admin.exec(`UPDATE ${rowsTable} SET description = 'forged' WHERE id = '${tampered}'`);
      const firing = await waitFor(
        'no verify_failed alert',
        serve,
        () => hook.alerts.find((alert) => alert.rule === 'verify_failed' && alert.status === 'firing'),
        (alert) => alert !== undefined,
      );
      expect(firing!.message).toMatch(/^seal chain verification found 1 problem at \S+, first: .*seal 1\b/);
      expect(firing!.message).toContain('run `activity-log verify --json` for the full report');
      expect(firing!.text).toBe(`[activity-log] FIRING verify_failed: ${firing!.message}`);
      const failed = await snapshot();
      expect(failed?.verify).toMatchObject({ status: 'failed', problems: 1 });
      expect(failed?.verify.first_problem).toMatch(/seal 1\b/);
      const during = await metrics();
      expect(during.get('activity_log_verify_last_success')).toBe(0);
      expect(during.get('activity_log_verify_last_problems')).toBe(1);
      expect(serve.stderr()).toMatch(/seal chain NOT INTACT \(1 problem\), first: .*seal 1\b/);
      // Verified every second while it stays broken, the alert is sent once.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(hook.alerts.filter((alert) => alert.rule === 'verify_failed')).toHaveLength(1);

      // Put back, the chain verifies again and the alert is resolved.
      await admin.exec(`UPDATE ${rowsTable} SET description = 'sealed 2' WHERE id = '${tampered}'`);
      await waitFor(
        'verify_failed not resolved',
        serve,
        () => hook.alerts.find((alert) => alert.rule === 'verify_failed' && alert.status === 'resolved'),
        (alert) => alert !== undefined,
      );
      expect((await metrics()).get('activity_log_verify_last_success')).toBe(1);
    });
  });
}
