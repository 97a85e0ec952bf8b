import { sql } from 'kysely';
import type { PartitionRange } from '../partition-plan.js';
import { fromSqlTimestamp, toSqlTimestamp } from '../sql-timestamp.js';
import type { PartitionDialect, StoredPartition } from '../store-dialect.js';

/** The catch-all partition, `VALUES LESS THAN (MAXVALUE)`. */
export const CATCH_ALL_PARTITION = 'pmax';

/**
 * RANGE COLUMNS(created_at) on MySQL and MariaDB: each partition bounded above only (the first
 * holds everything older), and `pmax` for everything past the last. New partitions are split out
 * of `pmax` by one REORGANIZE PARTITION, which moves the rows of their periods it holds; it
 * rewrites only `pmax`, normally empty.
 */
export const MYSQL_PARTITIONS: PartitionDialect = Object.freeze({
  contiguous: true,
  createTableClause: (_table, ranges) =>
    sql`PARTITION BY RANGE COLUMNS(${sql.id('created_at')}) (${partitionList(ranges)})`,
  afterCreateTable: async () => {},
  list: async (db, table) => {
    const { rows } = await sql<{
      name: string | null;
      description: string | null;
      estimate: number | string | null;
      bytes: number | string | null;
    }>`SELECT PARTITION_NAME AS name, PARTITION_DESCRIPTION AS description, TABLE_ROWS AS estimate,
        DATA_LENGTH + INDEX_LENGTH AS bytes
      FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ${table}
      ORDER BY PARTITION_ORDINAL_POSITION`.execute(db);
    const partitions: StoredPartition[] = [];
    let from: Date | null = null;
    for (const row of rows) {
      if (row.name === null) return [];
      const to = boundDate(row.description);
      partitions.push({
        name: row.name,
        from: to === null ? null : from,
        to,
        catchAll: to === null,
        rowEstimate: Number(row.estimate ?? 0),
        bytes: Number(row.bytes ?? 0),
      });
      from = to;
    }
    return partitions;
  },
  oldestInCatchAll: async (db, table, from) => {
    const { rows } = await sql<{ oldest: unknown }>`SELECT MIN(${sql.id('created_at')}) AS oldest
      FROM ${sql.table(table)} PARTITION (${sql.id(CATCH_ALL_PARTITION)})${
        from === null ? sql`` : sql` WHERE ${sql.id('created_at')} >= ${toSqlTimestamp(from)}`
      }`.execute(db);
    const oldest = rows[0]?.oldest ?? null;
    return oldest === null ? null : fromSqlTimestamp(oldest);
  },
  add: async (db, table, ranges) => {
    if (ranges.length === 0) return 0;
    const last = ranges.at(-1)!;
    const { rows } = await sql<{ moved: number | string }>`SELECT COUNT(*) AS moved FROM ${sql.table(
      table,
    )} PARTITION (${sql.id(CATCH_ALL_PARTITION)}) WHERE ${sql.id('created_at')} < ${toSqlTimestamp(last.to)}`.execute(
      db,
    );
    await sql`ALTER TABLE ${sql.table(table)} REORGANIZE PARTITION ${sql.id(CATCH_ALL_PARTITION)} INTO (${partitionList(
      ranges,
    )})`.execute(db);
    return Number(rows[0]?.moved ?? 0);
  },
  drop: async (db, table, partition) => {
    await sql`ALTER TABLE ${sql.table(table)} DROP PARTITION ${sql.id(partition.name)}`.execute(db);
  },
} satisfies PartitionDialect);

/** The ranges as partition definitions, `pmax` last. */
function partitionList(ranges: readonly PartitionRange[]) {
  return sql.join([
    ...ranges.map(
      (range) => sql`PARTITION ${sql.id(range.name)} VALUES LESS THAN (${sql.lit(toSqlTimestamp(range.to))})`,
    ),
    sql`PARTITION ${sql.id(CATCH_ALL_PARTITION)} VALUES LESS THAN (MAXVALUE)`,
  ]);
}

/** `'2027-01-01 00:00:00.000'` as information_schema spells it, or MAXVALUE as null. */
function boundDate(description: string | null): Date | null {
  if (description === null) return null;
  const quoted = /^'(.*)'$/.exec(description.trim());
  return quoted === null ? null : fromSqlTimestamp(quoted[1]!);
}
