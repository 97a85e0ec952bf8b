import { type Kysely, sql } from 'kysely';
import type { MigrateResult } from '../activity-store.js';
import { type ActivityDatabase, derivedIdentifier } from '../activity-table.js';
import type { PartitionSetting } from '../partition-plan.js';
import type { StoreDialect } from '../store-dialect.js';
import { ACTIVITY_MIGRATIONS } from './activity-migrations.js';

export interface MigrationContext {
  /** One connection, holding the migration lock (and, where DDL is transactional, inside a transaction). */
  readonly db: Kysely<ActivityDatabase>;
  readonly table: string;
  readonly dialect: StoreDialect;
  readonly layout: TableLayout;
}

/** How a new activity table is laid out (`ACTIVITY_LOG_PARTITION`, `ACTIVITY_LOG_PARTITIONS_AHEAD`). */
export interface TableLayout {
  readonly partition: PartitionSetting;
  /** Partitions created ahead of the current period. */
  readonly partitionsAhead: number;
  /** A new partitioned table gets partitions from this period on (default: the current one). */
  readonly firstPeriod?: Date | undefined;
}

export const UNPARTITIONED: TableLayout = Object.freeze({ partition: 'none', partitionsAhead: 0 });

/**
 * One forward step of the schema. Versions only grow; a released step is never edited, only
 * followed. Its statements run under the store's query timeout (on MariaDB also the server-side
 * max_statement_time), so a step that rewrites a large table must lift the timeout for its session.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  up(context: MigrationContext): Promise<void>;
}

/** The table recording applied versions: `<table>_migrations`. */
function migrationsTableName(table: string): string {
  return derivedIdentifier(table, '_migrations');
}

/**
 * Applies every migration newer than the recorded version, each recorded as it completes, under a
 * lock so that concurrent callers apply each step once. Running it again is a no-op.
 */
export async function migrateSchema(
  db: Kysely<ActivityDatabase>,
  dialect: StoreDialect,
  table: string,
  migrations: readonly Migration[] = ACTIVITY_MIGRATIONS,
  layout: TableLayout = UNPARTITIONED,
): Promise<MigrateResult> {
  const versions = sql.table(migrationsTableName(table));
  const timestampType = sql.raw(dialect.schema.columnTypes.timestamp);
  return dialect.withMigrationLock(db, derivedIdentifier(table, '_migrate_lock'), async (connection) => {
    await sql`CREATE TABLE IF NOT EXISTS ${versions} (
      version INTEGER NOT NULL PRIMARY KEY,
      name VARCHAR(191) NOT NULL,
      applied_at ${timestampType} NOT NULL
    )${sql.raw(dialect.schema.tableOptions)}`.execute(connection);
    const { rows } = await sql<{
      version: number | string | null;
    }>`SELECT MAX(version) AS version FROM ${versions}`.execute(connection);
    const from = Number(rows[0]?.version ?? 0);
    let to = from;
    for (const migration of migrations) {
      if (migration.version <= from) continue;
      await migration.up({ db: connection, table, dialect, layout });
      await sql`INSERT INTO ${versions} (version, name, applied_at)
        VALUES (${migration.version}, ${migration.name}, ${dialect.encodeTimestamp(new Date())})`.execute(
        connection,
      );
      to = migration.version;
    }
    return { from, to };
  });
}
