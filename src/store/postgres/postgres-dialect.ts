import { PostgresDialect, type PostgresPool, type PostgresPoolClient, sql } from 'kysely';
import pg from 'pg';
import type { DatabaseConfig } from '../../config/config.js';
import { ACTIVITY_COLUMNS } from '../activity-table.js';
import { waitForMigrationLock } from '../migrations/wait-for-migration-lock.js';
import type { StoreDialect } from '../store-dialect.js';
import { mapPostgresError } from './postgres-errors.js';

/** Bind parameters per statement in the wire protocol (a 16-bit count). */
const MAX_PARAMETERS = 65_535;

/**
 * The client-side query timeout fires this long after the server's statement_timeout, so a slow
 * statement is normally cancelled by the server with the connection intact, and only a database
 * that stopped answering costs a connection.
 */
const CLIENT_TIMEOUT_GRACE_MS = 1000;

/**
 * PostgreSQL through pg. `created_at` is `timestamptz(3)`: an absolute instant, shown in UTC because
 * every session runs with `TimeZone=UTC`. Index names are global to a schema, so a table other
 * than `activity_log` gets table-prefixed index names (see `physicalIndexName`).
 */
export function createPostgresDialect(config: DatabaseConfig): StoreDialect {
  const server = `PostgreSQL at ${config.host}:${config.port}/${config.database}`;
  return {
    capabilities: Object.freeze({
      dialect: 'postgres',
      maxRowsPerInsert: Math.floor(MAX_PARAMETERS / ACTIVITY_COLUMNS.length),
    }),
    createKyselyDialect: () => new PostgresDialect({ pool: async () => createTimedPool(config) }),
    maxInsertChars: Number.POSITIVE_INFINITY,
    placeholder: (index) => `$${index + 1}`,
    quoteIdentifier: (name) => `"${name.replaceAll('"', '""')}"`,
    skipDuplicateIdClause: 'ON CONFLICT ("id") DO NOTHING',
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
  };
}

function createTimedPool(config: DatabaseConfig): PostgresPool {
  const pool = new pg.Pool({
    host: config.host,
    port: config.port,
    database: config.database,
    user: config.user,
    password: config.password ?? undefined,
    max: config.poolMax,
    // Bounds both a new connection and the wait for a free one when all are checked out.
    connectionTimeoutMillis: config.connectTimeoutMs,
    statement_timeout: config.queryTimeoutMs,
    query_timeout: config.queryTimeoutMs + CLIENT_TIMEOUT_GRACE_MS,
    options: '-c TimeZone=UTC',
    application_name: 'activity-log',
    // Unset, `pg` follows PGSSLMODE.
    ...(config.sslMode === null
      ? {}
      : {
          ssl:
            config.sslMode === 'disable' ? false : { rejectUnauthorized: config.sslMode === 'verify-full' },
        }),
  });
  // An idle connection that dies (server restart) is dropped by the pool; without a listener the
  // 'error' event would crash the process. The next query reports the problem instead.
  pool.on('error', () => undefined);
  return withBrokenClientDisposal(pool);
}

/**
 * After a client-side query timeout pg still waits for that query's answer on the connection, so
 * such a connection is destroyed on release instead of going back to the pool.
 */
function withBrokenClientDisposal(pool: pg.Pool): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  return {
    async connect() {
      const client = await pool.connect();
      let connection = wrapped.get(client);
      if (connection === undefined) {
        let broken = false;
        connection = {
          // Kysely only streams through cursors, which this store never uses.
          query: ((text: string, parameters: readonly unknown[]) =>
            client.query(text, parameters as unknown[]).catch((error: unknown) => {
              if ((error as Error).message === 'Query read timeout') broken = true;
              throw error;
            })) as unknown as PostgresPoolClient['query'],
          release: (destroy?: boolean) => client.release(destroy === true || broken),
        };
        wrapped.set(client, connection);
      }
      return connection;
    },
    end: () => pool.end(),
  };
}
