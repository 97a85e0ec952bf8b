import { CompiledQuery, MysqlDialect, type MysqlPool, type MysqlPoolConnection, sql } from 'kysely';
import { createPool, type Pool, type PoolConnection } from 'mysql2';
import type { DatabaseConfig } from '../../config/config.js';
import { ActivityLogError } from '../../core/errors.js';
import { ACTIVITY_COLUMNS } from '../activity-table.js';
import { waitForMigrationLock } from '../migrations/wait-for-migration-lock.js';
import { fromSqlTimestamp, toSqlTimestamp } from '../sql-timestamp.js';
import type { StoreDialect } from '../store-dialect.js';
import { mapMysqlError } from './mysql-errors.js';

/** mysql2 expands placeholders client-side, but a prepared-statement path would be held to 65,535. */
const MAX_PLACEHOLDERS = 65_535;

/**
 * Statement text per INSERT, in characters. Values travel inside the text, so it must stay under
 * max_allowed_packet (16 MiB on MariaDB, 64 MiB on MySQL 8) even when every character takes three
 * bytes and escaping doubles some: 2 Mi characters is at most 12 MiB.
 */
const MAX_INSERT_CHARS = 2 * 1024 * 1024;

/**
 * The client-side query timeout fires this long after the server-side one (MariaDB's
 * max_statement_time), so a slow statement is normally cancelled by the server with the connection
 * intact, and only a database that stopped answering costs a connection.
 */
const CLIENT_TIMEOUT_GRACE_MS = 1000;

/**
 * MariaDB (10.2+) and MySQL (8+) through mysql2: a pool sized and timed from the config, UTC
 * DATETIME(3) text, utf8mb4 with a binary collation so exact-match filters behave as on the other
 * dialects (under utf8mb4_general_ci 'Orders' = 'orders' and every emoji equals every other).
 */
export function createMysqlDialect(config: DatabaseConfig): StoreDialect {
  const server = `MySQL at ${config.host}:${config.port}/${config.database}`;
  return {
    capabilities: Object.freeze({
      dialect: 'mysql',
      maxRowsPerInsert: Math.floor(MAX_PLACEHOLDERS / ACTIVITY_COLUMNS.length),
    }),
    createKyselyDialect: () =>
      new MysqlDialect({
        pool: async () => createTimedPool(config),
        onCreateConnection: async (connection) => {
          // Strict mode makes an over-long value an error instead of a silent truncation; the
          // executable comment sets a server-side statement timeout on MariaDB only.
          await connection.executeQuery(
            CompiledQuery.raw(
              `SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'` +
                ` /*M!100108 , max_statement_time = ${config.queryTimeoutMs / 1000} */`,
            ),
          );
        },
      }),
    maxInsertChars: MAX_INSERT_CHARS,
    placeholder: () => '?',
    quoteIdentifier: (name) => `\`${name.replaceAll('`', '``')}\``,
    // Not INSERT IGNORE: that would also turn bad data into warnings and store it truncated.
    // With CLIENT_FOUND_ROWS off, a skipped duplicate counts 0 affected rows, a new row 1.
    skipDuplicateIdClause: 'ON DUPLICATE KEY UPDATE `id` = `id`',
    encodeTimestamp: toSqlTimestamp,
    decodeTimestamp: fromSqlTimestamp,
    schema: Object.freeze({
      columnTypes: Object.freeze({
        uuid: 'CHAR(36) CHARACTER SET ascii COLLATE ascii_bin',
        name: 'VARCHAR(191)',
        text: 'TEXT',
        json: 'JSON',
        ipAddress: 'VARCHAR(45)',
        url: 'VARCHAR(2048)',
        method: 'VARCHAR(16)',
        userAgent: 'VARCHAR(1024)',
        timestamp: 'DATETIME(3)',
      }),
      // A binary NO PAD collation, spelled per server through executable comments (MariaDB runs
      // /*M!…*/ and skips /*!80000…*/; MySQL 8 does the opposite): with PAD SPACE, 'paid ' = 'paid'.
      tableOptions:
        ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=/*M!100202 utf8mb4_nopad_bin */ /*!80000 utf8mb4_0900_bin */',
      indexNamesArePerTable: true,
      indexesInCreateTable: true,
      // InnoDB keys stop at 3072 bytes; 191 utf8mb4 characters (764 bytes) fit any row format.
      indexPrefixLengths: Object.freeze({ url: 191 }),
      indexMethods: Object.freeze({}),
    }),
    withMigrationLock: (db, lockName, migrate) =>
      db.connection().execute(async (connection) => {
        await waitForMigrationLock(async () => {
          const { rows } = await sql<{
            locked: number | null;
          }>`SELECT GET_LOCK(${lockName}, 0) AS locked`.execute(connection);
          return Number(rows[0]?.locked) === 1;
        }, lockName);
        try {
          return await migrate(connection);
        } finally {
          // The lock also ends with the session, so a failed release must not hide the real outcome.
          await sql`SELECT RELEASE_LOCK(${lockName})`.execute(connection).catch(() => undefined);
        }
      }),
    mapError: (error) => mapMysqlError(error, server),
  };
}

