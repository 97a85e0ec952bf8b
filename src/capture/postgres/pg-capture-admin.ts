import pg from 'pg';
import { ActivityLogError } from '../../core/errors.js';
import { isOwnTable } from '../capture-source.js';

/** What runs one SQL statement on the source (a `pg` client; a fake in tests). */
export interface SourceQuery {
  query<R extends object = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

/** A table on the source, by schema and name. */
export interface SourceTable {
  readonly schema: string;
  readonly name: string;
}

/** Refuses with one line unless the server writes logical WAL. */
export async function assertLogicalWal(source: SourceQuery): Promise<void> {
  const result = await source.query<{ wal_level: string }>('SHOW wal_level');
  const level = result.rows[0]?.wal_level;
  if (level !== 'logical') {
    throw new ActivityLogError(
      'CAPTURE_SOURCE_UNSUITABLE',
      `wal_level is ${level ?? 'unknown'} on the capture source; change capture needs wal_level=logical (set it in postgresql.conf or with ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)`,
      { field: 'wal_level' },
    );
  }
}

/**
 * `ACTIVITY_LOG_CAPTURE_TABLES` as tables of the source: `*` is every table in a schema of the
 * application (not the catalogs) but the activity log's own; a named table must exist.
 */
export async function resolveTables(
  source: SourceQuery,
  names: readonly string[],
  activityTable: string,
): Promise<SourceTable[]> {
  if (names.length === 0) {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      'ACTIVITY_LOG_CAPTURE_TABLES is not set: expected * or comma-separated table names (schema.table allowed)',
      { field: 'ACTIVITY_LOG_CAPTURE_TABLES' },
    );
  }
  const tables: SourceTable[] = [];
  if (names.includes('*')) {
    const all = await source.query<{ schema: string; name: string }>(
      `SELECT schemaname AS schema, tablename AS name FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\\_%'
        ORDER BY schemaname, tablename`,
    );
    for (const row of all.rows) if (!isOwnTable(row.name, activityTable)) tables.push(row);
    return tables;
  }
  for (const entry of names) {
    const found = await source.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')`,
      [entry],
    );
    const table = found.rows[0];
    if (table === undefined) {
      throw new ActivityLogError(
        'CAPTURE_SOURCE_UNSUITABLE',
        `ACTIVITY_LOG_CAPTURE_TABLES names ${entry}, which is not a table of the capture source`,
        { field: 'ACTIVITY_LOG_CAPTURE_TABLES' },
      );
    }
    tables.push(table);
  }
  return tables;
}

function qualified(table: SourceTable): string {
  return `${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.name)}`;
}

/**
 * The statements `capture --setup` runs: full before-images for every table (old values of
 * updates and deletes), the publication (named as the slot) for exactly these tables, the slot.
 */
export function setupStatements(
  tables: readonly SourceTable[],
  slot: string,
  state: { readonly publicationExists: boolean; readonly slotExists: boolean },
): string[] {
  const list = tables.map(qualified).join(', ');
  const statements = tables.map((table) => `ALTER TABLE ${qualified(table)} REPLICA IDENTITY FULL`);
  statements.push(
    state.publicationExists
      ? `ALTER PUBLICATION ${pg.escapeIdentifier(slot)} SET TABLE ${list}`
      : `CREATE PUBLICATION ${pg.escapeIdentifier(slot)} FOR TABLE ${list}`,
  );
  if (!state.slotExists) {
    statements.push(`SELECT pg_create_logical_replication_slot(${pg.escapeLiteral(slot)}, 'pgoutput')`);
  }
  return statements;
}

export async function publicationExists(source: SourceQuery, name: string): Promise<boolean> {
  const result = await source.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name]);
  return result.rows.length > 0;
}

export async function slotExists(source: SourceQuery, slot: string): Promise<boolean> {
  const result = await source.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return result.rows.length > 0;
}

