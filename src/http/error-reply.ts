import { ActivityLogError, type ErrorCode, httpStatusOf } from '../core/errors.js';

/** The one error shape every route answers with. */
export interface ErrorBody {
  readonly success: false;
  readonly error: {
    readonly code: ErrorCode;
    readonly message: string;
    readonly details?: unknown;
  };
}

export interface ErrorReply {
  readonly statusCode: number;
  readonly body: ErrorBody;
  /** False for errors the client caused; true when the server log should carry the stack. */
  readonly unexpected: boolean;
}

/** 503s that say how the server is set up or what it is doing, not that something broke. */
const EXPECTED_UNAVAILABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'AUTH_TOKEN_NOT_CONFIGURED',
  'SERVER_CLOSING',
]);

interface FrameworkError {
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly message: string;
}

/**
 * Maps anything a route or Fastify threw to a status and the `{ success: false, error }` body.
 * Validation errors arrive with HTTP field names already (see `withSnakeField`).
 *
 * @example
 * const { statusCode, body } = errorReply(error);
 * reply.code(statusCode).send(body);
 */
export function errorReply(error: unknown, bodyLimitBytes?: number): ErrorReply {
  if (error instanceof ActivityLogError) return libraryErrorReply(error);
  if (!(error instanceof Error)) return internal();
  const { code, statusCode } = error as FrameworkError;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return reply(413, 'BODY_TOO_LARGE', tooLargeMessage(bodyLimitBytes), {
        limit_bytes: bodyLimitBytes,
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return reply(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        'the body must be JSON: send it with "Content-Type: application/json"',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return validation('body', 'body is empty: send one activity object or an array of them');
    case 'FST_ERR_BAD_URL':
      return validation('url', `the URL's path is not valid percent-encoding: ${error.message}`);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return validation('content-length', 'the body is not as long as the Content-Length header says');
  }
  if (statusCode === 400 && (error instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY')) {
    return validation('body', `body is not valid JSON: ${error.message}`);
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    return reply(statusCode, statusCode === 404 ? 'NOT_FOUND' : 'VALIDATION_FAILED', error.message);
  }
  return internal();
}

/** Node's codes for a header the reply could not be written with (a value outside Latin-1, a bad name). */
const HEADER_WRITE_CODES: ReadonlySet<unknown> = new Set([
  'ERR_INVALID_CHAR',
  'ERR_HTTP_INVALID_HEADER_VALUE',
  'ERR_INVALID_HTTP_TOKEN',
]);

/** Whether the error is the reply's own headers failing to be written: they must go before the error is sent. */
export function isHeaderWriteError(error: unknown): boolean {
  return error instanceof Error && HEADER_WRITE_CODES.has((error as FrameworkError).code);
}

export interface ParserError {
  readonly code?: unknown;
  /** Node's description of what the HTTP parser refused, e.g. "Invalid header token". */
  readonly reason?: unknown;
}

/**
 * The answer to a request Node's HTTP parser refused before any route saw it: malformed request
 * line or headers (400), headers over Node's limit (431), a request that did not arrive in time (408).
 */
export function clientErrorReply(
  error: ParserError,
  limits: { readonly maxHeaderBytes: number; readonly requestTimeoutMs: number },
): ErrorReply {
  const code = typeof error.code === 'string' ? error.code : '';
  const reason = typeof error.reason === 'string' ? error.reason : 'malformed request';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return reply(
      408,
      'REQUEST_TIMEOUT',
      `the request did not arrive in full within ${limits.requestTimeoutMs / 1000} s`,
    );
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    return reply(
      431,
      'HEADERS_TOO_LARGE',
      `the request headers are larger than ${limits.maxHeaderBytes} bytes: send fewer or shorter ones (cookies count)`,
      { field: 'headers', limit_bytes: limits.maxHeaderBytes },
    );
  }
  if (code.startsWith('HPE_') && code.includes('HEADER')) {
    return validation('headers', `a request header is malformed: ${reason}`);
  }
  return validation('request', `the request is not valid HTTP/1.1: ${reason}`);
}

function libraryErrorReply(error: ActivityLogError): ErrorReply {
  const statusCode = httpStatusOf(error.code);
  if (statusCode === 500) return internal();
  if (error.code !== 'VALIDATION_FAILED') return reply(statusCode, error.code, error.message, error.details);
  const extra = isPlainObject(error.details) ? error.details : {};
  return validation(error.field ?? 'body', error.message, extra);
}

function tooLargeMessage(bodyLimitBytes: number | undefined): string {
  const limit = bodyLimitBytes === undefined ? 'the limit' : `${bodyLimitBytes} bytes`;
  return `the body is larger than ${limit}: send the activities in smaller arrays`;
}

function validation(
  field: string,
  message: string,
  extra: Readonly<Record<string, unknown>> = {},
): ErrorReply {
  return reply(400, 'VALIDATION_FAILED', message, { ...extra, field });
}

function internal(): ErrorReply {
  return {
    statusCode: 500,
    body: {
      success: false,
      error: { code: 'INTERNAL_ERROR', message: 'unexpected server error; the server log has the details' },
    },
    unexpected: true,
  };
}

function reply(statusCode: number, code: ErrorCode, message: string, details?: unknown): ErrorReply {
  return {
    statusCode,
    body: {
      success: false,
      error: details === undefined ? { code, message } : { code, message, details },
    },
    unexpected: statusCode >= 500 && !EXPECTED_UNAVAILABLE.has(code),
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
