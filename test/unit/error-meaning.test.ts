import { describe, expect, it } from 'vitest';
import {
  ActivityLogError,
  ERROR_CODES,
  type ErrorCode,
  errorKind,
  httpStatusOf,
  isErrorOfKind,
} from '../../src/core/errors.js';
import { errorReply } from '../../src/http/error-reply.js';
import { isDataError } from '../../src/resilience/breaker.js';

/**
 * What each code means to the rest of the library, written out by hand: the HTTP status a route
 * answers with, whether a failure with it leaves the circuit breaker alone (the data is at fault),
 * and whether a queue worker hands its jobs back without using a try (the store is unavailable).
 */
const MEANING: Readonly<Record<ErrorCode, { status: number; data: boolean; outage: boolean }>> = {
  CONFIG_INVALID: { status: 500, data: false, outage: false },
  VALIDATION_FAILED: { status: 400, data: true, outage: false },
  STORE_CONNECTION_REFUSED: { status: 503, data: false, outage: true },
  STORE_TIMEOUT: { status: 503, data: false, outage: true },
  STORE_POOL_EXHAUSTED: { status: 503, data: false, outage: true },
  STORE_LOCK_TIMEOUT: { status: 503, data: false, outage: false },
  STORE_DATA_TOO_LONG: { status: 400, data: true, outage: false },
  STORE_DATA_INVALID: { status: 400, data: true, outage: false },
  STORE_SCHEMA_MISSING: { status: 503, data: false, outage: false },
  STORE_FAILED: { status: 503, data: false, outage: false },
  STORE_CLOSED: { status: 503, data: false, outage: false },
  DELIVERY_CLOSED: { status: 503, data: false, outage: false },
  AUTH_TOKEN_NOT_CONFIGURED: { status: 503, data: false, outage: false },
  AUTH_REQUIRED: { status: 401, data: false, outage: false },
  AUTH_THROTTLED: { status: 429, data: false, outage: false },
  CSRF_REJECTED: { status: 403, data: false, outage: false },
  NOT_FOUND: { status: 404, data: false, outage: false },
  BODY_TOO_LARGE: { status: 413, data: false, outage: false },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, data: false, outage: false },
  REQUEST_TIMEOUT: { status: 408, data: false, outage: false },
  HEADERS_TOO_LARGE: { status: 431, data: false, outage: false },
  SERVER_CLOSING: { status: 503, data: false, outage: false },
  INTERNAL_ERROR: { status: 500, data: false, outage: false },
  CLI_USAGE: { status: 400, data: false, outage: false },
  QUEUE_UNAVAILABLE: { status: 503, data: false, outage: false },
  QUEUE_JOB_INVALID: { status: 500, data: true, outage: false },
  QUEUE_JOB_TIMEOUT: { status: 503, data: false, outage: false },
  BREAKER_OPEN: { status: 503, data: false, outage: true },
  WRITE_TIMEOUT: { status: 503, data: false, outage: true },
  WRITE_SLOW: { status: 503, data: false, outage: false },
  SPOOL_FAILED: { status: 503, data: false, outage: false },
  MONITORING_UNAVAILABLE: { status: 503, data: false, outage: false },
  SPOOL_FULL: { status: 503, data: false, outage: false },
  TRANSACTION_SETTLED: { status: 500, data: false, outage: false },
  CHECKPOINT_INVALID: { status: 400, data: true, outage: false },
  ACTIVITY_NOT_SEALED: { status: 409, data: false, outage: false },
  PROOF_UNAVAILABLE: { status: 409, data: true, outage: false },
  CAPTURE_SOURCE_UNSUITABLE: { status: 500, data: false, outage: false },
  CAPTURE_STREAM_FAILED: { status: 503, data: false, outage: false },
};

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

describe('what an error code means', () => {
  it('lists every code of the catalogue', () => {
    expect(Object.keys(MEANING).sort()).toEqual([...codes].sort());
  });

  it.each(codes)('answers %s over HTTP with its status', (code) => {
    const { statusCode } = errorReply(new ActivityLogError(code, 'message'));
    expect(statusCode).toBe(MEANING[code].status);
  });

  it.each(codes)('lets %s open the circuit breaker unless the data is at fault', (code) => {
    expect(isDataError(new ActivityLogError(code, 'message'))).toBe(MEANING[code].data);
  });

  it.each(codes)('hands queue jobs failing with %s back untried only when the store is out', (code) => {
    expect(isErrorOfKind(new ActivityLogError(code, 'message'), 'outage')).toBe(MEANING[code].outage);
  });

  it.each(codes)('derives all of it from the catalogue entry of %s', (code) => {
    const kind = errorKind(code);
    expect({ status: httpStatusOf(code), data: kind === 'data', outage: kind === 'outage' }).toEqual(
      MEANING[code],
    );
  });

  it('never takes an error without a code for a data error or an outage', () => {
    expect(isErrorOfKind(new Error('STORE_TIMEOUT'), 'outage')).toBe(false);
    expect(isDataError(new Error('STORE_DATA_TOO_LONG'))).toBe(false);
    expect(isDataError({ code: 'VALIDATION_FAILED' })).toBe(false);
  });
});
