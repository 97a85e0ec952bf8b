import { EventEmitter } from 'node:events';
import type { Activity } from './activity.js';

/** Why activities went to the spool instead of their destination. */
export type SpoolReason = 'breaker_open' | 'write_failed' | 'backlog' | 'slow_write';

/** A circuit breaker's state. */
export type BreakerState = 'closed' | 'open' | 'half_open';

/** Where a write takes activities: the database, or the queue a worker stores them from. */
export type Destination = 'store' | 'queue';

/** Who wrote: the application's delivery, or a queue worker. */
export type Writer = 'app' | 'worker';

/** Activities confirmed at their destination. */
export interface StoredEvent {
  /** The sink or worker that wrote them (`store`, `queue`, `worker`…). */
  readonly sink: string;
  readonly destination: Destination;
  readonly by: Writer;
  readonly count: number;
  readonly durationMs: number;
  /** Written from the spool, after a failed or refused first attempt (or from a disk journal). */
  readonly replayed: boolean;
  /** The activities written (their `createdAt` gives the lag from `log()` to the write). */
  readonly activities: readonly Activity[];
}

/** A write attempt that failed. */
export interface WriteFailedEvent {
  readonly sink: string;
  readonly destination: Destination;
  readonly by: Writer;
  readonly count: number;
  readonly error: unknown;
  /** The activities are kept for another attempt (the spool, a job retry, the queue's head). */
  readonly willRetry: boolean;
  /** Queue jobs given up on by this failure (moved to the failed set); 0 for the application. */
  readonly failedJobs: number;
}

/**
 * The facts of an activity's way from `log()` to its destination, each emitted once, by the
 * component that knows it:
 *
 * | event          | emitted by                                     |
 * | -------------- | ---------------------------------------------- |
 * | `accepted`     | the delivery, as `log()` hands an activity over |
 * | `stored`       | the resilient sink (live or replayed), the worker |
 * | `spooled`      | the resilient sink, with the reason            |
 * | `dropped`      | the spool, when it is full                     |
 * | `rejected`     | the spool, setting aside what the destination refused as data |
 * | `writeFailed`  | the resilient sink, the worker                 |
 * | `breakerState` | each circuit breaker                           |
 *
 * Components keep their own emitters for what only they speak of (a worker's stop summary, a
 * spool segment claimed); metrics and alerts listen here.
 */
export interface ActivityEvents {
  accepted: [activity: Activity];
  stored: [event: StoredEvent];
  spooled: [event: { readonly sink: string; readonly count: number; readonly reason: SpoolReason }];
  /** Activities that did not fit in the spool (`ACTIVITY_LOG_SPOOL_MAX_MB`); they are lost. */
  dropped: [event: { readonly count: number; readonly totalBytes: number; readonly maxBytes: number }];
  /** Activities the destination refused as data, kept in the spool's `rejected.ndjson`. */
  rejected: [event: { readonly count: number; readonly error: unknown }];
  writeFailed: [event: WriteFailedEvent];
  breakerState: [event: { readonly breaker: string; readonly from: BreakerState; readonly to: BreakerState }];
}

/**
 * The one bus of a composed activity log: `composeActivityLog` makes it and hands it to every
 * part it builds; a part built on its own makes a private one.
 *
 * @example
 * const { events } = composeActivityLog();
 * events.on('spooled', ({ count, reason }) => metrics.spooled.inc({ reason }, count));
 */
export type ActivityEventBus = EventEmitter<ActivityEvents>;

/** A new, empty bus. */
export function createActivityEventBus(): ActivityEventBus {
  return new EventEmitter<ActivityEvents>();
}
