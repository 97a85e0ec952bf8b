import { describe, expect, it } from 'vitest';
import { ActivityLogError } from '../../src/core/errors.js';
import { spoolFailedError, spoolFullError } from '../../src/resilience/resilient-sink-errors.js';

describe('spoolFailedError', () => {
  const diskError = new Error('ENOSPC: no space left on device');

  it('says why the batch went to the spool from the write error, and why the spool failed', () => {
    const writeError = new Error('connect ECONNREFUSED 127.0.0.1:3306');
    const error = spoolFailedError('store', 3, 'write_failed', writeError, diskError);
    expect(error).toBeInstanceOf(ActivityLogError);
    expect(error.code).toBe('SPOOL_FAILED');
    expect(error.message).toBe(
      '3 activities could not be written to the store (connect ECONNREFUSED 127.0.0.1:3306) nor kept in the spool: ENOSPC: no space left on device',
    );
    expect(error.cause).toBe(diskError);
    expect(error.details).toEqual({ writeError });
  });

  it.each([
    ['breaker_open', 'its circuit breaker is open'],
    ['backlog', 'it is slower than the activities coming in'],
    ['slow_write', 'a write to it is still unanswered'],
  ] as const)('without a write error, says the reason %s in words', (reason, words) => {
    const error = spoolFailedError('queue', 1, reason, undefined, 'EIO');
    expect(error.message).toBe(
      `1 activities could not be written to the queue (${words}) nor kept in the spool: EIO`,
    );
    expect(error.details).toEqual({ writeError: undefined });
  });
});

describe('spoolFullError', () => {
  it('names what was dropped, the spool directory and the setting to raise', () => {
    const writeError = new Error('timeout');
    const error = spoolFullError('store', 2, '/var/spool/activity-log', writeError);
    expect(error.code).toBe('SPOOL_FULL');
    expect(error.message).toBe(
      '2 activities could not be written to the store and the spool at /var/spool/activity-log is full (ACTIVITY_LOG_SPOOL_MAX_MB)',
    );
    expect(error.cause).toBe(writeError);
    expect(error.details).toEqual({ dropped: 2 });
  });
});
