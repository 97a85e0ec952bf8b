import { sql } from 'kysely';
import type { ColumnDefinition, IndexDefinition } from '../activity-table.js';
import { indexColumns, indexIdentifier } from './create-activity-table.js';
import type { Migration, MigrationContext } from './migrate-schema.js';

/**
 * A migration step that adds columns (with their indexes) to the activity table, each column as
 * CREATE TABLE would declare it. A column that is not nullable needs a `defaultValue`, which rows
 * already stored get.
 *
 * Where DDL is not transactional (MySQL), the columns and indexes are added in one ALTER TABLE,
 * so a crash never leaves a column without its index.
 *
 * @example
 * { version: 2, name: 'add_tenant_id', up: addColumns(columnsAddedIn(2), [{ name: 'idx_tenant_id', columns: ['tenant_id'] }]) }
 */
export function addColumns(
  columns: readonly ColumnDefinition[],
  indexes: readonly IndexDefinition[] = [],
): Migration['up'] {
  return async ({ db, table, dialect }: MigrationContext) => {
    const { schema } = dialect;
    const definitions = columns.map(
      (column) =>
        sql`ADD COLUMN ${sql.id(column.name)} ${sql.raw(schema.columnTypes[column.kind])} ${sql.raw(
          column.nullable ? 'NULL' : 'NOT NULL',
        )}${column.defaultValue === undefined ? sql`` : sql` DEFAULT ${sql.lit(column.defaultValue)}`}`,
    );
    if (schema.indexesInCreateTable) {
      for (const index of indexes) {
        definitions.push(
          sql`ADD INDEX ${indexIdentifier(table, index, schema)} (${indexColumns(index, schema)})`,
        );
      }
      await sql`ALTER TABLE ${sql.table(table)} ${sql.join(definitions)}`.execute(db);
      return;
    }
    // SQLite adds one column per ALTER TABLE; there, as on PostgreSQL, the step is one transaction.
    for (const definition of definitions)
      await sql`ALTER TABLE ${sql.table(table)} ${definition}`.execute(db);
    for (const index of indexes) {
      const method = schema.indexMethods[index.name];
      await sql`CREATE INDEX IF NOT EXISTS ${indexIdentifier(table, index, schema)} ON ${sql.table(table)}${
        method === undefined ? sql`` : sql` USING ${sql.raw(method)}`
      } (${indexColumns(index, schema)})`.execute(db);
    }
  };
}
