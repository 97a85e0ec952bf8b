import { sql } from 'kysely';
import { SEAL_COLUMNS, SEAL_SEQ_INDEX } from '../activity-table.js';
import { GENESIS_ROW, SEALS_TABLE_COLUMNS, sealRowValues, sealsTable } from '../seal-table.js';
import { addColumns } from './add-columns.js';
import type { MigrationContext } from './migrate-schema.js';

const addSealColumns = addColumns(SEAL_COLUMNS, [SEAL_SEQ_INDEX]);

/**
 * Version 2: tamper evidence. The rows get `seal_seq`, `seal_salt` and `seal_commitments`; the
 * table `<table>_seals` is created with its anchor row, seq 0, which every sealing transaction
 * locks to take the chain head. Applied whether sealing is on or not, so turning it on needs no
 * migration.
 *
 * The seals table comes first: on MySQL, where DDL is not transactional, a crash after it leaves a
 * step that runs again cleanly (CREATE TABLE IF NOT EXISTS, the anchor inserted once), and the
 * columns and their index are then added in one ALTER TABLE.
 */
export async function addSeals(context: MigrationContext): Promise<void> {
  const { db, table, dialect } = context;
  const { columnTypes, tableOptions } = dialect.schema;
  const definitions = SEALS_TABLE_COLUMNS.map(
    (column) => sql`${sql.id(column.name)} ${sql.raw(columnTypes[column.kind])} NOT NULL`,
  );
  definitions.push(sql`PRIMARY KEY (${sql.id('seq')})`);
  await sql`CREATE TABLE IF NOT EXISTS ${sql.table(sealsTable(table))} (${sql.join(definitions)})${sql.raw(
    tableOptions,
  )}`.execute(db);
  const values = sealRowValues(GENESIS_ROW, dialect);
  await sql`INSERT INTO ${sql.table(sealsTable(table))} (${sql.join(
    SEALS_TABLE_COLUMNS.map((column) => sql.id(column.name)),
  )}) VALUES (${sql.join(values)}) ${sql.raw(dialect.skipDuplicateKeyClause('seq'))}`.execute(db);
  await addSealColumns(context);
}
