/**
 * What an error code says about the failure, which decides how the library reacts to it:
 * - `data`: the activities or the payload are at fault; the same data fails the same way, so it
 *   is set aside (refused, or its job failed) and never counts against a destination's health.
 * - `outage`: the activity store is down or overwhelmed, or the breaker in front of it refused or
 *   timed out the write; the same write succeeds later unchanged, so a queue worker hands its
 *   jobs back without using a try.
 * - `usage`: the caller, the set-up or the request is wrong (a flag, a token, a route, a missing
 *   table, a call after `close()`); fixing that is the way out.
 * - `internal`: anything else that failed on this side (a database error that cannot be placed,
 *   a lock timeout, Redis, the spool's disk, a bug); a job that meets it uses one of its tries.
 */
export type ErrorKind = 'data' | 'outage' | 'usage' | 'internal';

/** One entry of {@link ERROR_CATALOGUE}. */
export interface ErrorMeaning {
  readonly kind: ErrorKind;
  /** The status an HTTP route answers with; a 500 is answered as `INTERNAL_ERROR`. */
  readonly httpStatus: number;
  /** What the code means, as the README documents it. */
  readonly message: string;
}

/**
 * Every error this library raises is an {@link ActivityLogError} with a stable `code`. The
 * catalogue below is the single list of codes and of what each means; the README documents each
 * one (a unit test keeps the two in step). A new code cannot go without a kind and a status: the
 * compiler asks for both here.
 *
 * HTTP statuses: 400 when the request is wrong and retrying it cannot help (a value that passed
 * the documented limits and still did not fit its column included), 503 when trying again later
 * may, 500 for a fault in the server, whose message stays in the server log.
 */
