import type { Activity } from '../core/activity.js';
import type { BreakerState } from './breaker.js';

/** Why activities went to the spool. */
export type SpoolReason = 'breaker_open' | 'write_failed' | 'backlog' | 'slow_write';

/**
 * The typed events of a `ResilientSink`, for metrics and alerts; the breaker's and the spool's own
 * events are on `breaker.events` and `spool.events`.
 */
export interface ResilientSinkEvents {
  /** Activities confirmed written to the destination, live or replayed from the spool. */
  stored: [
    event: {
      readonly sink: string;
      readonly count: number;
      readonly durationMs: number;
      readonly replayed: boolean;
      readonly activities: readonly Activity[];
    },
  ];
  /** A write to the destination failed (its activities were then spooled). */
  writeFailed: [
    event: {
      readonly sink: string;
      readonly count: number;
      readonly error: unknown;
      readonly breaker: BreakerState;
    },
  ];
  /** Activities made durable in the spool instead of the destination. */
  spooled: [
    event: {
      readonly sink: string;
      readonly count: number;
      readonly dropped: number;
      readonly reason: SpoolReason;
    },
  ];
  /** A replay pass stopped on something other than the destination (the spool could not be read). */
  replayFailed: [event: { readonly sink: string; readonly error: unknown }];
  /** The destination refused activities as bad data; they were set aside in `rejected.ndjson`. */
  refused: [event: { readonly sink: string; readonly count: number; readonly error: unknown }];
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
