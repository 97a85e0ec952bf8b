export type { SpoolReason } from '../core/activity-events.js';

import type { SpoolReason } from '../core/activity-events.js';

/**
 * What only a `ResilientSink` speaks of; the facts metrics count (`stored`, `writeFailed`,
 * `spooled`) are on its `bus`, and the breaker's and the spool's own events on `breaker.events`
 * and `spool.events`.
 */
export interface ResilientSinkEvents {
  /** A replay pass stopped on something other than the destination (the spool could not be read). */
  replayFailed: [event: { readonly sink: string; readonly error: unknown }];
  /** Activities started going to the spool instead of the destination (the first since it was empty). */
  spoolingStarted: [event: { readonly sink: string; readonly reason: SpoolReason; readonly error?: unknown }];
  /**
   * The destination (the queue) lost what a replayed segment gave it before storing it, e.g.
   * Redis restarted without persistence; the segment is written again from the spool.
   */
  lost: [event: { readonly sink: string; readonly segment: string }];
  /** The spool has been replayed empty: every activity this process spooled is at the destination. */
  spoolingStopped: [event: { readonly sink: string; readonly replayed: number }];
}