function createTimedPool(config: DatabaseConfig): MysqlPool {
  const pool = createPool({
    host: config.host,
    port: config.port,
    database: config.database,
    user: config.user,
    password: config.password ?? undefined,
    connectionLimit: config.poolMax,
    maxIdle: config.poolMax,
    connectTimeout: config.connectTimeoutMs,
    charset: 'utf8mb4_unicode_ci',
    // DATETIME(3) comes back as the UTC text it was written as; no local-time conversion.
    dateStrings: true,
    // Without FOUND_ROWS, ON DUPLICATE KEY UPDATE id = id reports skipped rows as 0 affected.
    flags: ['-FOUND_ROWS'],
    ...(config.sslMode === null || config.sslMode === 'disable'
      ? {}
      : { ssl: { rejectUnauthorized: config.sslMode === 'verify-full' } }),
  });
  return withTimeouts(pool, config.connectTimeoutMs, config.queryTimeoutMs + CLIENT_TIMEOUT_GRACE_MS);
}

/**
 * mysql2 waits for a free pooled connection forever and Kysely does not pass a per-query timeout,
 * so both are added here: a caller queued for longer than `acquireTimeoutMs` gets
 * STORE_POOL_EXHAUSTED, and every query carries mysql2's `timeout`. A connection whose query timed
 * out is destroyed, because mysql2 keeps waiting for that query's answer on it.
 */
function withTimeouts(pool: Pool, acquireTimeoutMs: number, queryTimeoutMs: number): MysqlPool {
  const wrapped = new WeakMap<PoolConnection, MysqlPoolConnection>();
  const wrap = (raw: PoolConnection): MysqlPoolConnection => {
    let connection = wrapped.get(raw);
    if (connection === undefined) {
      connection = timedConnection(raw, queryTimeoutMs);
      wrapped.set(raw, connection);
    }
    return connection;
  };
  return {
    getConnection(callback) {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      let queued = false;
      const onEnqueue = () => {
        queued = true;
      };
      pool.once('enqueue', onEnqueue);
      pool.getConnection((error, raw) => {
        if (settled) {
          raw?.release();
          return;
        }
        settled = true;
        clearTimeout(timer);
        if (error) callback(error, undefined as never);
        else callback(null, wrap(raw));
      });
      pool.off('enqueue', onEnqueue);
      // Only a queued request can wait without bound; a new connection has its own connectTimeout.
      if (queued && !settled) {
        timer = setTimeout(() => {
          settled = true;
          callback(
            new ActivityLogError(
              'STORE_POOL_EXHAUSTED',
              `all ${pool.config.connectionLimit} MySQL connections stayed busy for ${acquireTimeoutMs} ms. Raise DB_POOL_MAX or reduce concurrent callers`,
            ),
            undefined as never,
          );
        }, acquireTimeoutMs);
      }
    },
    end: (callback) => pool.end(callback),
  };
}

function timedConnection(raw: PoolConnection, queryTimeoutMs: number): MysqlPoolConnection {
  function query(sqlText: string, parameters: unknown[]): ReturnType<PoolConnection['query']>;
  function query(
    sqlText: string,
    parameters: unknown[],
    callback: (error: unknown, result: never) => void,
  ): void;
  function query(
    sqlText: string,
    parameters: unknown[],
    callback?: (error: unknown, result: never) => void,
  ): ReturnType<PoolConnection['query']> | undefined {
    const options = { sql: sqlText, timeout: queryTimeoutMs };
    if (callback === undefined) return raw.query(options, parameters);
    raw.query(options, parameters, (error, result) => {
      if (error?.code === 'PROTOCOL_SEQUENCE_TIMEOUT') raw.destroy();
      callback(error, result as never);
    });
    return undefined;
  }
  return { query, release: () => raw.release() } as MysqlPoolConnection;
}
