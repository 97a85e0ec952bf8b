import { SqliteDialect, sql } from 'kysely';
import type { DatabaseConfig } from '../../config/config.js';
import type { StoreCapabilities } from '../activity-store.js';
import { INSERT_COLUMN_COUNT } from '../activity-table.js';
import { fromSqlTimestamp, toSqlTimestamp } from '../sql-timestamp.js';
import type { StoreDialect } from '../store-dialect.js';
import { mapSqliteError } from './sqlite-errors.js';
import { openSqliteDatabase } from './sqlite-pool.js';

/** SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32 (better-sqlite3 12 bundles a newer one). */
const MAX_VARIABLES = 32_766;

/** What a store on SQLite can do, known before anything connects. */
export const SQLITE_CAPABILITIES: StoreCapabilities = Object.freeze({
  dialect: 'sqlite',
  maxRowsPerInsert: Math.floor(MAX_VARIABLES / INSERT_COLUMN_COUNT),
});

/**
 * SQLite through better-sqlite3: one connection in WAL mode (readers do not block the writer), and
 * `created_at` as fixed-width UTC text so text order is time order. Index names are global to the
 * database file, so a table other than `activity_log` gets table-prefixed index names.
 *
 * better-sqlite3 is synchronous: a statement waiting for another process's write lock blocks the
 * event loop for up to `queryTimeoutMs` (the busy timeout) before it fails with STORE_LOCK_TIMEOUT,
 * and a running statement cannot be interrupted.
 */
export function createSqliteDialect(config: DatabaseConfig): StoreDialect {
  const server = `SQLite database ${config.filename}`;
  return {
    capabilities: SQLITE_CAPABILITIES,
    // A factory, so that failing to open the file surfaces (mapped) on first use, not at construction.
    createKyselyDialect: () => new SqliteDialect({ database: async () => openSqliteDatabase(config) }),
    maxInsertChars: Number.POSITIVE_INFINITY,
    placeholder: () => '?',
    quoteIdentifier: (name) => `"${name.replaceAll('"', '""')}"`,
    skipDuplicateIdClause: 'ON CONFLICT ("id") DO NOTHING',
    skipDuplicateKeyClause: (column) => `ON CONFLICT ("${column.replaceAll('"', '""')}") DO NOTHING`,
    // A write transaction holds the database's one write lock from its first write on.
    lockRowsClause: '',
    insertReturning: async () => true,
    overlapSealedInserts: async () => false,
    encodeTimestamp: toSqlTimestamp,
    decodeTimestamp: fromSqlTimestamp,
    schema: Object.freeze({
      columnTypes: Object.freeze({
        uuid: 'TEXT',
        name: 'TEXT',
        text: 'TEXT',
        json: 'TEXT',
        ipAddress: 'TEXT',
        url: 'TEXT',
        method: 'TEXT',
        userAgent: 'TEXT',
        timestamp: 'TEXT',
        sequence: 'INTEGER',
        salt: 'TEXT',
        hash: 'TEXT',
        commitments: 'TEXT',
      }),
      tableOptions: '',
      indexNamesArePerTable: false,
      indexesInCreateTable: false,
      indexPrefixLengths: Object.freeze({}),
      indexMethods: Object.freeze({}),
    }),
    withMigrationLock: (db, _lockName, migrate) =>
      db.connection().execute(async (connection) => {
        // IMMEDIATE takes the write lock up front, so a second process waits (busy timeout) here
        // instead of failing half-way; DDL is transactional, so a failure leaves nothing behind.
        await sql`BEGIN IMMEDIATE`.execute(connection);
        try {
          const result = await migrate(connection);
          await sql`COMMIT`.execute(connection);
          return result;
        } catch (error) {
          await sql`ROLLBACK`.execute(connection).catch(() => undefined);
          throw error;
        }
      }),
    mapError: (error) => mapSqliteError(error, server),
    // One writer at a time: a transaction waits for the lock or fails busy, never deadlocks.
    isDeadlock: () => false,
  };
}
