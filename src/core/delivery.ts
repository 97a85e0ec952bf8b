import type { EventEmitter } from 'node:events';
import type { Activity } from './activity.js';

/** Typed events every delivery emits. Metrics and alerts subscribe; the hot path never knows. */
export interface DeliveryEvents {
  /** An activity was handed to the delivery method. */
  accepted: [activity: Activity];
  /** A batch reached its sink. */
  written: [event: { sink: string; count: number; durationMs: number; activities: readonly Activity[] }];
  /** A write attempt failed; `willRetry` says whether the activities are still held for another attempt. */
  writeFailed: [event: { sink: string; count: number; error: unknown; attempt: number; willRetry: boolean }];
}

export type DeliveryEmitter = EventEmitter<DeliveryEvents>;

/** How an activity gets from `log()` to its sink: `sync`, `batch` or `queue`. */
export interface Delivery {
  readonly method: 'sync' | 'batch' | 'queue';
  readonly events: DeliveryEmitter;
  /**
   * Hands one activity over. Returns `undefined` when the activity is already in the method's
   * care (a buffer), or a promise when the caller must wait (sync writes).
   */
  deliver(activity: Activity): Promise<void> | undefined;
  /**
   * Hands several activities over as one: a method that writes while the caller waits writes
   * them together, all or none (one `logMany()`, one ingest request). Optional; without it each
   * is handed over with `deliver`.
   */
  deliverMany?(activities: readonly Activity[]): Promise<void> | undefined;
  /** Activities accepted and not yet written. */
  pending(): number;
  /** Writes everything pending now. */
  flush(): Promise<void>;
  /** Flushes, then releases the sink. */
  close(): Promise<void>;
}
