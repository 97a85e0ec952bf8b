import { ActivityLogError } from '../core/errors.js';
import type { SpoolReason } from './resilient-sink-events.js';
import { messageOf } from './spool-error.js';

/**
 * The `SPOOL_FAILED` error of a `ResilientSink` whose batch reached neither the destination nor
 * the spool; `cause` is why it went to the spool, if an error said so.
 */
export function spoolFailedError(
  sink: string,
  count: number,
  reason: SpoolReason,
  cause: unknown,
  spoolError: unknown,
): ActivityLogError {
  return new ActivityLogError(
    'SPOOL_FAILED',
    `${count} activities could not be written to the ${sink} (${spoolReasonText(reason, cause)}) nor kept in the spool: ${messageOf(spoolError)}`,
    { cause: spoolError, details: { writeError: cause } },
  );
}

/** The `SPOOL_FULL` error a caller waiting on a write (sync) gets when the spool could not keep it. */
export function spoolFullError(
  sink: string,
  dropped: number,
  spoolDir: string,
  cause: unknown,
): ActivityLogError {
  return new ActivityLogError(
    'SPOOL_FULL',
    `${dropped} activities could not be written to the ${sink} and the spool at ${spoolDir} is full (ACTIVITY_LOG_SPOOL_MAX_MB)`,
    { cause, details: { dropped } },
  );
}

function spoolReasonText(reason: SpoolReason, cause: unknown): string {
  if (cause !== undefined) return messageOf(cause);
  switch (reason) {
    case 'backlog':
      return 'it is slower than the activities coming in';
    case 'slow_write':
      return 'a write to it is still unanswered';
    default:
      return 'its circuit breaker is open';
  }
}
