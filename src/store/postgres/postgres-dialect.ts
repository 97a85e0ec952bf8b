import { PostgresDialect, sql } from 'kysely';
import type { DatabaseConfig } from '../../config/config.js';
import type { StoreCapabilities } from '../activity-store.js';
import { INSERT_COLUMN_COUNT } from '../activity-table.js';
import { driverErrorFields } from '../driver-error.js';
import { waitForMigrationLock } from '../migrations/wait-for-migration-lock.js';
import type { StoreDialect } from '../store-dialect.js';
import { mapPostgresError } from './postgres-errors.js';
import { POSTGRES_PARTITIONS } from './postgres-partitions.js';
import { createPostgresPool } from './postgres-pool.js';

/** Bind parameters per statement in the wire protocol (a 16-bit count). */
const MAX_PARAMETERS = 65_535;

/** What a store on PostgreSQL can do, known before anything connects. */
export const POSTGRES_CAPABILITIES: StoreCapabilities = Object.freeze({
  dialect: 'postgres',
  maxRowsPerInsert: Math.floor(MAX_PARAMETERS / INSERT_COLUMN_COUNT),
});

/**
 * PostgreSQL through pg. `created_at` is `timestamptz(3)`: an absolute instant, shown in UTC because
 * every session runs with `TimeZone=UTC`. Index names are global to a schema, so a table other
 * than `activity_log` gets table-prefixed index names (see `physicalIndexName`).
 */
export function createPostgresDialect(config: DatabaseConfig): StoreDialect {
  const server = `PostgreSQL at ${config.host}:${config.port}/${config.database}`;
  return {
    capabilities: POSTGRES_CAPABILITIES,
    createKyselyDialect: () => new PostgresDialect({ pool: async () => createPostgresPool(config) }),
    maxInsertChars: Number.POSITIVE_INFINITY,
    placeholder: (index) => `$${index + 1}`,
    quoteIdentifier: (name) => `"${name.replaceAll('"', '""')}"`,
    // No conflict target: a partitioned table's primary key is (id, created_at), a plain one's id,
    // and the primary key is the only unique constraint either has.
    skipDuplicateIdClause: 'ON CONFLICT DO NOTHING',
    skipDuplicateKeyClause: (column) => `ON CONFLICT ("${column.replaceAll('"', '""')}") DO NOTHING`,
    // A row lock, so concurrent writers wait for the one holding it.
    lockRowsClause: 'FOR UPDATE',
    insertReturning: async () => true,
    overlapSealedInserts: async () => false,
    encodeTimestamp: (date) => date.toISOString(),
    decodeTimestamp: (value) => (value instanceof Date ? value : new Date(String(value))),
    schema: Object.freeze({
      columnTypes: Object.freeze({
        // Byte-order collation: ids compare and sort as plain ASCII, without locale rules.
        uuid: 'VARCHAR(36) COLLATE "C"',
        name: 'VARCHAR(191)',
        text: 'TEXT',
        json: 'JSONB',
        ipAddress: 'VARCHAR(45)',
        url: 'VARCHAR(2048)',
        method: 'VARCHAR(16)',
        userAgent: 'VARCHAR(1024)',
        timestamp: 'TIMESTAMPTZ(3)',
        sequence: 'BIGINT',
        salt: 'CHAR(32)',
        hash: 'CHAR(64)',
        commitments: 'TEXT',
      }),
      tableOptions: '',
      indexNamesArePerTable: false,
      indexesInCreateTable: false,
      indexPrefixLengths: Object.freeze({}),
      // A b-tree entry is capped near 2.7 kB, which a 2048-character non-ASCII URL can exceed;
      // a hash index has no such cap and serves the exact-match url filter just as well.
      indexMethods: Object.freeze({ idx_url: 'HASH' }),
    }),
    withMigrationLock: (db, lockName, migrate) =>
      db.transaction().execute(async (transaction) => {
        await waitForMigrationLock(async () => {
          const { rows } = await sql<{
            locked: boolean;
          }>`SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.' || ${lockName})) AS locked`.execute(
            transaction,
          );
          return rows[0]?.locked === true;
        }, lockName);
        return migrate(transaction);
      }),
    mapError: (error) => mapPostgresError(error, server),
    isDeadlock: (error) => driverErrorFields(error).code === '40P01', // deadlock_detected
    partitions: POSTGRES_PARTITIONS,
  };
}
