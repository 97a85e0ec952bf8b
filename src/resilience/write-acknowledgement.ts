import type { Activity } from '../core/activity.js';

/**
 * What the destination says of a write it took: stored at last; failed there for good (a queue
 * job in the failed set, kept by the destination); still on its way; or gone.
 */
export type WriteFate = 'stored' | 'failed' | 'pending' | 'lost';

/**
 * How a destination that stores later (the queue) confirms what it was given (see
 * `ResilientSinkOptions.acknowledgement`).
 */
export interface WriteAcknowledgement {
  /** The keys (queue job ids) a write of `activities` is known by. */
  keysOf(activities: readonly Activity[]): readonly string[];
  /** The fate of each key; rejects when the destination cannot be asked now. */
  check(keys: readonly string[]): Promise<ReadonlyMap<string, WriteFate>>;
}
