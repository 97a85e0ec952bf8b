import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely } from 'kysely';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect, vi } from 'vitest';
import { type Config, loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import type { ChainReport } from '../../src/integrity/verify-chain.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import type { ActivityDatabase } from '../../src/store/activity-table.js';
import { ACTIVITY_INDEXES, physicalIndexName } from '../../src/store/activity-table.js';
import { createStore } from '../../src/store/create-store.js';
import { DIALECT_REGISTRY } from '../../src/store/dialect-registry.js';
import { convertToPartitioned } from '../../src/store/partition-conversion.js';
import { openPartitionMaintenance } from '../../src/store/partition-maintenance.js';
import { nextPeriod, periodStart } from '../../src/store/partition-plan.js';
import { recordWatermark } from '../../src/store/seal-pruning.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { runCli, spawnCli } from '../helpers/queue-cli.js';
import {
  MARIADB_TARGET,
  POSTGRES_TARGET,
  type ServiceInfo,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';
import { test } from '../helpers/test-context.js';

/**
 * Partitioned activity tables (ACTIVITY_LOG_PARTITION=month) on MariaDB and PostgreSQL: the
 * layout migrate creates, idempotent inserts, rows past the last partition split out of the
 * catch-all, retention by partition drop, and retention on a sealed table removing whole seals
 * only, which `verify` reports as pruned.
 */

interface Admin {
  rows<T>(text: string): Promise<T[]>;
  exec(text: string): Promise<void>;
  close(): Promise<void>;
}

interface Target {
  readonly name: string;
  readonly service: ServiceInfo;
  readonly url: string;
  q(name: string): string;
  connect(): Promise<Admin>;
  /** Range partitions and the catch-all, by name, with their row counts. */
  partitions(admin: Admin, table: string): Promise<{ name: string; rows: number; catchAll: boolean }[]>;
  /** Index names of the table (the primary key left out) and the primary key's columns. */
  indexes(admin: Admin, table: string): Promise<{ names: string[]; primaryKey: string[] }>;
  /** Every index name ACTIVITY_INDEXES gets on this table. */
  expectedIndexes(table: string): string[];
}

const DAY_MS = 86_400_000;

const TARGETS: readonly Target[] = [
  {
    name: MARIADB_TARGET.name,
    service: MARIADB_TARGET.service,
    url: MARIADB_TARGET.url,
    q: (name) => `\`${name}\``,
    connect: async () => {
      const db = await mysql.createConnection(MARIADB_TARGET.url);
      return {
        rows: async <T>(text: string) => (await db.query(text))[0] as T[],
        exec: async (text) => {
          await db.query(text);
        },
        close: () => db.end(),
      };
    },
    partitions: async (admin, table) => {
      const rows = await admin.rows<{ name: string; description: string }>(
        `SELECT PARTITION_NAME AS name, PARTITION_DESCRIPTION AS description FROM information_schema.PARTITIONS
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}' ORDER BY PARTITION_ORDINAL_POSITION`,
      );
      const result = [];
      for (const row of rows) {
        const [count] = await admin.rows<{ n: number }>(
          `SELECT COUNT(*) AS n FROM \`${table}\` PARTITION (\`${row.name}\`)`,
        );
        result.push({ name: row.name, rows: Number(count!.n), catchAll: row.description === 'MAXVALUE' });
      }
      return result;
    },
    indexes: async (admin, table) => {
      const rows = await admin.rows<{ name: string; col: string; seq: number }>(
        `SELECT INDEX_NAME AS name, COLUMN_NAME AS col, SEQ_IN_INDEX AS seq FROM information_schema.STATISTICS
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}' ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
      );
      return {
        names: [...new Set(rows.filter((row) => row.name !== 'PRIMARY').map((row) => row.name))].sort(),
        primaryKey: rows.filter((row) => row.name === 'PRIMARY').map((row) => row.col),
      };
    },
    expectedIndexes: (table) =>
      [...ACTIVITY_INDEXES.map((index) => physicalIndexName(table, index.name, true)), 'idx_seal_seq'].sort(),
  },
  {
    name: POSTGRES_TARGET.name,
    service: POSTGRES_TARGET.service,
    url: POSTGRES_TARGET.url,
    q: (name) => `"${name}"`,
    connect: async () => {
      const db = new pg.Client({ connectionString: POSTGRES_TARGET.url });
      await db.connect();
      return {
        rows: async <T>(text: string) => (await db.query(text)).rows as T[],
        exec: async (text) => {
          await db.query(text);
        },
        close: () => db.end(),
      };
    },
    partitions: async (admin, table) => {
      const rows = await admin.rows<{ name: string; bound: string }>(
        `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '"${table}"'::regclass ORDER BY c.relname`,
      );
      const result = [];
      for (const row of rows) {
        const [count] = await admin.rows<{ n: string }>(`SELECT COUNT(*) AS n FROM "${row.name}"`);
        result.push({ name: row.name, rows: Number(count!.n), catchAll: row.bound === 'DEFAULT' });
      }
      return result;
    },
    indexes: async (admin, table) => {
      const names = await admin.rows<{ name: string; primary: boolean }>(
        `SELECT c.relname AS name, i.indisprimary AS primary FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = '"${table}"'::regclass`,
      );
      const primaryKey = await admin.rows<{ col: string }>(
        `SELECT a.attname AS col FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = '"${table}"'::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
      );
      return {
        names: names
          .filter((row) => !row.primary)
          .map((row) => row.name)
          .sort(),
        primaryKey: primaryKey.map((row) => row.col),
      };
    },
    expectedIndexes: (table) =>
      [
        ...ACTIVITY_INDEXES.map((index) => physicalIndexName(table, index.name, false)),
        physicalIndexName(table, 'idx_seal_seq', false),
      ].sort(),
  },
];

/** `count` activities created at `at` plus a millisecond each. */
function createdAt(count: number, at: Date, offset: number): Activity[] {
  return builtActivities(count, offset).map((activity, index) => ({
    ...activity,
    createdAt: new Date(at.getTime() + index),
  }));
}

/** Whole months before the current one. */
function monthsAgo(months: number): Date {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - months, 1));
}