/**
 * Applies {@link setupStatements} one by one, calling `print` with each before it runs. A
 * statement the server refuses (privileges) stops with one line naming it.
 */
export async function setUpPostgresCapture(
  source: SourceQuery,
  options: { readonly slot: string; readonly tables: readonly string[]; readonly activityTable: string },
  print: (line: string) => void,
): Promise<readonly SourceTable[]> {
  await assertLogicalWal(source);
  const tables = await resolveTables(source, options.tables, options.activityTable);
  if (tables.length === 0) {
    throw new ActivityLogError(
      'CAPTURE_SOURCE_UNSUITABLE',
      'ACTIVITY_LOG_CAPTURE_TABLES is * but the capture source has no table of its own',
      { field: 'ACTIVITY_LOG_CAPTURE_TABLES' },
    );
  }
  const statements = setupStatements(tables, options.slot, {
    publicationExists: await publicationExists(source, options.slot),
    slotExists: await slotExists(source, options.slot),
  });
  for (const statement of statements) {
    print(`${statement};`);
    try {
      await source.query(statement);
    } catch (error) {
      throw new ActivityLogError(
        'CAPTURE_SOURCE_UNSUITABLE',
        `the capture source refused "${statement}": ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  return tables;
}

/** The slot and publication as the source sees them, for `capture --status`. */
export interface PostgresCaptureState {
  readonly walLevel: string;
  readonly slot: string;
  readonly slotExists: boolean;
  readonly active: boolean;
  readonly confirmedPosition: string | null;
  readonly lagBytes: number | null;
  readonly retainedBytes: number | null;
  readonly tables: readonly string[];
}

export async function postgresCaptureState(source: SourceQuery, slot: string): Promise<PostgresCaptureState> {
  const wal = await source.query<{ wal_level: string }>('SHOW wal_level');
  const slots = await source.query<{
    active: boolean;
    confirmed: string | null;
    lag: string | null;
    retained: string | null;
  }>(
    `SELECT active, confirmed_flush_lsn::text AS confirmed,
            pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const tables = await source.query<{ name: string }>(
    `SELECT schemaname || '.' || tablename AS name FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`,
    [slot],
  );
  const row = slots.rows[0];
  return {
    walLevel: wal.rows[0]?.wal_level ?? 'unknown',
    slot,
    slotExists: row !== undefined,
    active: row?.active ?? false,
    confirmedPosition: row?.confirmed ?? null,
    lagBytes: row?.lag === null || row?.lag === undefined ? null : Number(row.lag),
    retainedBytes: row?.retained === null || row?.retained === undefined ? null : Number(row.retained),
    tables: tables.rows.map((table) => table.name),
  };
}

/** Moves the slot to the server's current position: what was written before is never read. */
export async function advanceSlotToNow(source: SourceQuery, slot: string): Promise<string> {
  const result = await source.query<{ position: string }>(
    'SELECT end_lsn::text AS position FROM pg_replication_slot_advance($1, pg_current_wal_lsn())',
    [slot],
  );
  return result.rows[0]!.position;
}

/** Drops the slot (the server then releases the WAL it kept) and the publication. */
export async function dropPostgresCapture(
  source: SourceQuery,
  slot: string,
  print: (line: string) => void,
): Promise<void> {
  if (await slotExists(source, slot)) {
    print(`SELECT pg_drop_replication_slot(${pg.escapeLiteral(slot)});`);
    try {
      await source.query('SELECT pg_drop_replication_slot($1)', [slot]);
    } catch (error) {
      throw new ActivityLogError(
        'CAPTURE_SOURCE_UNSUITABLE',
        `slot ${slot} could not be dropped: ${(error as Error).message} (stop the capture process reading it first)`,
        { cause: error },
      );
    }
  }
  print(`DROP PUBLICATION IF EXISTS ${pg.escapeIdentifier(slot)};`);
  await source.query(`DROP PUBLICATION IF EXISTS ${pg.escapeIdentifier(slot)}`);
}
