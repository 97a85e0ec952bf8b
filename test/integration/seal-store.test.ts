import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { type Config, loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import { newActivityId } from '../../src/core/ids.js';
import { sealHash } from '../../src/integrity/seal-hash.js';
import { type ChainReport, verifyChain } from '../../src/integrity/verify-chain.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { createStore } from '../../src/store/create-store.js';
import { DIALECT_REGISTRY } from '../../src/store/dialect-registry.js';
import { KyselyStore, sealOptionsOf } from '../../src/store/kysely-store.js';
import { backfillSeals } from '../../src/store/seal-backfill.js';
import { openSealReader } from '../../src/store/seal-reader.js';
import { toSqlTimestamp } from '../../src/store/sql-timestamp.js';
import { activityInputs, builtActivities } from '../helpers/activity-factory.js';
import { enqueue, REDIS_URL, removeQueue, uniqueQueueName } from '../helpers/queue.js';
import { runCli, spawnCli } from '../helpers/queue-cli.js';
import {
  MARIADB_TARGET,
  POSTGRES_TARGET,
  REDIS,
  type ServiceInfo,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';
import { test } from '../helpers/test-context.js';

/**
 * Sealing on every dialect: what the store writes with ACTIVITY_LOG_SEAL=on, `verify` finding the
 * chain intact, and each tampering done with plain SQL found and named.
 */

interface Admin {
  exec(text: string): Promise<void>;
  rows<T>(text: string): Promise<T[]>;
  close(): Promise<void>;
}

interface Target {
  readonly name: string;
  readonly service: ServiceInfo | undefined;
  databaseUrl(table: string): string;
  /** An identifier quoted for plain SQL. */
  q(name: string): string;
  connect(table: string): Promise<Admin>;
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-seal-'));
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

interface SealedTable {
  readonly table: string;
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly store: ActivityStore;
  readonly admin: Admin;
  /** `<table>` and `<table>_seals`, quoted. */
  readonly rowsTable: string;
  readonly sealsTable: string;
}

interface SealRowCount {
  seq: number | string;
  row_count: number | string;
}

function verify(config: Config): Promise<ChainReport> {
  const reader = openSealReader(config.database);
  return (async () => {
    try {
      return await verifyChain(reader.groups(1), {
        fromSeq: 1,
        anchor: null,
        erasableFields: config.database.erasableFields,
        unsealedRows: await reader.countUnsealed(),
      });
    } finally {
      await reader.close();
    }
  })();
}

/** `count` activities with distinct ids, created a millisecond apart. */
function batch(count: number, offset = 0): Activity[] {
  return builtActivities(count, offset);
}

/** The sealing transaction waiting for a lock: its statement and (MariaDB) the rows it has written. */
async function waitForLockWait(
  admin: Admin,
  table: string,
  mariadb: boolean,
): Promise<{ query: string; rowsModified: number }> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const rows = mariadb
      ? await admin.rows<{ query: string | null; rows_modified: number | string }>(
          `SELECT trx_query AS query, trx_rows_modified AS rows_modified FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'`,
        )
      : await admin.rows<{ query: string | null; rows_modified: number }>(
          `SELECT query, 0 AS rows_modified FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`,
        );
    const waiting = rows.find((row) => row.query?.includes(`${table}_seals`));
    if (waiting !== undefined)
      return { query: waiting.query!.trim(), rowsModified: Number(waiting.rows_modified) };
    // MariaDB refreshes innodb_trx only when it was not read for 100 ms.
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error('no sealing transaction started waiting for the chain head within 10 s');
}

for (const target of TARGETS) {
  const available = target.service === undefined || (await serviceAvailable(target.service));
  // Queue workers are separate processes: SQLite's one writer per file is not what they are for.
  // Queue workers on a database server: SQLite's file is not shared between worker processes here.
  const withQueue = target.service !== undefined;
  const queueAvailable = available && withQueue && (await serviceAvailable(REDIS));

  describe.skipIf(!available)(`sealed store: ${target.name}`, () => {
    let spoolDir: string;
    beforeAll(() => {
      spoolDir = mkdtempSync(join(tmpdir(), 'activity-seal-spool-'));
      return () => rmSync(spoolDir, { recursive: true, force: true });
    });

    async function sealedTable(defer: (cleanup: () => unknown) => void): Promise<SealedTable> {
      const table = `seal_${uniqueSuffix()}`;
      const env = {
        DATABASE_URL: target.databaseUrl(table),
        ACTIVITY_LOG_TABLE: table,
        ACTIVITY_LOG_SEAL: 'on',
      };
      const config = loadConfig({ env });
      const store = createStore(config.database);
      const admin = await target.connect(table);
      defer(async () => {
        await store.close();
        for (const name of [table, `${table}_migrations`, `${table}_seals`, `${table}_seals_pruned`]) {
          await admin.exec(`DROP TABLE IF EXISTS ${target.q(name)}`);
        }
        await admin.close();
      });
      await store.migrate();
      return {
        table,
        config,
        env,
        store,
        admin,
        rowsTable: target.q(table),
        sealsTable: target.q(`${table}_seals`),
      };
    }

    async function sealCounts(sealed: SealedTable): Promise<number[]> {
      const rows = await sealed.admin.rows<SealRowCount>(
        `SELECT seq, row_count FROM ${sealed.sealsTable} WHERE seq > 0 ORDER BY seq`,
      );
      return rows.map((row) => Number(row.row_count));
    }

    /** Four seals of five rows each; resolves to the ids of each seal, in id order. */
    async function fourSeals(sealed: SealedTable): Promise<string[][]> {
      const seals: string[][] = [];
      for (let i = 0; i < 4; i++) {
        const rows = batch(5, i * 5);
        expect(await sealed.store.insertMany(rows)).toBe(5);
        seals.push(rows.map((row) => row.id).sort());
      }
      expect((await verify(sealed.config)).intact).toBe(true);
      return seals;
    }

    test('seals what a batch delivery flushes, one seal per INSERT, and verify finds it intact', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      const { activityLog } = composeActivityLog({
        env: {
          ...sealed.env,
          ACTIVITY_LOG_METHOD: 'batch',
          ACTIVITY_LOG_BATCH_SIZE: '40',
          ACTIVITY_LOG_SPOOL_DIR: spoolDir,
        },
      });
      for (const input of activityInputs(230)) activityLog.log(input);
      await activityLog.close();

      const counts = await sealCounts(sealed);
      expect(counts.reduce((sum, n) => sum + n, 0)).toBe(230);
      expect(counts.length).toBeGreaterThanOrEqual(6);
      const [unsealed] = await sealed.admin.rows<{ n: number | string }>(
        `SELECT COUNT(*) AS n FROM ${sealed.rowsTable} WHERE seal_seq IS NULL OR seal_salt IS NULL`,
      );
      expect(Number(unsealed!.n)).toBe(0);
      const report = await verify(sealed.config);
      expect(report).toMatchObject({
        intact: true,
        rows: 230,
        seals: counts.length,
        unsealedRows: 0,
        problems: [],
      });
      expect(report.head).toMatchObject({ seq: counts.length, totalRows: 230 });
    });

    test('a replayed batch writes no second seal, and a partial replay seals only its new rows', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      const rows = batch(10);
      expect(await sealed.store.insertMany(rows)).toBe(10);
      expect(await sealed.store.insertMany(rows)).toBe(0);
      expect(await sealCounts(sealed)).toEqual([10]);
      const more = batch(3, 10);
      expect(await sealed.store.insertMany([...rows.slice(0, 4), ...more, rows[0]!])).toBe(3);
      expect(await sealCounts(sealed)).toEqual([10, 3]);
      expect(await verify(sealed.config)).toMatchObject({ intact: true, rows: 13, seals: 2 });
    });

    test('without INSERT … RETURNING (MySQL) the rows stored are looked up in the transaction', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      const { database } = sealed.config;
      const dialect = DIALECT_REGISTRY[database.connection].create(database);
      const store = new KyselyStore(
        { ...dialect, insertReturning: async () => false },
        database.table,
        sealOptionsOf(database),
      );
      defer(() => store.close());
      const rows = batch(8);
      expect(await store.insertMany(rows)).toBe(8);
      expect(await store.insertMany(rows)).toBe(0);
      const repeated = batch(2, 8);
      expect(await store.insertMany([...repeated, ...rows.slice(0, 3), repeated[0]!])).toBe(2);
      expect(await sealCounts(sealed)).toEqual([8, 2]);
      expect(await verify(sealed.config)).toMatchObject({ intact: true, rows: 10 });
    });

    test('one transaction for a batch larger than one INSERT, one seal per statement', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      const size = sealed.store.capabilities.maxRowsPerInsert + 5;
      const rows = batch(size);
      // The first row again at the end, in the second statement: stored and sealed once.
      expect(await sealed.store.insertMany([...rows, rows[0]!])).toBe(size);
      const counts = await sealCounts(sealed);
      expect(counts.length).toBeGreaterThanOrEqual(2);
      expect(counts.reduce((sum, n) => sum + n, 0)).toBe(size);
      expect((await verify(sealed.config)).intact).toBe(true);
    });

    test('two writers at once serialize on the chain head and leave one unbroken chain', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      // SQLite's driver is synchronous: a second connection in this process would wait for the
      // first's write lock with the event loop blocked. Its one connection serializes the writers.
      const other = target.service === undefined ? sealed.store : createStore(sealed.config.database);
      if (other !== sealed.store) defer(() => other.close());
      const writes: Promise<number>[] = [];
      for (let i = 0; i < 10; i++)
        writes.push((i % 2 === 0 ? sealed.store : other).insertMany(batch(20, i * 20)));
      expect(await Promise.all(writes)).toEqual(Array(10).fill(20));
      expect(await sealCounts(sealed)).toEqual(Array(10).fill(20));
      expect(await verify(sealed.config)).toMatchObject({ intact: true, rows: 200, seals: 10 });
    });

    if (target.service !== undefined) {
      const overlaps = target.service === MARIADB_TARGET.service;
      test(`a writer that finds the chain head held ${
        overlaps ? 'writes its rows meanwhile and stamps them' : 'waits for it before its INSERT'
      }, then seals after the holder`, async ({ defer }) => {
        const sealed = await sealedTable(defer);
        await sealed.store.insertMany(batch(5));
        const holder = await target.connect(sealed.table);
        defer(() => holder.close());
        await holder.exec('BEGIN');
        await holder.rows(`SELECT seq FROM ${sealed.sealsTable} WHERE seq = 0 FOR UPDATE`);
        // Two statements (so two seals), the first row again at the end: stored and sealed once.
        const size = sealed.store.capabilities.maxRowsPerInsert + 25;
        const rows = batch(size, 5);
        const writing = sealed.store.insertMany([...rows, rows[0]!]);
        const waiting = await waitForLockWait(sealed.admin, sealed.table, overlaps);
        expect(waiting.query).toMatch(/^UPDATE\s+\S*_seals/);
        // On MariaDB the rows are stored (with a placeholder seal_seq) before the wait.
        if (overlaps) expect(waiting.rowsModified).toBeGreaterThanOrEqual(size);
        await holder.exec('COMMIT');
        expect(await writing).toBe(size);
        const counts = await sealCounts(sealed);
        expect(counts[0]).toBe(5);
        expect(counts.length).toBeGreaterThanOrEqual(3);
        expect(counts.slice(1).reduce((sum, n) => sum + n, 0)).toBe(size);
        const negative = await sealed.admin.rows<{ n: number | string }>(
          `SELECT COUNT(*) AS n FROM ${sealed.rowsTable} WHERE seal_seq < 0 OR seal_seq IS NULL`,
        );
        expect(Number(negative[0]!.n)).toBe(0);
        expect(await verify(sealed.config)).toMatchObject({
          intact: true,
          rows: 5 + size,
          seals: counts.length,
        });
      });
    }

    if (target.service !== undefined) {
      test('writers storing the same rows at once (replays racing) store each once, all succeeding, in one chain', async ({
        defer,
      }) => {
        const sealed = await sealedTable(defer);
        const others = [createStore(sealed.config.database), createStore(sealed.config.database)];
        defer(() => Promise.all(others.map((store) => store.close())));
        let reported = 0;
        for (let round = 0; round < 12; round++) {
          const rows = batch(120, round * 120);
          const results = await Promise.all([
            sealed.store.insertMany(rows),
            others[0]!.insertMany([...rows].reverse()),
            others[1]!.insertMany(rows.slice(40)),
          ]);
          reported += results.reduce((sum, n) => sum + n, 0);
        }
        expect(reported).toBe(12 * 120);
        expect(await verify(sealed.config)).toMatchObject({ intact: true, rows: 12 * 120, unsealedRows: 0 });
      });
    }

    test('verify while a writer appends seals finds the chain intact, reading up to the head it saw', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      await sealed.store.insertMany(batch(50));
      let writing = true;
      const writer = (async () => {
        for (let i = 1; writing; i++) await sealed.store.insertMany(batch(20, i * 20 + 50));
      })();
      try {
        for (let run = 0; run < 5; run++) expect((await verify(sealed.config)).problems).toEqual([]);
      } finally {
        writing = false;
        await writer;
      }
      expect((await verify(sealed.config)).intact).toBe(true);
    });

    test('an anchor row deleted by hand is put back by the next sealed insert', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      await sealed.store.insertMany(batch(3));
      await sealed.admin.exec(`DELETE FROM ${sealed.sealsTable} WHERE seq = 0`);
      await sealed.store.insertMany(batch(4, 3));
      expect(await sealCounts(sealed)).toEqual([3, 4]);
      const [anchor] = await sealed.admin.rows<{ n: number | string }>(
        `SELECT COUNT(*) AS n FROM ${sealed.sealsTable} WHERE seq = 0`,
      );
      expect(Number(anchor!.n)).toBe(1);
      expect(await verify(sealed.config)).toMatchObject({ intact: true, rows: 7 });
    });

    test('an altered field of one row is found, and its seal named', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      const seals = await fourSeals(sealed);
      const id = seals[1]![2]!;
      await sealed.admin.exec(
        `UPDATE ${sealed.rowsTable} SET description = 'nothing happened' WHERE id = '${id}'`,
      );
      const report = await verify(sealed.config);
      expect(report.intact).toBe(false);
      expect(report.problems).toHaveLength(1);
      expect(report.problems[0]).toMatchObject({ kind: 'row-altered', seq: 2 });
      expect(report.problems[0]!.ids).toContain(id);
      expect(report.problems[0]!.message).toMatch(/a row of seal 2 does not match its seal/);
    });

    test('an altered erasable field of a seal of one row names the row', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      const [only] = batch(1);
      await sealed.store.insertMany([only!]);
      await sealed.admin.exec(
        `UPDATE ${sealed.rowsTable} SET ip_address = '198.51.100.1' WHERE id = '${only!.id}'`,
      );
      const report = await verify(sealed.config);
      expect(report.problems).toEqual([
        expect.objectContaining({ kind: 'row-altered', seq: 1, ids: [only!.id] }),
      ]);
      expect(report.problems[0]!.message).toBe(`row ${only!.id} of seal 1 does not match its seal (altered)`);
    });

    test('a deleted row is found as missing from its seal', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      const seals = await fourSeals(sealed);
      await sealed.admin.exec(`DELETE FROM ${sealed.rowsTable} WHERE id = '${seals[2]![0]}'`);
      const report = await verify(sealed.config);
      expect(report.problems).toEqual([expect.objectContaining({ kind: 'rows-missing', seq: 3 })]);
      expect(report.problems[0]!.message).toBe('seal 3: 1 row of 5 missing (deleted)');
    });

    test('a forged row claiming a seal is found and named', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      await fourSeals(sealed);
      const forged = newActivityId();
      await sealed.admin.exec(
        `INSERT INTO ${sealed.rowsTable} (id, log_name, description, created_at, seal_seq, seal_salt) VALUES ('${forged}', 'orders', 'refund approved', '${toSqlTimestamp(new Date())}', 2, '${'ab'.repeat(16)}')`,
      );
      const report = await verify(sealed.config);
      expect(report.problems).toEqual([
        expect.objectContaining({ kind: 'rows-extra', seq: 2, ids: [forged] }),
      ]);
      expect(report.problems[0]!.message).toBe(
        `row ${forged} claims seal 2, which did not seal it (a forged seal_seq)`,
      );
    });

    test('a forged row claiming a seal that does not exist is found', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      await fourSeals(sealed);
      const forged = newActivityId();
      await sealed.admin.exec(
        `INSERT INTO ${sealed.rowsTable} (id, log_name, description, created_at, seal_seq, seal_salt) VALUES ('${forged}', 'orders', 'refund approved', '${toSqlTimestamp(new Date())}', 9, '${'ab'.repeat(16)}')`,
      );
      const report = await verify(sealed.config);
      expect(report.problems).toEqual([
        expect.objectContaining({ kind: 'rows-without-seal', seq: 9, ids: [forged] }),
      ]);
    });

    test('a whole seal deleted with its rows is found as a gap in the chain', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      await fourSeals(sealed);
      await sealed.admin.exec(`DELETE FROM ${sealed.rowsTable} WHERE seal_seq = 2`);
      await sealed.admin.exec(`DELETE FROM ${sealed.sealsTable} WHERE seq = 2`);
      const report = await verify(sealed.config);
      expect(report.problems).toEqual([expect.objectContaining({ kind: 'seal-missing', seq: 2 })]);
      expect(report.problems[0]!.message).toMatch(/^seal 2 is missing: the chain goes from seal 1 to seal 3/);
    });

    test("an altered seal hash, or a seal's root rewritten with its hash, is found", async ({ defer }) => {
      const sealed = await sealedTable(defer);
      await fourSeals(sealed);
      await sealed.admin.exec(`UPDATE ${sealed.sealsTable} SET hash = '${'0f'.repeat(32)}' WHERE seq = 3`);
      expect((await verify(sealed.config)).problems).toEqual([
        expect.objectContaining({ kind: 'seal-altered', seq: 3 }),
      ]);
    });

    test('a broken link is found where a seal no longer chains to the one before', async ({ defer }) => {
      const sealed = await sealedTable(defer);
      await fourSeals(sealed);
      // A consistent rewrite of seal 2 (as whoever can recompute hashes would do) breaks seal 3's link.
      const reader = openSealReader(sealed.config.database);
      const seal2 = (await reader.seal(2))!;
      await reader.close();
      const { nextSeal } = await import('../../src/integrity/seal-hash.js');
      const seal1 = { ...seal2, seq: 1, hash: seal2.prev_hash };
      const forged = nextSeal(seal1, { root: Buffer.alloc(32, 7), rowCount: 5, sealedAt: seal2.sealed_at });
      await sealed.admin.exec(
        `UPDATE ${sealed.sealsTable} SET root = '${forged.root.toString('hex')}', hash = '${forged.hash.toString('hex')}' WHERE seq = 2`,
      );
      const report = await verify(sealed.config);
      expect(report.problems.map((problem) => [problem.kind, problem.seq])).toEqual([
        ['row-altered', 2],
        ['link-broken', 3],
      ]);
    });

    test('rows stored before sealing was on are unsealed, not tampered, until backfilled', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      const unsealedStore = createStore({ ...sealed.config.database, seal: 'off' });
      defer(() => unsealedStore.close());
      await unsealedStore.insertMany(batch(25));
      await sealed.store.insertMany(batch(5, 25));
      expect(await verify(sealed.config)).toMatchObject({ intact: true, rows: 5, unsealedRows: 25 });

      expect(await backfillSeals(sealed.config.database, { chunkSize: 10 })).toEqual({ rows: 25, seals: 3 });
      expect(await sealCounts(sealed)).toEqual([5, 10, 10, 5]);
      expect(await verify(sealed.config)).toMatchObject({ intact: true, rows: 30, unsealedRows: 0 });
      expect(await backfillSeals(sealed.config.database, { chunkSize: 10 })).toEqual({ rows: 0, seals: 0 });
    });

    test('the CLI: verify exits 0 intact, 1 tampered (with a JSON report), 2 on a bad flag; seal --backfill', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      const seals = await fourSeals(sealed);
      const env = { ...sealed.env, ACTIVITY_LOG_SEAL: 'off' };

      const intact = await runCli(['verify'], env);
      expect(intact).toMatchObject({ code: 0 });
      expect(intact.stdout).toMatch(/^intact: seals 1…4 \(4 seals, 20 rows\)\n/);

      const unsealed = createStore({ ...sealed.config.database, seal: 'off' });
      await unsealed.insertMany(batch(3, 100));
      await unsealed.close();
      expect((await runCli(['verify'], env)).stdout).toMatch(/3 rows not sealed yet/);
      const backfill = await runCli(['seal', '--backfill'], env);
      expect(backfill).toMatchObject({ code: 0, stdout: 'sealed 3 rows in 1 seals\n' });
      expect((await runCli(['seal', '--backfill'], env)).stdout).toBe('no unsealed rows: nothing to seal\n');

      await sealed.admin.exec(`DELETE FROM ${sealed.rowsTable} WHERE id = '${seals[0]![1]}'`);
      const tampered = await runCli(['verify', '--json'], env);
      expect(tampered.code).toBe(1);
      const report = JSON.parse(tampered.stdout) as ChainReport;
      expect(report).toMatchObject({ intact: false, seals: 5, problems: [{ kind: 'rows-missing', seq: 1 }] });
      const text = await runCli(['verify', '--from-seq=2'], env);
      expect(text).toMatchObject({ code: 0 });
      expect(text.stdout).toMatch(/^intact: seals 2…5/);

      const usage = await runCli(['verify', '--from-seq=first'], env);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/--from-seq must be a whole number 1 or more/);
    });

    test('verify in worker threads reports what it reports in one thread: the same JSON, the same exit code', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      const seals = await fourSeals(sealed);
      const env = { ...sealed.env, ACTIVITY_LOG_SEAL: 'off' };
      const verifyWith = async (threads: number) => {
        const run = await runCli(['verify', '--json', `--threads=${threads}`], env);
        return { code: run.code, report: JSON.parse(run.stdout) as ChainReport };
      };
      const intact = await verifyWith(0);
      expect(intact).toMatchObject({ code: 0, report: { intact: true, rows: 20, seals: 4 } });
      expect(await verifyWith(2)).toEqual(intact);

      // The same properties written with other whitespace (the text as stored, where the dialect
      // keeps it): the same values, so still intact, in threads or not.
      const [stored] = await sealed.admin.rows<{ properties: unknown }>(
        `SELECT properties FROM ${sealed.rowsTable} WHERE id = '${seals[3]![0]}'`,
      );
      const properties =
        typeof stored!.properties === 'string' ? JSON.parse(stored!.properties) : stored!.properties;
      await sealed.admin.exec(
        `UPDATE ${sealed.rowsTable} SET properties = '${JSON.stringify(properties, null, 2)}' WHERE id = '${seals[3]![0]}'`,
      );
      expect(await verifyWith(0)).toEqual(intact);
      expect(await verifyWith(2)).toEqual(intact);

      // An erased row's leaf is made from its stored commitments, in this thread.
      expect(await runCli(['erase', '--subject-type=Order', '--subject-id=1'], sealed.env)).toMatchObject({
        code: 0,
      });
      const erased = await verifyWith(0);
      expect(erased).toMatchObject({ code: 0, report: { intact: true, rows: 21, seals: 5 } });
      expect(await verifyWith(2)).toEqual(erased);

      const altered = seals[1]![2]!;
      await sealed.admin.exec(
        `UPDATE ${sealed.rowsTable} SET description = 'nothing happened' WHERE id = '${altered}'`,
      );
      await sealed.admin.exec(`DELETE FROM ${sealed.rowsTable} WHERE id = '${seals[2]![0]}'`);
      const inThread = await verifyWith(0);
      expect(inThread.code).toBe(1);
      expect(inThread.report.problems).toMatchObject([
        { kind: 'row-altered', seq: 2, ids: seals[1] },
        { kind: 'rows-missing', seq: 3 },
      ]);
      expect(inThread.report.problems[0]!.ids).toContain(altered);
      expect(await verifyWith(2)).toEqual(inThread);
      expect(await verifyWith(1)).toEqual(inThread);
    });

    test('the CLI: verify --checkpoint finds a truncated chain, a forged signature and a rewritten seal', async ({
      defer,
    }) => {
      const sealed = await sealedTable(defer);
      const seals = await fourSeals(sealed);
      const env = { ...sealed.env, ACTIVITY_LOG_SEAL: 'off' };
      const dir = mkdtempSync(join(tmpdir(), 'activity-seal-checkpoint-'));
      defer(() => rmSync(dir, { recursive: true, force: true }));
      expect((await runCli(['keygen', `--out=${dir}`], {})).code).toBe(0);
      const privateKey = join(dir, 'activity-log-signing-key.pem');
      const publicKey = join(dir, 'activity-log-signing-key.pub.pem');
      const checkpoints = join(dir, 'checkpoints');
      const signed = await runCli(['checkpoint'], {
        ...env,
        ACTIVITY_LOG_SIGNING_KEY: privateKey,
        ACTIVITY_LOG_CHECKPOINT_DIR: checkpoints,
      });
      expect(signed.code).toBe(0);
      const withKey = { ...env, ACTIVITY_LOG_SIGNING_KEY: privateKey };

      const intact = await runCli(['verify', `--checkpoint=${checkpoints}`], withKey);
      expect(intact).toMatchObject({ code: 0 });
      expect(intact.stdout).toMatch(/^intact: seals 1…4/);
      expect(
        (await runCli(['verify', `--checkpoint=${checkpoints}`, `--public-key=${publicKey}`], env)).code,
      ).toBe(0);
      expect((await runCli(['verify', '--from-seq=2', `--checkpoint=${checkpoints}`], withKey)).code).toBe(0);

      // A checkpoint whose signature was replaced.
      const [file] = readdirSync(checkpoints);
      const forgedFile = join(dir, 'forged.json');
      const checkpoint = JSON.parse(readFileSync(join(checkpoints, file!), 'utf8')) as { signature: string };
      writeFileSync(
        forgedFile,
        JSON.stringify({ ...checkpoint, signature: Buffer.alloc(64, 7).toString('base64') }),
      );
      const forged = await runCli(['verify', '--json', `--checkpoint=${forgedFile}`], withKey);
      expect(forged.code).toBe(1);
      expect(JSON.parse(forged.stdout)).toMatchObject({
        intact: false,
        problems: [{ kind: 'signature', seq: 4, checkpoint: forgedFile }],
      });

      // Seal 4 rewritten consistently: its hash recomputed from a new sealed_at.
      const reader = openSealReader(sealed.config.database);
      const original = (await reader.seal(4))!;
      await reader.close();
      const sealedAt = new Date(original.sealed_at.getTime() + 1000);
      const rewritten = sealHash({
        seq: 4,
        prevHash: original.prev_hash,
        root: original.root,
        rowCount: original.row_count,
        sealedAt,
      }).toString('hex');
      await sealed.admin.exec(
        `UPDATE ${sealed.sealsTable} SET hash = '${rewritten}', sealed_at = '${toSqlTimestamp(sealedAt)}' WHERE seq = 4`,
      );
      expect((await runCli(['verify'], env)).code).toBe(0);
      const rewrite = await runCli(['verify', `--checkpoint=${checkpoints}`], withKey);
      expect(rewrite.code).toBe(1);
      expect(rewrite.stdout).toMatch(/^NOT INTACT/);
      expect(rewrite.stdout).toContain(`seal 4 has hash ${rewritten}`);
      expect(
        JSON.parse((await runCli(['verify', '--json', `--checkpoint=${checkpoints}`], withKey)).stdout),
      ).toMatchObject({ problems: [{ kind: 'seal-hash', seq: 4 }] });

      // The newest seal deleted with its rows: invisible without a checkpoint.
      await sealed.admin.exec(`DELETE FROM ${sealed.rowsTable} WHERE seal_seq = 4`);
      await sealed.admin.exec(`DELETE FROM ${sealed.sealsTable} WHERE seq = 4`);
      expect(seals).toHaveLength(4);
      const truncated = await runCli(['verify'], env);
      expect(truncated).toMatchObject({ code: 0 });
      expect(truncated.stdout).toMatch(/^intact: seals 1…3/);
      const behind = await runCli(['verify', '--json', `--checkpoint=${checkpoints}`], withKey);
      expect(behind.code).toBe(1);
      expect(JSON.parse(behind.stdout)).toMatchObject({
        intact: false,
        problems: [{ kind: 'head-behind', seq: 4 }],
      });

      // No key to check checkpoints with.
      const noKey = await runCli(['verify', `--checkpoint=${checkpoints}`], env);
      expect(noKey.code).toBe(2);
      expect(noKey.stderr).toBe(
        'activity-log: no key to check checkpoints with: pass --public-key=PATH or set ACTIVITY_LOG_SIGNING_KEY\n',
      );
    });

    if (withQueue) {
      test.skipIf(!queueAvailable)(
        'two queue workers seal every job into one intact chain, and replayed jobs add no seal',
        async ({ defer }) => {
          const sealed = await sealedTable(defer);
          const queueName = uniqueQueueName('seal');
          const env = {
            ...sealed.env,
            QUEUE_CONNECTION: 'redis',
            REDIS_URL,
            ACTIVITY_LOG_METHOD: 'queue',
            ACTIVITY_LOG_QUEUE_NAME: queueName,
            ACTIVITY_LOG_SPOOL_DIR: join(spoolDir, sealed.table),
          };
          const config = loadConfig({ env });
          defer(() => removeQueue(config, queueName));
          const activities = batch(600);
          const jobs = Array.from({ length: 24 }, (_, i) => activities.slice(i * 25, (i + 1) * 25));
          await enqueue(config, jobs);
          const workers = [0, 1].map(() => spawnCli(['work', '--stop-when-empty'], env));
          const exits = await Promise.all(workers.map((worker) => worker.exited));
          expect(exits.map((exit) => exit.code)).toEqual([0, 0]);

          const counts = await sealCounts(sealed);
          expect(counts.reduce((sum, n) => sum + n, 0)).toBe(600);
          expect(await verify(sealed.config)).toMatchObject({ intact: true, rows: 600, unsealedRows: 0 });

          await enqueue(config, jobs.slice(0, 5));
          expect((await runCli(['work', '--stop-when-empty'], env)).code).toBe(0);
          expect(await sealCounts(sealed)).toEqual(counts);
          expect((await runCli(['verify'], env)).code).toBe(0);
        },
        60_000,
      );
    }
  });
}