interface PartitionedTable {
  readonly table: string;
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly store: ActivityStore;
  readonly admin: Admin;
}

/**
 * A partitioned table migrated as if it were `createdMonthsAgo` months ago, with partitions from
 * then through `ahead` months after that month.
 */
async function partitionedTable(
  defer: (cleanup: () => unknown) => void,
  target: Target,
  label: string,
  options: { seal?: boolean; createdMonthsAgo?: number; ahead?: number } = {},
): Promise<PartitionedTable> {
  const table = `${label}_${uniqueSuffix()}`;
  const env: Record<string, string> = {
    DATABASE_URL: target.url,
    ACTIVITY_LOG_TABLE: table,
    ACTIVITY_LOG_PARTITION: 'month',
    ACTIVITY_LOG_PARTITIONS_AHEAD: String(options.ahead ?? 3),
    ACTIVITY_LOG_SEAL: options.seal === true ? 'on' : 'off',
  };
  const config = loadConfig({ env });
  const store = createStore(config.database);
  const admin = await target.connect();
  defer(async () => {
    await store.close();
    await admin.exec(
      `DROP TABLE IF EXISTS ${[table, `${table}_migrations`, `${table}_seals`, `${table}_seals_pruned`].map(target.q).join(', ')}`,
    );
    await admin.close();
  });
  const monthsBack = options.createdMonthsAgo ?? 0;
  if (monthsBack > 0) {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date(monthsAgo(monthsBack).getTime() + DAY_MS));
  }
  try {
    await store.migrate();
  } finally {
    vi.useRealTimers();
  }
  return { table, config, env, store, admin };
}

