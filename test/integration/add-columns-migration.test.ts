import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, sql } from 'kysely';
import { afterAll, describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import type { ActivityDatabase, ColumnDefinition, IndexDefinition } from '../../src/store/activity-table.js';
import { createStore } from '../../src/store/create-store.js';
import { ACTIVITY_MIGRATIONS } from '../../src/store/migrations/activity-migrations.js';
import { addColumns } from '../../src/store/migrations/add-columns.js';
import { migrateSchema } from '../../src/store/migrations/migrate-schema.js';
import { createMysqlDialect } from '../../src/store/mysql/mysql-dialect.js';
import { createPostgresDialect } from '../../src/store/postgres/postgres-dialect.js';
import { createSqliteDialect } from '../../src/store/sqlite/sqlite-dialect.js';
import type { StoreDialect } from '../../src/store/store-dialect.js';
import { sampleActivity } from '../helpers/field-samples.js';
import { serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import {
  MARIADB_STORE_TARGET,
  POSTGRES_STORE_TARGET,
  type StoreTarget,
  sqliteStoreTarget,
} from '../helpers/store-targets.js';
import { test as it } from '../helpers/test-context.js';

interface Target extends StoreTarget {
  createDialect: typeof createSqliteDialect;
  indexNames(db: Kysely<ActivityDatabase>, table: string): Promise<string[]>;
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-add-columns-'));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

const TARGETS: readonly Target[] = [
  {
    ...sqliteStoreTarget(sqliteDir),
    createDialect: createSqliteDialect,
    indexNames: async (db, table) =>
      (
        await sql<{
          name: string;
        }>`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ${table}`.execute(db)
      ).rows.map((row) => row.name),
  },
  {
    ...MARIADB_STORE_TARGET,
    createDialect: createMysqlDialect,
    indexNames: async (db, table) =>
      (
        await sql<{
          name: string;
        }>`SELECT DISTINCT index_name AS name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ${table}`.execute(
          db,
        )
      ).rows.map((row) => row.name),
  },
  {
    ...POSTGRES_STORE_TARGET,
    createDialect: createPostgresDialect,
    indexNames: async (db, table) =>
      (
        await sql<{
          name: string;
        }>`SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ${table}`.execute(
          db,
        )
      ).rows.map((row) => row.name),
  },
];

// Columns the field table does not have: the step is tested on its own.
const EXTRA_COLUMNS = [
  { name: 'extra', kind: 'name', nullable: true },
  { name: 'flag', kind: 'method', nullable: false, defaultValue: 'none' },
] as unknown as readonly ColumnDefinition[];
const EXTRA_INDEXES = [{ name: 'idx_extra', columns: ['extra'] }] as unknown as readonly IndexDefinition[];

for (const target of TARGETS) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`a migration step that adds columns: ${target.name}`, () => {
    it('adds the columns and their index once, filling the rows already stored', async ({ defer }) => {
      const table = `add_columns_${uniqueSuffix()}`;
      const config = loadConfig({
        env: { DATABASE_URL: target.databaseUrl(table), ACTIVITY_LOG_TABLE: table },
      });
      const store = createStore(config.database);
      await store.migrate();
      await store.insertMany([sampleActivity('typical')]);
      await store.close();

      const dialect: StoreDialect = target.createDialect(config.database);
      const db = new Kysely<ActivityDatabase>({ dialect: dialect.createKyselyDialect() });
      defer(async () => {
        await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
        await sql`DROP TABLE IF EXISTS ${sql.table(`${table}_migrations`)}`.execute(db);
        await sql`DROP TABLE IF EXISTS ${sql.table(`${table}_seals`)}`.execute(db);
        await sql`DROP TABLE IF EXISTS ${sql.table(`${table}_seals_pruned`)}`.execute(db);
        await db.destroy();
      });
      const current = ACTIVITY_MIGRATIONS.at(-1)!.version;
      const migrations = [
        ...ACTIVITY_MIGRATIONS,
        { version: current + 1, name: 'add_extra', up: addColumns(EXTRA_COLUMNS, EXTRA_INDEXES) },
      ];
      expect(await migrateSchema(db, dialect, table, migrations)).toEqual({ from: current, to: current + 1 });
      expect(await migrateSchema(db, dialect, table, migrations)).toEqual({
        from: current + 1,
        to: current + 1,
      });

      const { rows } = await sql<{
        extra: string | null;
        flag: string;
      }>`SELECT extra, flag FROM ${sql.table(table)}`.execute(db);
      expect(rows).toEqual([{ extra: null, flag: 'none' }]);
      const indexName = dialect.schema.indexNamesArePerTable ? 'idx_extra' : `${table}_idx_extra`;
      expect(await target.indexNames(db, table)).toContain(indexName);
    });
  });
}
