import { type RawBuilder, sql } from 'kysely';
import {
  ACTIVITY_INDEXES,
  columnsAddedIn,
  type IndexDefinition,
  physicalIndexName,
} from '../activity-table.js';
import { missingPartitions, periodStart, plannedPartitions } from '../partition-plan.js';
import type { DialectSchema } from '../store-dialect.js';
import type { MigrationContext } from './migrate-schema.js';

/**
 * Version 1: the activity table with the DESIGN.md columns and indexes. With
 * `ACTIVITY_LOG_PARTITION=month|day` on a dialect that partitions, it is partitioned by RANGE of
 * `created_at` with the current period's partition, `partitionsAhead` more and a catch-all, and
 * its primary key is `(id, created_at)`: every unique key of a partitioned table must hold the
 * partitioning column. Both are fixed when the activity is logged and travel with it, so a row
 * sent again still meets its first copy and is skipped.
 */
export async function createActivityTable({ db, table, dialect, layout }: MigrationContext): Promise<void> {
  const { schema } = dialect;
  const partitions = layout.partition === 'none' ? undefined : dialect.partitions;
  const ranges =
    partitions === undefined || layout.partition === 'none'
      ? []
      : layout.firstPeriod === undefined
        ? plannedPartitions(new Date(), layout.partition, layout.partitionsAhead)
        : missingPartitions(
            periodStart(layout.firstPeriod, layout.partition),
            new Date(),
            layout.partition,
            layout.partitionsAhead,
          );
  const definitions: RawBuilder<unknown>[] = columnsAddedIn(1).map(
    (column) =>
      sql`${sql.id(column.name)} ${sql.raw(schema.columnTypes[column.kind])} ${sql.raw(
        column.nullable ? 'NULL' : 'NOT NULL',
      )}${column.defaultValue === undefined ? sql`` : sql` DEFAULT ${sql.lit(column.defaultValue)}`}`,
  );
  definitions.push(
    partitions === undefined
      ? sql`PRIMARY KEY (${sql.id('id')})`
      : sql`PRIMARY KEY (${sql.id('id')}, ${sql.id('created_at')})`,
  );
  if (schema.indexesInCreateTable) {
    for (const index of ACTIVITY_INDEXES) {
      definitions.push(sql`INDEX ${indexIdentifier(table, index, schema)} (${indexColumns(index, schema)})`);
    }
  }
  await sql`CREATE TABLE IF NOT EXISTS ${sql.table(table)} (${sql.join(definitions)})${sql.raw(
    schema.tableOptions,
  )}${partitions === undefined ? sql`` : sql` ${partitions.createTableClause(table, ranges)}`}`.execute(db);
  if (partitions !== undefined) await partitions.afterCreateTable(db, table, ranges);
  if (schema.indexesInCreateTable) return;
  for (const index of ACTIVITY_INDEXES) {
    const method = schema.indexMethods[index.name];
    await sql`CREATE INDEX IF NOT EXISTS ${indexIdentifier(table, index, schema)} ON ${sql.table(table)}${
      method === undefined ? sql`` : sql` USING ${sql.raw(method)}`
    } (${indexColumns(index, schema)})`.execute(db);
  }
}

export function indexIdentifier(table: string, index: IndexDefinition, schema: DialectSchema) {
  return sql.id(physicalIndexName(table, index.name, schema.indexNamesArePerTable));
}

export function indexColumns(index: IndexDefinition, schema: DialectSchema) {
  return sql.join(
    index.columns.map((column) => {
      const prefixLength = schema.indexPrefixLengths[column];
      return prefixLength === undefined
        ? sql.id(column)
        : sql`${sql.id(column)}(${sql.raw(String(prefixLength))})`;
    }),
  );
}