async function countRows(admin: Admin, target: Target, table: string): Promise<number> {
  const [row] = await admin.rows<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${target.q(table)}`);
  return Number(row!.n);
}

for (const target of TARGETS) {
  const available = await serviceAvailable(target.service);

  describe.skipIf(!available)(`partitioned table: ${target.name}`, () => {
    test('migrate creates the partitions, the primary key (id, created_at) and the nine index names; twice is harmless', async ({
      defer,
    }) => {
      const { table, store, admin } = await partitionedTable(defer, target, 'part_layout');
      expect(await store.migrate()).toEqual({ from: 4, to: 4 });
      const partitions = await target.partitions(admin, table);
      // The current month, three ahead and the catch-all.
      expect(partitions).toHaveLength(5);
      expect(partitions.filter((partition) => partition.catchAll)).toHaveLength(1);
      const month = monthsAgo(0).toISOString();
      expect(partitions.map((partition) => partition.name)).toContainEqual(
        expect.stringContaining(`p${month.slice(0, 4)}${month.slice(5, 7)}`),
      );
      const { names, primaryKey } = await target.indexes(admin, table);
      expect(primaryKey).toEqual(['id', 'created_at']);
      expect(names).toEqual(target.expectedIndexes(table));
    });

    test('the same ids inserted twice are stored once, rows of three months in three partitions', async ({
      defer,
    }) => {
      const { table, store, admin } = await partitionedTable(defer, target, 'part_idem', {
        createdMonthsAgo: 2,
        ahead: 4,
      });
      const rows = [
        ...createdAt(3, new Date(monthsAgo(2).getTime() + 3 * DAY_MS), 0),
        ...createdAt(4, new Date(monthsAgo(1).getTime() + 3 * DAY_MS), 3),
        ...createdAt(5, new Date(Date.now() - 60_000), 7),
      ];
      expect(await store.insertMany(rows)).toBe(12);
      expect(await store.insertMany(rows)).toBe(0);
      expect(await countRows(admin, target, table)).toBe(12);
      const filled = (await target.partitions(admin, table)).filter((partition) => partition.rows > 0);
      expect(filled.map((partition) => partition.rows).sort()).toEqual([3, 4, 5]);
      expect(filled.some((partition) => partition.catchAll)).toBe(false);
    });

    test('sealed inserts into a partitioned table are idempotent too', async ({ defer }) => {
      const { table, store, admin } = await partitionedTable(defer, target, 'part_sidem', { seal: true });
      const rows = createdAt(20, new Date(Date.now() - 60_000), 0);
      expect(await store.insertMany(rows)).toBe(20);
      expect(await store.insertMany(rows)).toBe(0);
      expect(await countRows(admin, target, table)).toBe(20);
      const [seals] = await admin.rows<{ n: number | string }>(
        `SELECT COUNT(*) AS n FROM ${target.q(`${table}_seals`)} WHERE seq > 0`,
      );
      expect(Number(seals!.n)).toBe(1);
    });

    test('a row past the last partition is stored in the catch-all, and ensure splits it out without loss', async ({
      defer,
    }) => {
      const { table, config, store, admin } = await partitionedTable(defer, target, 'part_future');
      const future = new Date(Date.now() + 400 * DAY_MS);
      const rows = [...createdAt(2, future, 0), ...createdAt(3, new Date(Date.now() - 60_000), 2)];
      expect(await store.insertMany(rows)).toBe(5);
      const before = await target.partitions(admin, table);
      expect(before.find((partition) => partition.catchAll)?.rows).toBe(2);

      const maintenance = openPartitionMaintenance(config.database);
      defer(() => maintenance.close());
      const result = await maintenance.ensure();
      expect(result.moved).toBe(2);
      const futureMonth = future.toISOString();
      const futureName = `p${futureMonth.slice(0, 4)}${futureMonth.slice(5, 7)}`;
      expect(result.added.map((range) => range.name)).toContain(futureName);

      const after = await target.partitions(admin, table);
      expect(after.find((partition) => partition.catchAll)?.rows).toBe(0);
      expect(after.find((partition) => partition.name.endsWith(futureName))?.rows).toBe(2);
      expect(await countRows(admin, target, table)).toBe(5);
      // Nothing more to add, and the rows are all still found by id.
      expect((await maintenance.ensure()).added).toEqual([]);
      const ids = rows.map((row) => `'${row.id}'`).join(', ');
      const [found] = await admin.rows<{ n: number | string }>(
        `SELECT COUNT(*) AS n FROM ${target.q(table)} WHERE id IN (${ids})`,
      );
      expect(Number(found!.n)).toBe(5);
    });

    test('partitions status and ensure on the command line (text and --json)', async ({ defer }) => {
      const { table, env } = await partitionedTable(defer, target, 'part_cli');
      const status = await runCli(['partitions', 'status', '--json'], env);
      expect(status.code).toBe(0);
      const parsed = JSON.parse(status.stdout) as {
        partitioned: boolean;
        partitions: { catchAll: boolean }[];
      };
      expect(parsed.partitioned).toBe(true);
      expect(parsed.partitions).toHaveLength(5);
      const text = await runCli(['partitions'], env);
      expect(text.code).toBe(0);
      expect(text.stdout).toContain(`${table}: 5 partitions`);
      expect(text.stdout).toContain('catch-all');
      const ensure = await runCli(['partitions', 'ensure'], { ...env, ACTIVITY_LOG_PARTITIONS_AHEAD: '5' });
      expect(ensure.code).toBe(0);
      expect(ensure.stdout).toMatch(/added p\d{6}, p\d{6}/);
      const bad = await runCli(['partitions', 'split'], env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('partitions takes status or ensure');
    });

    test('serve creates the partitions ahead on its timer, a few seconds after start-up', async ({
      defer,
    }) => {
      const { table, env, admin } = await partitionedTable(defer, target, 'part_serve');
      const spool = mkdtempSync(join(tmpdir(), 'activity-partitions-spool-'));
      defer(() => rmSync(spool, { recursive: true, force: true }));
      const served = spawnCli(['serve', '--port=0'], {
        ...env,
        ACTIVITY_LOG_PARTITIONS_AHEAD: '5',
        ACTIVITY_LOG_SPOOL_DIR: spool,
      });
      defer(async () => {
        if (served.child.exitCode === null) served.child.kill('SIGTERM');
        await served.exited;
      });
      const deadline = Date.now() + 45_000;
      while (!served.stdout().includes(`added partitions`) && Date.now() < deadline) {
        if (served.child.exitCode !== null) throw new Error(`serve exited early: ${served.stderr()}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(served.stdout()).toMatch(new RegExp(`added partitions p\\d{6}, p\\d{6} to ${table}`));
      // The current month, five ahead and the catch-all.
      expect(await target.partitions(admin, table)).toHaveLength(7);
    }, 120_000);

    test('prune drops the partitions wholly past the cutoff and deletes only the boundary rows in chunks', async ({
      defer,
    }) => {
      const { table, store, admin } = await partitionedTable(defer, target, 'part_prune', {
        createdMonthsAgo: 4,
        ahead: 6,
      });
      const cutoff = new Date(monthsAgo(2).getTime() + 15 * DAY_MS);
      await store.insertMany([
        ...createdAt(5, new Date(monthsAgo(4).getTime() + 10 * DAY_MS), 0),
        ...createdAt(6, new Date(monthsAgo(3).getTime() + 10 * DAY_MS), 5),
        ...createdAt(3, new Date(monthsAgo(2).getTime() + 5 * DAY_MS), 11),
        ...createdAt(4, new Date(monthsAgo(2).getTime() + 25 * DAY_MS), 14),
        ...createdAt(2, new Date(Date.now() - 60_000), 18),
      ]);
      const partitionsBefore = await target.partitions(admin, table);

      const wouldDrop: { name: string; rows: number }[] = [];
      const counted = await store.prune({
        before: cutoff,
        dryRun: true,
        onPartition: (partition) => wouldDrop.push(partition),
      });
      expect(counted).toBe(14);
      expect(wouldDrop.map((partition) => partition.rows)).toEqual([5, 6]);
      expect(await countRows(admin, target, table)).toBe(20);

      const dropped: { name: string; rows: number }[] = [];
      const progress: number[] = [];
      const deleted = await store.prune({
        before: cutoff,
        chunkSize: 2,
        onPartition: (partition) => dropped.push(partition),
        onProgress: (soFar) => progress.push(soFar),
      });
      expect(deleted).toBe(14);
      expect(dropped).toEqual(wouldDrop);
      // The boundary's 3 old rows, two per chunk, after the 11 rows of the dropped partitions.
      expect(progress).toEqual([13, 14]);
      expect(await countRows(admin, target, table)).toBe(6);
      const partitionsAfter = await target.partitions(admin, table);
      expect(partitionsAfter).toHaveLength(partitionsBefore.length - 2);
      for (const { name } of dropped) expect(partitionsAfter.map((p) => p.name)).not.toContain(name);
      // Again: nothing left to prune.
      expect(await store.prune({ before: cutoff })).toBe(0);
    });

    test('prune on a sealed partitioned table removes whole seals, records the pruned range and verify still finds tampering after it', async ({
      defer,
    }) => {
      const { table, env, store, admin } = await partitionedTable(defer, target, 'part_seal', {
        seal: true,
        createdMonthsAgo: 6,
        ahead: 7,
      });
      const days = 70;
      const cutoff = new Date(Date.now() - days * DAY_MS);
      const cutoffPeriod = periodStart(cutoff, 'month');
      const olderPeriod = new Date(
        Date.UTC(cutoffPeriod.getUTCFullYear(), cutoffPeriod.getUTCMonth() - 1, 1),
      );
      const oldest = new Date(Date.UTC(cutoffPeriod.getUTCFullYear(), cutoffPeriod.getUTCMonth() - 2, 1));
      const beforeCutoff = new Date((cutoffPeriod.getTime() + cutoff.getTime()) / 2);
      const afterCutoff = new Date((cutoff.getTime() + nextPeriod(cutoffPeriod, 'month').getTime()) / 2);
      // Seal 1: the oldest month; seal 2: the month before the cutoff's; seal 3 straddles the
      // bound of the cutoff's month (rows in the month before it, rows after the cutoff);
      // seal 4: rows before the cutoff, kept because seal 3 must stay; seal 5: now.
      await store.insertMany(createdAt(4, new Date(oldest.getTime() + 3 * DAY_MS), 0));
      await store.insertMany(createdAt(5, new Date(olderPeriod.getTime() + 3 * DAY_MS), 4));
      await store.insertMany([
        ...createdAt(2, new Date(olderPeriod.getTime() + 9 * DAY_MS), 9),
        ...createdAt(3, afterCutoff, 11),
      ]);
      await store.insertMany(createdAt(2, beforeCutoff, 14));
      await store.insertMany(createdAt(3, new Date(Date.now() - 60_000), 16));
      expect(await countRows(admin, target, table)).toBe(19);

      const dry = await runCli(['prune', `--days=${days}`, '--dry-run'], env);
      expect(dry.code).toBe(0);
      expect(dry.stderr).toMatch(/would drop partition \S+ \(4 activities\)/);
      expect(dry.stdout).toContain('seals 1…2 would be pruned');
      expect(dry.stdout).toContain('2 older activities kept: their seals also hold newer ones');
      expect(await countRows(admin, target, table)).toBe(19);

      const pruned = await runCli(['prune', `--days=${days}`], env);
      expect(pruned.code).toBe(0);
      expect(pruned.stderr).toMatch(/dropped partition \S+ \(4 activities\)/);
      expect(pruned.stderr).toMatch(/dropped partition \S+ \(7 activities\)/);
      expect(pruned.stdout).toContain('deleted 11 activities');
      expect(pruned.stdout).toContain('seals 1…2 are pruned');
      expect(pruned.stdout).toContain('2 older activities kept: their seals also hold newer ones');
      // Seal 3's 3 newer rows, seal 4's 2 rows, seal 5's 3 rows.
      expect(await countRows(admin, target, table)).toBe(8);
      const recorded = await admin.rows<{
        seq: number | string;
        pruned_rows: number | string;
        total_rows: unknown;
      }>(`SELECT seq, pruned_rows, total_rows FROM ${target.q(`${table}_seals_pruned`)} ORDER BY seq`);
      expect(
        recorded.map((row) => [Number(row.seq), Number(row.pruned_rows), row.total_rows === null]),
      ).toEqual([
        [2, 9, false],
        [3, 2, true],
      ]);

      const verified = await runCli(['verify', '--json'], env);
      expect(verified.stderr).toBe('');
      expect(verified.code).toBe(0);
      const report = JSON.parse(verified.stdout) as ChainReport;
      expect(report.intact).toBe(true);
      expect(report.pruned).toEqual({ toSeq: 2, rows: 9 });
      expect(report.partlyPrunedSeals).toBe(1);
      expect(report.fromSeq).toBe(3);
      expect(report.head).toMatchObject({ seq: 5, totalRows: 19 });
      const text = await runCli(['verify'], env);
      expect(text.code).toBe(0);
      expect(text.stdout).toContain('pruned: seals 1…2 (9 rows) removed by retention, not checked');

      // Tampering after the pruned range is still found.
      await admin.exec(
        `UPDATE ${target.q(table)} SET description = 'rewritten' WHERE seal_seq = 5 AND id = (SELECT id FROM (SELECT MIN(id) AS id FROM ${target.q(
          table,
        )} WHERE seal_seq = 5) AS oldest)`,
      );
      const tampered = await runCli(['verify', '--json'], env);
      expect(tampered.code).toBe(1);
      const problems = (JSON.parse(tampered.stdout) as ChainReport).problems;
      expect(problems.map((problem) => [problem.kind, problem.seq])).toEqual([['row-altered', 5]]);
    }, 180_000);

    test('an interrupted conversion carries on from the newest row copied, and copies each row once', async ({
      defer,
    }) => {
      const table = `part_resume_${uniqueSuffix()}`;
      const env: Record<string, string> = { DATABASE_URL: target.url, ACTIVITY_LOG_TABLE: table };
      const admin = await target.connect();
      const store = createStore(loadConfig({ env }).database);
      defer(async () => {
        await store.close();
        await admin.exec(
          `DROP TABLE IF EXISTS ${[
            table,
            `${table}_unpartitioned`,
            `${table}_partitioned`,
            `${table}_migrations`,
            `${table}_seals`,
            `${table}_seals_pruned`,
          ]
            .map(target.q)
            .join(', ')}`,
        );
        await admin.close();
      });
      await store.migrate();
      await store.insertMany(createdAt(900, new Date(monthsAgo(1).getTime() + DAY_MS), 0));
      const config = loadConfig({ env: { ...env, ACTIVITY_LOG_PARTITION: 'month' } }).database;
      await expect(
        convertToPartitioned(config, {
          chunkSize: 200,
          onProgress: (copied) => {
            if (copied >= 400) throw new Error('interrupted');
          },
        }),
      ).rejects.toThrow('interrupted');
      expect(await countRows(admin, target, `${table}_partitioned`)).toBe(400);
      // Rows written between the two runs are copied too.
      await store.insertMany(createdAt(50, new Date(Date.now() - 60_000), 900));
      const progress: number[] = [];
      const result = await convertToPartitioned(config, {
        chunkSize: 200,
        onProgress: (n) => progress.push(n),
      });
      expect(result).toEqual({ converted: true, copied: 950, keptAs: `${table}_unpartitioned` });
      expect(progress[0]).toBe(600);
      const [counts] = await admin.rows<{ n: number | string; ids: number | string }>(
        `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM ${target.q(table)}`,
      );
      expect([Number(counts!.n), Number(counts!.ids)]).toEqual([950, 950]);
    });

    test('migrate --to-partitioned converts a sealed table while ingest runs, keeping every row exactly once', async ({
      defer,
    }) => {
      const table = `part_conv_${uniqueSuffix()}`;
      const env: Record<string, string> = {
        DATABASE_URL: target.url,
        ACTIVITY_LOG_TABLE: table,
        ACTIVITY_LOG_SEAL: 'on',
      };
      const admin = await target.connect();
      const store = createStore(loadConfig({ env }).database);
      defer(async () => {
        await store.close();
        await admin.exec(
          `DROP TABLE IF EXISTS ${[
            table,
            `${table}_unpartitioned`,
            `${table}_partitioned`,
            `${table}_migrations`,
            `${table}_seals`,
            `${table}_seals_pruned`,
          ]
            .map(target.q)
            .join(', ')}`,
        );
        await admin.close();
      });
      await store.migrate();
      let offset = 0;
      for (const months of [3, 2, 1, 0]) {
        for (let batch = 0; batch < 3; batch++) {
          const at =
            months === 0
              ? new Date(Date.now() - 3_600_000)
              : new Date(monthsAgo(months).getTime() + (batch + 1) * DAY_MS);
          await store.insertMany(createdAt(250, at, offset));
          offset += 250;
        }
      }
      const before = offset;

      // Writers keep storing while the table is copied and swapped.
      let writing = true;
      const writer = (async () => {
        while (writing) {
          await store.insertMany(createdAt(20, new Date(), offset));
          offset += 20;
        }
      })();
      const converted = await runCli(['migrate', '--to-partitioned', '--chunk=400'], {
        ...env,
        ACTIVITY_LOG_PARTITION: 'month',
      });
      writing = false;
      await writer;
      expect(converted.stderr).toContain('copied 400 so far (chunk 1)');
      expect(converted.code).toBe(0);
      expect(converted.stdout).toContain(`the old table is kept as ${table}_unpartitioned`);

      const [counts] = await admin.rows<{ n: number | string; ids: number | string }>(
        `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM ${target.q(table)}`,
      );
      expect(offset).toBeGreaterThan(before);
      expect(Number(counts!.n)).toBe(offset);
      expect(Number(counts!.ids)).toBe(offset);
      const partitions = await target.partitions(admin, table);
      // From three months back to three months ahead, and the catch-all.
      expect(partitions.length).toBe(8);
      expect(partitions.filter((partition) => partition.rows > 0).length).toBeGreaterThanOrEqual(4);
      expect((await target.indexes(admin, table)).names).toEqual(target.expectedIndexes(table));
      expect(await countRows(admin, target, `${table}_unpartitioned`)).toBeGreaterThanOrEqual(before);

      const verified = await runCli(['verify', '--json'], env);
      expect(verified.code).toBe(0);
      expect((JSON.parse(verified.stdout) as ChainReport).head?.totalRows).toBe(offset);

      const again = await runCli(['migrate', '--to-partitioned', '--drop-old'], {
        ...env,
        ACTIVITY_LOG_PARTITION: 'month',
      });
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(`${table} is partitioned already`);
      const left = await admin.rows(
        target.name === 'PostgreSQL'
          ? `SELECT 1 FROM pg_class WHERE relname = '${table}_unpartitioned'`
          : `SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}_unpartitioned'`,
      );
      expect(left).toEqual([]);
    }, 180_000);
  });
}

