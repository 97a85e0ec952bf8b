import type { PostgresPool, PostgresPoolClient } from 'kysely';
import pg from 'pg';
import type { DatabaseConfig } from '../../config/config.js';
import { isPostgresQueryTimeout } from './postgres-errors.js';

/**
 * The client-side query timeout fires this long after the server's statement_timeout, so a slow
 * statement is normally cancelled by the server with the connection intact, and only a database
 * that stopped answering costs a connection.
 */
const CLIENT_TIMEOUT_GRACE_MS = 1000;

/**
 * The pg pool behind Kysely's PostgresDialect, sized and timed from the config: connecting, waiting
 * for a free connection and every statement are bounded; sessions run in UTC; TLS per `sslMode`.
 */
export function createPostgresPool(config: DatabaseConfig): PostgresPool {
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
        // pg emits 'error' on a checked-out client whose connection breaks, even while its query
        // is being rejected with the same error; the pool listens only to idle ones. Without this
        // listener the event would crash the process; the client is destroyed on release instead.
        client.on('error', () => {
          broken = true;
        });
        connection = {
          // Kysely only streams through cursors, which this store never uses.
          query: ((text: string, parameters: readonly unknown[]) =>
            client.query(text, parameters as unknown[]).catch((error: unknown) => {
              if (isPostgresQueryTimeout(error)) broken = true;
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
