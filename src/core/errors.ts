/**
 * Every error this library raises is an {@link ActivityLogError} with a stable `code`.
 * The catalogue below is the single list of codes; the README documents each one
 * (a unit test keeps the two in step).
 */
export const ERROR_CODES = {
  CONFIG_INVALID: 'A configuration variable has a value that is not allowed.',
  VALIDATION_FAILED: 'An activity or request field is missing, of the wrong type or too long.',
  STORE_CONNECTION_REFUSED: 'The database refused the connection or is not reachable.',
  STORE_TIMEOUT: 'A database connect or query took longer than its timeout.',
  STORE_POOL_EXHAUSTED: 'No database connection became free in time.',
  STORE_LOCK_TIMEOUT: 'The database gave up waiting for a lock or chose this statement as a deadlock victim.',
  STORE_DATA_TOO_LONG: 'A value did not fit its column.',
  STORE_DATA_INVALID:
    'The database rejected a value it cannot store (e.g. a NUL character in PostgreSQL text); retrying will not help.',
  STORE_SCHEMA_MISSING: 'The activity table does not exist: run `activity-log migrate`.',
  STORE_FAILED: 'The database reported an error.',
  STORE_CLOSED: 'The store was used after close().',
  DELIVERY_CLOSED: 'The activity log was used after close().',
  AUTH_TOKEN_NOT_CONFIGURED: 'The token variable guarding this route is not set.',
  AUTH_REQUIRED: 'The request carries no or a wrong token.',
  AUTH_THROTTLED: 'Too many wrong tokens came from this address; wait and try again.',
  CSRF_REJECTED:
    'A state-changing backoffice request came from another site or without the CSRF token of its session.',
  NOT_FOUND: 'No such route or record.',
  BODY_TOO_LARGE: 'The request body is larger than allowed.',
  UNSUPPORTED_MEDIA_TYPE: 'The request body is not JSON: send it with `Content-Type: application/json`.',
  REQUEST_TIMEOUT: 'The request (headers and body) did not arrive in full within the time allowed.',
  HEADERS_TOO_LARGE: 'The request headers are larger than the server accepts.',
  SERVER_CLOSING: 'The server is shutting down and takes no new requests; send the request again.',
  INTERNAL_ERROR: 'An unexpected error in the server; its log has the details.',
  CLI_USAGE: 'A command-line flag or argument has a value that is not allowed.',
  QUEUE_UNAVAILABLE: 'Redis (the queue backend) is not reachable or did not answer in time.',
  QUEUE_JOB_INVALID: 'A queue job does not carry activities in the format this library writes.',
  QUEUE_JOB_TIMEOUT: "Storing a queue job took longer than the worker's --timeout.",
  BREAKER_OPEN:
    'The circuit breaker is open after repeated write failures: writes are refused until a probe succeeds, and activities go to the spool meanwhile.',
  WRITE_TIMEOUT:
    'A write took longer than its timeout (DB_QUERY_TIMEOUT_MS for the store); the circuit breaker counts it as a failure.',
  WRITE_SLOW:
    'A write has not answered within ACTIVITY_LOG_SLOW_WRITE_MS: its activities were spooled, and the circuit breaker counts it as a failure.',
  SPOOL_FAILED:
    'The local spool could not be written or read (ACTIVITY_LOG_SPOOL_DIR missing, not writable, or the disk is full).',
  MONITORING_UNAVAILABLE:
    'No performance figures could be read: Redis is not reachable, or no `serve` answered at the URL given to `status`.',
  SPOOL_FULL:
    'The spool holds ACTIVITY_LOG_SPOOL_MAX_MB already; activities past that are dropped and counted.',
  TRANSACTION_SETTLED:
    'Activities were logged into a transaction (after-commit list) that had already committed or rolled back.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ActivityLogErrorOptions {
  /** The field, flag or variable at fault, when there is one. */
  readonly field?: string;
  readonly details?: unknown;
  readonly cause?: unknown;
}

/**
 * Base error: a stable `code`, a message that says what to do, and the `cause`.
 *
 * @example
 * try { await activityLog.log({ description: '' }); }
 * catch (error) { if (isActivityLogError(error, 'VALIDATION_FAILED')) console.log(error.field); }
 */
export class ActivityLogError extends Error {
  override readonly name = 'ActivityLogError';
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: ActivityLogErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options.field;
    this.details = options.details;
  }
}

export function isActivityLogError(error: unknown, code?: ErrorCode): error is ActivityLogError {
  return error instanceof ActivityLogError && (code === undefined || error.code === code);
}

/** Store errors that mean "the database is unhealthy, try later" rather than "this data is bad". */
export const TRANSIENT_STORE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'STORE_CONNECTION_REFUSED',
  'STORE_TIMEOUT',
  'STORE_POOL_EXHAUSTED',
  'STORE_LOCK_TIMEOUT',
  'STORE_FAILED',
]);
