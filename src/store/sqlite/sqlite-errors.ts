import { ActivityLogError, type ErrorCode } from '../../core/errors.js';
import { driverErrorFields, mappedStoreError } from '../driver-error.js';

const MISSING_SCHEMA = /no such table|no such column|has no column named/i;

/** File-system failures while creating the database's directory: the file cannot be reached. */
const UNREACHABLE_FILE_CODES = new Set(['EACCES', 'EPERM', 'ENOENT', 'ENOTDIR', 'EROFS', 'EISDIR']);

/** Maps a better-sqlite3 error to the library's coded error. `server` names the database file. */
export function mapSqliteError(error: unknown, server: string): ActivityLogError {
  if (error instanceof ActivityLogError) return error;
  const { code, message } = driverErrorFields(error);
  const mapped = classify(code, message);
  return mappedStoreError(mapped, server, code === '' ? message : `${message} (${code})`, error);
}

function classify(code: string, message: string): ErrorCode {
  // Extended result codes (SQLITE_BUSY_SNAPSHOT, SQLITE_CANTOPEN_ISDIR…) share their primary prefix.
  const primary = code.match(/^SQLITE_[A-Z]+/)?.[0] ?? '';
  switch (primary) {
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
      return 'STORE_LOCK_TIMEOUT';
    case 'SQLITE_TOOBIG':
      return 'STORE_DATA_TOO_LONG';
    case 'SQLITE_CANTOPEN':
    case 'SQLITE_NOTADB':
    case 'SQLITE_PERM':
    case 'SQLITE_AUTH':
      return 'STORE_CONNECTION_REFUSED';
    case 'SQLITE_MISMATCH':
      return 'STORE_DATA_INVALID';
    case 'SQLITE_CONSTRAINT':
      // A trigger's RAISE(ABORT) refuses the row as a CHECK does.
      return code === 'SQLITE_CONSTRAINT_NOTNULL' ||
        code === 'SQLITE_CONSTRAINT_CHECK' ||
        code === 'SQLITE_CONSTRAINT_TRIGGER'
        ? 'STORE_DATA_INVALID'
        : 'STORE_FAILED';
    case 'SQLITE_ERROR':
      return MISSING_SCHEMA.test(message) ? 'STORE_SCHEMA_MISSING' : 'STORE_FAILED';
    default:
      if (UNREACHABLE_FILE_CODES.has(code)) return 'STORE_CONNECTION_REFUSED';
      return message === 'The database connection is not open' ? 'STORE_CLOSED' : 'STORE_FAILED';
  }
}
