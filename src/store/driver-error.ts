import { ActivityLogError, type ErrorCode } from '../core/errors.js';

/** The fields the error mappers look at; drivers put them on plain Error objects. */
export interface DriverErrorFields {
  readonly code: string;
  readonly errno: number | undefined;
  readonly message: string;
}

/** Reads the fields defensively: anything can be thrown, and not every driver error has every field. */
export function driverErrorFields(error: unknown): DriverErrorFields {
  const candidate = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown;
    errno?: unknown;
    message?: unknown;
  };
  return {
    code: typeof candidate.code === 'string' ? candidate.code : '',
    errno: typeof candidate.errno === 'number' ? candidate.errno : undefined,
    message: typeof candidate.message === 'string' ? candidate.message : String(error),
  };
}

/** Socket-level failures every network driver reports with Node's own codes. */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EAI_AGAIN',
  'EPIPE',
]);

/**
 * A mapped driver error with a message that says what to do. `server` names the database
 * (host, port and database, or the SQLite file; never a password); `reason` is the driver's text.
 */
export function mappedStoreError(
  code: ErrorCode,
  server: string,
  reason: string,
  cause: unknown,
): ActivityLogError {
  return new ActivityLogError(code, `${server} ${explain(code, reason)}`, { cause });
}

function explain(code: ErrorCode, reason: string): string {
  switch (code) {
    case 'STORE_CONNECTION_REFUSED':
      return `refused or dropped the connection: ${reason}. Check that it is running and reachable and that DATABASE_URL (or DB_*) is right`;
    case 'STORE_TIMEOUT':
      return `did not answer in time: ${reason}. Check the server's load, or raise DB_CONNECT_TIMEOUT_MS / DB_QUERY_TIMEOUT_MS`;
    case 'STORE_POOL_EXHAUSTED':
      return `had no free connection in time: ${reason}. Raise DB_POOL_MAX or reduce concurrent callers`;
    case 'STORE_LOCK_TIMEOUT':
      return `gave up waiting for a lock: ${reason}. Retrying is safe (inserts are idempotent)`;
    case 'STORE_DATA_TOO_LONG':
      return `rejected a value as too long for its column: ${reason}`;
    case 'STORE_SCHEMA_MISSING':
      return `has no activity table, or an older one: ${reason}. Run \`activity-log migrate\``;
    case 'STORE_DATA_INVALID':
      return `rejected a value it cannot store: ${reason}`;
    case 'STORE_CLOSED':
      return `connection pool was already closed: ${reason}. Create a new store`;
    default:
      return `reported an error: ${reason}`;
  }
}
