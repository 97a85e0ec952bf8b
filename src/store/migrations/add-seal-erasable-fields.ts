import { sql } from 'kysely';
import { SEAL_ERASABLE_FIELDS_COLUMN, sealsTable } from '../seal-table.js';
import type { MigrationContext } from './migrate-schema.js';

/**
 * Version 3: each seal records the erasable fields its rows were sealed with, as a comma list in
 * `<table>_seals.erasable_fields`, so that changing `ACTIVITY_LOG_ERASABLE_FIELDS` later neither
 * breaks `verify` of the rows sealed before nor lets `erase` null a field their leaves hold by
 * value. Seals written before this step keep null there, read as the configured list.
 */
export async function addSealErasableFields({ db, table, dialect }: MigrationContext): Promise<void> {
  await sql`ALTER TABLE ${sql.table(sealsTable(table))} ADD COLUMN ${sql.id(SEAL_ERASABLE_FIELDS_COLUMN)} ${sql.raw(
    dialect.schema.columnTypes.text,
  )} NULL`.execute(db);
}
