import { describe, expect, it } from 'vitest';
import { ActivityLogError } from '../../src/core/errors.js';
import { bearerToken, tokensMatch } from '../../src/http/auth.js';
import { errorReply } from '../../src/http/error-reply.js';
import { parseIsoTimestamp } from '../../src/http/routes/backoffice-activities.js';
import { parseIngestBody } from '../../src/http/routes/ingest.js';
import { snakeField, withSnakeField } from '../../src/http/snake-field.js';

describe('tokens', () => {
  it('matches only the identical token, whatever the lengths', () => {
    expect(tokensMatch('s3cret', 's3cret')).toBe(true);
    expect(tokensMatch('s3cret', 's3cre')).toBe(false);
    expect(tokensMatch('', 's3cret')).toBe(false);
    expect(tokensMatch('s3cret-but-longer', 's3cret')).toBe(false);
  });

  it('reads the bearer token from the Authorization header', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer   abc ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeNull();
    expect(bearerToken('Bearer')).toBeNull();
    expect(bearerToken('Bearer a b')).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });
});

describe('snake_case field names', () => {
  it('maps library fields to the names HTTP clients send', () => {
    expect(snakeField('ipAddress')).toBe('ip_address');
    expect(snakeField('[3].ipAddress')).toBe('[3].ip_address');
    expect(snakeField('subject.type')).toBe('subject_type');
    expect(snakeField('[0].causer.id')).toBe('[0].causer_id');
    expect(snakeField('[2].activity')).toBe('[2]');
    expect(snakeField('activities')).toBe('body');
    expect(snakeField('properties.someKey')).toBe('properties.someKey');
  });

  it('rewrites a wrapped logMany error into one message with the HTTP field', () => {
    const inner = new ActivityLogError('VALIDATION_FAILED', 'ipAddress must be an IPv4 or IPv6 address', {
      field: 'ipAddress',
    });
    const outer = new ActivityLogError('VALIDATION_FAILED', `[3].ipAddress: ${inner.message}`, {
      field: '[3].ipAddress',
      cause: inner,
    });
    const rewritten = withSnakeField(outer) as ActivityLogError;
    expect(rewritten.field).toBe('[3].ip_address');
    expect(rewritten.message).toBe('[3].ip_address must be an IPv4 or IPv6 address');
  });
});

describe('errorReply', () => {
  it('maps codes to statuses, store outages to 503', () => {
    const status = (error: unknown) => errorReply(error).statusCode;
    expect(status(new ActivityLogError('VALIDATION_FAILED', 'x', { field: 'a' }))).toBe(400);
    expect(status(new ActivityLogError('AUTH_REQUIRED', 'x'))).toBe(401);
    expect(status(new ActivityLogError('AUTH_TOKEN_NOT_CONFIGURED', 'x'))).toBe(503);
    expect(status(new ActivityLogError('STORE_TIMEOUT', 'x'))).toBe(503);
    expect(status(new ActivityLogError('STORE_SCHEMA_MISSING', 'x'))).toBe(503);
    expect(status(new ActivityLogError('DELIVERY_CLOSED', 'x'))).toBe(503);
    expect(status(new ActivityLogError('CONFIG_INVALID', 'x'))).toBe(500);
  });

  it('never leaks the message of an unexpected error', () => {
    const reply = errorReply(new Error('password=hunter2 in some driver message'));
    expect(reply.statusCode).toBe(500);
    expect(reply.unexpected).toBe(true);
    expect(JSON.stringify(reply.body)).not.toContain('hunter2');
    expect(reply.body.error.code).toBe('INTERNAL_ERROR');
  });
});

describe('parseIsoTimestamp', () => {
  it('reads dates and times as UTC unless an offset is given', () => {
    expect(parseIsoTimestamp('2025-11-28')?.toISOString()).toBe('2025-11-28T00:00:00.000Z');
    expect(parseIsoTimestamp('2025-11-28T09:30')?.toISOString()).toBe('2025-11-28T09:30:00.000Z');
    expect(parseIsoTimestamp('2025-11-28T09:30:00.123Z')?.toISOString()).toBe('2025-11-28T09:30:00.123Z');
    expect(parseIsoTimestamp('2025-11-28T09:30:00+02:00')?.toISOString()).toBe('2025-11-28T07:30:00.000Z');
    // `+` in a query string decodes to a space.
    expect(parseIsoTimestamp('2025-11-28T09:30:00 02:00')?.toISOString()).toBe('2025-11-28T07:30:00.000Z');
  });

  it('rejects what is not ISO-8601', () => {
    for (const value of [
      'yesterday',
      '1700000000000',
      '28/11/2025',
      '2025-13-01',
      '2025-11-28T25:00',
      '2025-02-30',
      '2025-02-29T10:00:00Z',
    ]) {
      expect(parseIsoTimestamp(value), value).toBeNull();
    }
  });
});

describe('parseIngestBody', () => {
  it('lists every problem and names the first, unknown fields first', () => {
    let error: ActivityLogError | undefined;
    try {
      parseIngestBody([{ description: 1, colour: 'red' }]);
    } catch (caught) {
      error = caught as ActivityLogError;
    }
    expect(error?.field).toBe('[0].colour');
    expect(error?.details).toEqual({
      issues: [
        { field: '[0].colour', message: 'is not a known field' },
        { field: '[0].description', message: 'is required and must be a string' },
      ],
    });
  });
});
