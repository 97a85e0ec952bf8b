import type { MysqlPool, MysqlPoolConnection } from 'kysely';
import { createPool, type Pool, type PoolConnection } from 'mysql2';
import type { DatabaseConfig } from '../../config/config.js';
import { isMysqlQueryTimeout, mysqlPoolExhausted } from './mysql-errors.js';

/**
 * The client-side query timeout fires this long after the server-side one (MariaDB's
 * max_statement_time), so a slow statement is normally cancelled by the server with the connection
 * intact, and only a database that stopped answering costs a connection.
 */
const CLIENT_TIMEOUT_GRACE_MS = 1000;

/**
 * The mysql2 pool behind Kysely's MysqlDialect, sized and timed from the config: waiting for a
 * free connection and every query are bounded, UTC DATETIME text, utf8mb4, TLS per `sslMode`.
 */
export function createMysqlPool(config: DatabaseConfig, jsonAsText = false): MysqlPool {
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
    jsonStrings: jsonAsText,
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
          callback(mysqlPoolExhausted(pool.config.connectionLimit, acquireTimeoutMs), undefined as never);
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
      if (isMysqlQueryTimeout(error)) raw.destroy();
      callback(error, result as never);
    });
    return undefined;
  }
  return { query, release: () => raw.release() } as MysqlPoolConnection;
}