describe('partitioning on SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'activity-partitions-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a prune cut short after recording its watermark leaves a chain verify finds intact, and runs again to the end', async ({
    defer,
  }) => {
    const table = `part_cut_${uniqueSuffix()}`;
    const env = {
      DATABASE_URL: `sqlite:${join(dir, `${table}.sqlite`)}`,
      ACTIVITY_LOG_TABLE: table,
      ACTIVITY_LOG_SEAL: 'on',
    };
    const config = loadConfig({ env }).database;
    const store = createStore(config);
    defer(() => store.close());
    await store.migrate();
    const now = Date.now();
    await store.insertMany(createdAt(3, new Date(now - 90 * DAY_MS), 0));
    await store.insertMany(createdAt(2, new Date(now - 80 * DAY_MS), 3));
    await store.insertMany(createdAt(2, new Date(now - 60_000), 5));
    // What a prune does first, before any row goes: seals 1…2 recorded as pruned.
    const dialect = DIALECT_REGISTRY.sqlite.create(config);
    const db = new Kysely<ActivityDatabase>({ dialect: dialect.createKyselyDialect() });
    defer(() => db.destroy());
    await recordWatermark(db, dialect, table, null, 2);

    const cut = JSON.parse((await runCli(['verify', '--json'], env)).stdout) as ChainReport;
    expect(cut).toMatchObject({ intact: true, pruned: { toSeq: 2, rows: 5 }, rows: 2 });
    expect(await store.prune({ before: new Date(now - 30 * DAY_MS) })).toBe(5);
    const done = await runCli(['verify', '--json'], env);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({
      intact: true,
      pruned: { toSeq: 2, rows: 5 },
      head: { seq: 3, totalRows: 7 },
    });
  }, 120_000);

  test('ACTIVITY_LOG_PARTITION is ignored, said in one line; prune on a sealed table removes whole seals and verify reports them pruned', async ({
    defer,
  }) => {
    const table = `part_sqlite_${uniqueSuffix()}`;
    const file = join(dir, `${table}.sqlite`);
    const env = {
      DATABASE_URL: `sqlite:${file}`,
      ACTIVITY_LOG_TABLE: table,
      ACTIVITY_LOG_PARTITION: 'month',
      ACTIVITY_LOG_SEAL: 'on',
    };
    const migrated = await runCli(['migrate'], env);
    expect(migrated.code).toBe(0);
    expect(migrated.stderr).toBe(
      'activity-log: ACTIVITY_LOG_PARTITION=month is ignored on sqlite: its table is not partitioned\n',
    );
    const db = new Database(file);
    defer(() => db.close());
    const created = db.prepare(`SELECT sql FROM sqlite_master WHERE name = ?`).get(table) as { sql: string };
    expect(created.sql).toContain('PRIMARY KEY ("id")');
    const status = await runCli(['partitions', '--json'], env);
    expect(JSON.parse(status.stdout)).toMatchObject({ partitioned: false, partitions: [] });

    const store = createStore(loadConfig({ env }).database);
    defer(() => store.close());
    const now = Date.now();
    const keys = join(dir, `${table}-keys`);
    expect((await runCli(['keygen', `--out=${keys}`], {})).code).toBe(0);
    const signing = {
      ...env,
      ACTIVITY_LOG_SIGNING_KEY: join(keys, 'activity-log-signing-key.pem'),
      ACTIVITY_LOG_CHECKPOINT_DIR: join(dir, `${table}-checkpoints`),
    };
    await store.insertMany(createdAt(3, new Date(now - 100 * DAY_MS), 0)); // seal 1
    expect((await runCli(['checkpoint'], signing)).code).toBe(0);
    await store.insertMany([
      ...createdAt(2, new Date(now - 90 * DAY_MS), 3),
      ...createdAt(2, new Date(now - 10 * DAY_MS), 5),
    ]); // seal 2: straddles the cutoff, kept whole
    await store.insertMany(createdAt(2, new Date(now - 80 * DAY_MS), 7)); // seal 3: old, kept behind seal 2
    await store.insertMany(createdAt(2, new Date(now - 60_000), 9)); // seal 4

    expect((await runCli(['checkpoint'], signing)).code).toBe(0);
    const pruned = await runCli(['prune', '--days=30', '--chunk=2'], env);
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toContain('deleted 3 activities');
    expect(pruned.stdout).toContain('seals 1…1 are pruned');
    expect(pruned.stdout).toContain('4 older activities kept');
    const left = db.prepare(`SELECT COUNT(*) AS n FROM "${table}"`).get() as { n: number };
    expect(left.n).toBe(8);

    const verified = await runCli(['verify', '--json'], env);
    expect(verified.code).toBe(0);
    const report = JSON.parse(verified.stdout) as ChainReport;
    expect(report).toMatchObject({
      intact: true,
      pruned: { toSeq: 1, rows: 3 },
      fromSeq: 2,
      partlyPrunedSeals: 0,
    });
    expect(report.head).toMatchObject({ seq: 4, totalRows: 11 });
    // Checkpoints signed before the prune (at the pruned seal, and at the head) still hold, and
    // one signed after it counts the pruned rows in its total.
    await store.insertMany(createdAt(1, new Date(now - 30_000), 11)); // seal 5
    expect((await runCli(['checkpoint'], signing)).code).toBe(0);
    const checked = await runCli(
      ['verify', '--json', `--checkpoint=${signing.ACTIVITY_LOG_CHECKPOINT_DIR}`],
      signing,
    );
    expect(checked.stderr).toBe('');
    expect(checked.code).toBe(0);
    expect((JSON.parse(checked.stdout) as ChainReport).head).toMatchObject({ seq: 5, totalRows: 12 });

    // --log-name never takes rows out of a seal.
    const byLog = await runCli(['prune', '--days=30', '--log-name=orders'], env);
    expect(byLog.code).toBe(0);
    expect(byLog.stdout).toContain('deleted 0 activities in log "orders"');
    expect(byLog.stdout).toContain('4 sealed activities kept: a seal is pruned whole, never by log name');

    db.prepare(`UPDATE "${table}" SET description = 'rewritten' WHERE seal_seq = 3`).run();
    const tampered = await runCli(['verify', '--json'], env);
    expect(tampered.code).toBe(1);
    expect((JSON.parse(tampered.stdout) as ChainReport).problems[0]).toMatchObject({ seq: 3 });
    expect(readdirSync(signing.ACTIVITY_LOG_CHECKPOINT_DIR)).toHaveLength(3);
  }, 180_000);
});