export const ERROR_CATALOGUE = {
  CONFIG_INVALID: {
    kind: 'usage',
    httpStatus: 500,
    message: 'A configuration variable has a value that is not allowed.',
  },
  VALIDATION_FAILED: {
    kind: 'data',
    httpStatus: 400,
    message: 'An activity or request field is missing, of the wrong type or too long.',
  },
  STORE_CONNECTION_REFUSED: {
    kind: 'outage',
    httpStatus: 503,
    message: 'The database refused the connection or is not reachable.',
  },
  STORE_TIMEOUT: {
    kind: 'outage',
    httpStatus: 503,
    message: 'A database connect or query took longer than its timeout.',
  },
  STORE_POOL_EXHAUSTED: {
    kind: 'outage',
    httpStatus: 503,
    message: 'No database connection became free in time.',
  },
  STORE_LOCK_TIMEOUT: {
    kind: 'internal',
    httpStatus: 503,
    message: 'The database gave up waiting for a lock or chose this statement as a deadlock victim.',
  },
  STORE_DATA_TOO_LONG: {
    kind: 'data',
    httpStatus: 400,
    message: 'A value did not fit its column.',
  },
  STORE_DATA_INVALID: {
    kind: 'data',
    httpStatus: 400,
    message:
      'The database rejected a value it cannot store (e.g. a NUL character in PostgreSQL text); retrying will not help.',
  },
  STORE_SCHEMA_MISSING: {
    kind: 'usage',
    httpStatus: 503,
    message: 'The activity table does not exist: run `activity-log migrate`.',
  },
  STORE_FAILED: {
    kind: 'internal',
    httpStatus: 503,
    message: 'The database reported an error.',
  },
  STORE_CLOSED: {
    kind: 'usage',
    httpStatus: 503,
    message: 'The store was used after close().',
  },
  DELIVERY_CLOSED: {
    kind: 'usage',
    httpStatus: 503,
    message: 'The activity log was used after close().',
  },
  AUTH_TOKEN_NOT_CONFIGURED: {
    kind: 'usage',
    httpStatus: 503,
    message: 'The token variable guarding this route is not set.',
  },
  AUTH_REQUIRED: {
    kind: 'usage',
    httpStatus: 401,
    message: 'The request carries no or a wrong token.',
  },
  AUTH_THROTTLED: {
    kind: 'usage',
    httpStatus: 429,
    message: 'Too many wrong tokens came from this address; wait and try again.',
  },
  CSRF_REJECTED: {
    kind: 'usage',
    httpStatus: 403,
    message:
      'A state-changing backoffice request came from another site or without the CSRF token of its session.',
  },
  NOT_FOUND: {
    kind: 'usage',
    httpStatus: 404,
    message: 'No such route or record.',
  },
  BODY_TOO_LARGE: {
    kind: 'usage',
    httpStatus: 413,
    message: 'The request body is larger than allowed.',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    kind: 'usage',
    httpStatus: 415,
    message: 'The request body is not JSON: send it with `Content-Type: application/json`.',
  },
  REQUEST_TIMEOUT: {
    kind: 'usage',
    httpStatus: 408,
    message: 'The request (headers and body) did not arrive in full within the time allowed.',
  },
  HEADERS_TOO_LARGE: {
    kind: 'usage',
    httpStatus: 431,
    message: 'The request headers are larger than the server accepts.',
  },
  SERVER_CLOSING: {
    kind: 'internal',
    httpStatus: 503,
    message: 'The server is shutting down and takes no new requests; send the request again.',
  },
  INTERNAL_ERROR: {
    kind: 'internal',
    httpStatus: 500,
    message: 'An unexpected error in the server; its log has the details.',
  },
  CLI_USAGE: {
    kind: 'usage',
    httpStatus: 400,
    message: 'A command-line flag or argument has a value that is not allowed.',
  },
  QUEUE_UNAVAILABLE: {
    kind: 'internal',
    httpStatus: 503,
    message: 'Redis (the queue backend) is not reachable or did not answer in time.',
  },
  QUEUE_JOB_INVALID: {
    kind: 'data',
    httpStatus: 500,
    message: 'A queue job does not carry activities in the format this library writes.',
  },
  QUEUE_JOB_TIMEOUT: {
    kind: 'internal',
    httpStatus: 503,
    message: "Storing a queue job took longer than the worker's --timeout.",
  },
  BREAKER_OPEN: {
    kind: 'outage',
    httpStatus: 503,
    message:
      'The circuit breaker is open after repeated write failures: writes are refused until a probe succeeds, and activities go to the spool meanwhile.',
  },
  WRITE_TIMEOUT: {
    kind: 'outage',
    httpStatus: 503,
    message:
      'A write took longer than its timeout (DB_QUERY_TIMEOUT_MS for the store); the circuit breaker counts it as a failure.',
  },
  WRITE_SLOW: {
    kind: 'internal',
    httpStatus: 503,
    message:
      'A write has not answered within ACTIVITY_LOG_SLOW_WRITE_MS: its activities were spooled, and the circuit breaker counts it as a failure.',
  },
  SPOOL_FAILED: {
    kind: 'internal',
    httpStatus: 503,
    message:
      'The local spool could not be written or read (ACTIVITY_LOG_SPOOL_DIR missing, not writable, or the disk is full).',
  },
  MONITORING_UNAVAILABLE: {
    kind: 'internal',
    httpStatus: 503,
    message:
      'No performance figures could be read: Redis is not reachable, or no `serve` answered at the URL given to `status`.',
  },
  SPOOL_FULL: {
    kind: 'internal',
    httpStatus: 503,
    message:
      'The spool holds ACTIVITY_LOG_SPOOL_MAX_MB already; activities past that are dropped and counted.',
  },
  TRANSACTION_SETTLED: {
    kind: 'usage',
    httpStatus: 500,
    message:
      'Activities were logged into a transaction (after-commit list) that had already committed or rolled back.',
  },
  CAPTURE_SOURCE_UNSUITABLE: {
    kind: 'usage',
    httpStatus: 500,
    message:
      'The change-capture source cannot be read as configured: a server setting (wal_level, binlog_format, binlog_row_image), a missing slot, publication or privilege; the message names it.',
  },
  CAPTURE_STREAM_FAILED: {
    kind: 'internal',
    httpStatus: 503,
    message:
      'The change stream of the capture source broke off or could not be decoded; `activity-log capture` resumes from the last durable position when started again.',
  },
  CHECKPOINT_INVALID: {
    kind: 'data',
    httpStatus: 400,
    message:
      'A checkpoint file cannot be read, is not JSON, or is not a checkpoint in the format this library writes.',
  },
  ACTIVITY_NOT_SEALED: {
    kind: 'usage',
    httpStatus: 409,
    message:
      'The activity is not covered by a seal (stored while ACTIVITY_LOG_SEAL was off): there is no inclusion proof to give; `activity-log seal --backfill` seals it.',
  },
  PROOF_UNAVAILABLE: {
    kind: 'data',
    httpStatus: 409,
    message:
      "The activity's inclusion proof cannot be made from what the database holds: the seal it claims is missing, or its values or seal columns cannot be read (`activity-log verify` names the damage).",
  },
} as const satisfies Readonly<Record<string, ErrorMeaning>>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/**
 * Each code's meaning as one sentence (what `/health` says about a failing part).
 *
 * @example
 * console.log(ERROR_CODES.STORE_SCHEMA_MISSING); // 'The activity table does not exist: …'
 */
export const ERROR_CODES: Readonly<Record<ErrorCode, string>> = Object.freeze(
  Object.fromEntries(
    Object.entries(ERROR_CATALOGUE).map(([code, meaning]) => [code, meaning.message]),
  ) as Record<ErrorCode, string>,
);

/** What a code says about the failure (see {@link ErrorKind}). */
export function errorKind(code: ErrorCode): ErrorKind {
  return ERROR_CATALOGUE[code].kind;
}

/** The HTTP status a route answers an error with this code with. */
export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].httpStatus;
}

/**
 * Whether `error` is an {@link ActivityLogError} whose code is of `kind`.
 *
 * @example
 * if (isErrorOfKind(error, 'outage')) await handBack(jobs);
 */
export function isErrorOfKind(error: unknown, kind: ErrorKind): error is ActivityLogError {
  return isActivityLogError(error) && ERROR_CATALOGUE[error.code].kind === kind;
}

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
