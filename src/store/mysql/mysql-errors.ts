import { ActivityLogError, type ErrorCode } from '../../core/errors.js';
import { driverErrorFields, mappedStoreError, UNREACHABLE_CODES } from '../driver-error.js';

/*
 * Server errors are matched by number: mysql2 names them after MySQL's catalogue, which leaves
 * MariaDB-only errors (statement timeout, CHECK failure) without a name.
 */
const SERVER_ERRORS: ReadonlyMap<number, ErrorCode> = new Map<number, ErrorCode>([
  [1040, 'STORE_CONNECTION_REFUSED'], // ER_CON_COUNT_ERROR
  [1044, 'STORE_CONNECTION_REFUSED'], // ER_DBACCESS_DENIED_ERROR
  [1045, 'STORE_CONNECTION_REFUSED'], // ER_ACCESS_DENIED_ERROR
  [1049, 'STORE_CONNECTION_REFUSED'], // ER_BAD_DB_ERROR
  [1053, 'STORE_CONNECTION_REFUSED'], // ER_SERVER_SHUTDOWN
  [1129, 'STORE_CONNECTION_REFUSED'], // ER_HOST_IS_BLOCKED
  [1130, 'STORE_CONNECTION_REFUSED'], // ER_HOST_NOT_PRIVILEGED
  [1251, 'STORE_CONNECTION_REFUSED'], // ER_NOT_SUPPORTED_AUTH_MODE
  [1927, 'STORE_CONNECTION_REFUSED'], // ER_CONNECTION_KILLED (MariaDB)
  [3159, 'STORE_CONNECTION_REFUSED'], // ER_SECURE_TRANSPORT_REQUIRED: the server wants DB_SSL_MODE
  [1317, 'STORE_TIMEOUT'], // ER_QUERY_INTERRUPTED
  [1969, 'STORE_TIMEOUT'], // ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
  [3024, 'STORE_TIMEOUT'], // ER_QUERY_TIMEOUT (MySQL max_execution_time)
  [1205, 'STORE_LOCK_TIMEOUT'], // ER_LOCK_WAIT_TIMEOUT
  [1213, 'STORE_LOCK_TIMEOUT'], // ER_LOCK_DEADLOCK
  [3572, 'STORE_LOCK_TIMEOUT'], // ER_LOCK_NOWAIT
  [1406, 'STORE_DATA_TOO_LONG'], // ER_DATA_TOO_LONG
  [1153, 'STORE_DATA_TOO_LONG'], // ER_NET_PACKET_TOO_LARGE
  [1146, 'STORE_SCHEMA_MISSING'], // ER_NO_SUCH_TABLE
  [1054, 'STORE_SCHEMA_MISSING'], // ER_BAD_FIELD_ERROR
  [1048, 'STORE_DATA_INVALID'], // ER_BAD_NULL_ERROR
  [1264, 'STORE_DATA_INVALID'], // ER_WARN_DATA_OUT_OF_RANGE
  [1292, 'STORE_DATA_INVALID'], // ER_TRUNCATED_WRONG_VALUE
  [1366, 'STORE_DATA_INVALID'], // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
  [3140, 'STORE_DATA_INVALID'], // ER_INVALID_JSON_TEXT
  [3819, 'STORE_DATA_INVALID'], // ER_CHECK_CONSTRAINT_VIOLATED
  [4025, 'STORE_DATA_INVALID'], // ER_CONSTRAINT_FAILED (MariaDB, e.g. JSON_VALID)
  [1644, 'STORE_DATA_INVALID'], // ER_SIGNAL_EXCEPTION: a trigger refused the row (SIGNAL SQLSTATE '45000')
]);

/** Errors raised by mysql2 itself, by code. */
const CLIENT_ERRORS: ReadonlyMap<string, ErrorCode> = new Map<string, ErrorCode>([
  ...[...UNREACHABLE_CODES].map((code): [string, ErrorCode] => [code, 'STORE_CONNECTION_REFUSED']),
  ['PROTOCOL_CONNECTION_LOST', 'STORE_CONNECTION_REFUSED'],
  ['PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR', 'STORE_CONNECTION_REFUSED'],
  ['ETIMEDOUT', 'STORE_TIMEOUT'],
  ['PROTOCOL_SEQUENCE_TIMEOUT', 'STORE_TIMEOUT'],
  // DB_SSL_MODE=require|verify-full against a server without TLS.
  ['HANDSHAKE_NO_SSL_SUPPORT', 'STORE_CONNECTION_REFUSED'],
]);

/** mysql2 pool errors carry no code, only these messages. */
const POOL_MESSAGES: ReadonlyMap<string, ErrorCode> = new Map<string, ErrorCode>([
  ['Queue limit reached.', 'STORE_POOL_EXHAUSTED'],
  ['No connections available.', 'STORE_POOL_EXHAUSTED'],
  ['Pool is closed.', 'STORE_CLOSED'],
]);

/**
 * Maps a mysql2 error to the library's coded error. `server` names the database in messages
 * (host, port and database, never the password).
 */
export function mapMysqlError(error: unknown, server: string): ActivityLogError {
  if (error instanceof ActivityLogError) return error;
  shortenStatement(error);
  const { code, errno, message } = driverErrorFields(error);
  const mapped =
    (errno === undefined ? undefined : SERVER_ERRORS.get(errno)) ??
    CLIENT_ERRORS.get(code) ??
    POOL_MESSAGES.get(message) ??
    'STORE_FAILED';
  return mappedStoreError(mapped, server, code === '' ? message : `${message} (${code})`, error);
}

/** mysql2's own query timeout: it keeps waiting for that query's answer on the connection. */
export function isMysqlQueryTimeout(error: { code?: string } | null): boolean {
  return error?.code === 'PROTOCOL_SEQUENCE_TIMEOUT';
}

/** A caller waited longer than `acquireTimeoutMs` for one of the pool's connections. */
export function mysqlPoolExhausted(
  connectionLimit: number | undefined,
  acquireTimeoutMs: number,
): ActivityLogError {
  return new ActivityLogError(
    'STORE_POOL_EXHAUSTED',
    `all ${connectionLimit} MySQL connections stayed busy for ${acquireTimeoutMs} ms. Raise DB_POOL_MAX or reduce concurrent callers`,
  );
}

/** Characters of the failed statement kept on the driver error. */
const STATEMENT_PREVIEW_CHARS = 200;

/**
 * mysql2 attaches the whole statement, values interpolated, to its errors. For a multi-row INSERT
 * that is megabytes of activity data, which would end up in every log line that prints the cause.
 */
function shortenStatement(error: unknown): void {
  const withSql = error as { sql?: unknown } | null;
  if (typeof withSql?.sql === 'string' && withSql.sql.length > STATEMENT_PREVIEW_CHARS) {
    withSql.sql = `${withSql.sql.slice(0, STATEMENT_PREVIEW_CHARS)}… (${withSql.sql.length} characters)`;
  }
}
