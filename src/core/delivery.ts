import type { Activity } from './activity.js';
import type { ActivityEventBus } from './activity-events.js';

/** How an activity gets from `log()` to its sink: `sync`, `batch` or `queue`. */
export interface Delivery {
  readonly method: 'sync' | 'batch' | 'queue';
  /** Where it reports `accepted` (the composition's bus, or its own). */
  readonly bus: ActivityEventBus;
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
  /**
   * Of those, the ones held in memory only (a journaled delivery's are on disk); default
   * `pending()`. Monitoring shows them as buffered.
   */
  buffered?(): number;
  /** Writes everything pending now. */
  flush(): Promise<void>;
  /** Flushes, then releases the sink. */
  close(): Promise<void>;
}
