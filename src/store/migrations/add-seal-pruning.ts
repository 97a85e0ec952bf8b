import { sql } from 'kysely';
import { PRUNED_SEALS_COLUMNS, prunedSealsTable } from '../seal-pruning.js';
import type { MigrationContext } from './migrate-schema.js';

/**
 * Version 4: `<table>_seals_pruned`, what retention removed from the seal chain, so that `verify`
 * tells pruned seals from deleted ones: the newest seal pruned whole with its hash (the chain
 * after it links to that hash), and seals that lost rows with a dropped partition.
 */
export async function addSealPruning({ db, table, dialect }: MigrationContext): Promise<void> {
  const { columnTypes, tableOptions } = dialect.schema;
  const definitions = PRUNED_SEALS_COLUMNS.map(
    (column) =>
      sql`${sql.id(column.name)} ${sql.raw(columnTypes[column.kind])} ${sql.raw(column.nullable ? 'NULL' : 'NOT NULL')}`,
  );
  definitions.push(sql`PRIMARY KEY (${sql.id('seq')})`);
  await sql`CREATE TABLE IF NOT EXISTS ${sql.table(prunedSealsTable(table))} (${sql.join(definitions)})${sql.raw(
    tableOptions,
  )}`.execute(db);
}
