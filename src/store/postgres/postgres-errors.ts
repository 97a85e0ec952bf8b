import { ActivityLogError, type ErrorCode } from '../../core/errors.js';
import { driverErrorFields, mappedStoreError, UNREACHABLE_CODES } from '../driver-error.js';

/** SQLSTATE codes with a meaning of their own; whole classes are handled below. */
const SQLSTATES: ReadonlyMap<string, ErrorCode> = new Map<string, ErrorCode>([
  ['28000', 'STORE_CONNECTION_REFUSED'], // invalid_authorization_specification
  ['28P01', 'STORE_CONNECTION_REFUSED'], // invalid_password
  ['3D000', 'STORE_CONNECTION_REFUSED'], // invalid_catalog_name: the database does not exist
  ['53300', 'STORE_CONNECTION_REFUSED'], // too_many_connections
  ['57P01', 'STORE_CONNECTION_REFUSED'], // admin_shutdown
  ['57P02', 'STORE_CONNECTION_REFUSED'], // crash_shutdown
  ['57P03', 'STORE_CONNECTION_REFUSED'], // cannot_connect_now
  ['57014', 'STORE_TIMEOUT'], // query_canceled (statement_timeout)
  ['40P01', 'STORE_LOCK_TIMEOUT'], // deadlock_detected
  ['55P03', 'STORE_LOCK_TIMEOUT'], // lock_not_available
  ['40001', 'STORE_LOCK_TIMEOUT'], // serialization_failure
  ['22001', 'STORE_DATA_TOO_LONG'], // string_data_right_truncation
  ['54000', 'STORE_DATA_TOO_LONG'], // program_limit_exceeded (e.g. an index row too large)
  ['42P01', 'STORE_SCHEMA_MISSING'], // undefined_table
  ['42703', 'STORE_SCHEMA_MISSING'], // undefined_column
  ['3F000', 'STORE_SCHEMA_MISSING'], // invalid_schema_name
  ['23502', 'STORE_DATA_INVALID'], // not_null_violation
  ['23514', 'STORE_DATA_INVALID'], // check_violation
  ['P0001', 'STORE_DATA_INVALID'], // raise_exception: a trigger refused the row
]);

/** pg's client-side `query_timeout`. */
const QUERY_READ_TIMEOUT = 'Query read timeout';

/** pg and pg-pool raise these without a code. */
const CLIENT_MESSAGES: ReadonlyMap<string, ErrorCode> = new Map<string, ErrorCode>([
  // pg-pool says this only when every connection is checked out and the wait ran out.
  ['timeout exceeded when trying to connect', 'STORE_POOL_EXHAUSTED'],
  ['Connection terminated due to connection timeout', 'STORE_TIMEOUT'],
  [QUERY_READ_TIMEOUT, 'STORE_TIMEOUT'],
  ['Connection terminated unexpectedly', 'STORE_CONNECTION_REFUSED'],
  ['Connection terminated', 'STORE_CONNECTION_REFUSED'],
  // DB_SSL_MODE=require|verify-full against a server without TLS.
  ['The server does not support SSL connections', 'STORE_CONNECTION_REFUSED'],
  ['Cannot use a pool after calling end on the pool', 'STORE_CLOSED'],
  ['Client was closed and is not queryable', 'STORE_CLOSED'],
  ['driver has already been destroyed', 'STORE_CLOSED'],
]);

/**
 * Maps a pg error to the library's coded error. `server` names the database in messages
 * (host, port and database, never the password).
 */
export function mapPostgresError(error: unknown, server: string): ActivityLogError {
  if (error instanceof ActivityLogError) return error;
  const { code, message } = driverErrorFields(error);
  const mapped =
    SQLSTATES.get(code) ??
    CLIENT_MESSAGES.get(message) ??
    (UNREACHABLE_CODES.has(code) ? 'STORE_CONNECTION_REFUSED' : undefined) ??
    (code === 'ETIMEDOUT' ? 'STORE_TIMEOUT' : undefined) ??
    byClass(code);
  return mappedStoreError(mapped, server, code === '' ? message : `${message} (${code})`, error);
}

/** pg's own query timeout: it keeps waiting for that query's answer on the connection. */
export function isPostgresQueryTimeout(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as Error).message === QUERY_READ_TIMEOUT;
}

function byClass(sqlstate: string): ErrorCode {
  if (sqlstate.length !== 5) return 'STORE_FAILED';
  switch (sqlstate.slice(0, 2)) {
    case '08': // connection_exception
      return 'STORE_CONNECTION_REFUSED';
    case '22': // data_exception: bad encoding, NUL in text, invalid JSON, out-of-range values
      return 'STORE_DATA_INVALID';
    default:
      return 'STORE_FAILED';
  }
}
