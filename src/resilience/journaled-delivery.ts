import type { Activity } from '../core/activity.js';
import type { ActivityEventBus } from '../core/activity-events.js';
import type { Delivery } from '../core/delivery.js';
import { ActivityLogError } from '../core/errors.js';
import type { ResilientSink } from './resilient-sink.js';

export interface JournaledDeliveryOptions {
  /** `batch` writes to the store; `queue` drains into the queue producer. */
  readonly method?: 'batch' | 'queue';
  /** Longest an activity waits in the journal before a drain pass starts (`ACTIVITY_LOG_FLUSH_INTERVAL_MS`). */
  readonly flushIntervalMs: number;
}

/**
 * `batch` (or `queue`) with `ACTIVITY_LOG_DURABILITY=disk`: the spool is the buffer. `log()`
 * appends the activity to the spool and resolves once the group commit holding it is fsync'd —
 * typically a millisecond or two, well within one flush interval — so an activity whose `log()`
 * resolved survives SIGKILL and power loss. A drain pass starts at most `flushIntervalMs` after
 * the first activity of a quiet spell: it seals the segment being written and replays it through
 * the breaker in multi-row writes, deleting each segment once it is stored. While the destination
 * is down nothing changes for the caller; the segments simply wait, and after a crash the next
 * process (or `activity-log spool replay`) replays them.
 *
 * @example
 * const delivery = new JournaledDelivery(createResilientSink(config, createStoreSink(store)), { flushIntervalMs: 50 });
 * await delivery.deliver(activity); // on disk now
 */
export class JournaledDelivery implements Delivery {
  readonly method: 'batch' | 'queue';
  /** The sink's bus: `accepted` here, `stored` and the rest from the sink and its spool. */
  readonly bus: ActivityEventBus;
  readonly sink: ResilientSink;
  readonly #flushIntervalMs: number;
  #appending = 0;
  #closed = false;

  constructor(sink: ResilientSink, options: JournaledDeliveryOptions) {
    this.sink = sink;
    this.method = options.method ?? 'batch';
    this.#flushIntervalMs = options.flushIntervalMs;
    this.bus = sink.bus;
  }

  deliver(activity: Activity): Promise<void> {
    return this.deliverMany([activity]);
  }

  /** Journals the activities together: all of them, or (the spool being full) none. */
  deliverMany(activities: readonly Activity[]): Promise<void> {
    if (this.#closed)
      return Promise.reject(new ActivityLogError('DELIVERY_CLOSED', 'log() was called after close()'));
    if (activities.length === 0) return Promise.resolve();
    if (this.bus.listenerCount('accepted') > 0) {
      for (const activity of activities) this.bus.emit('accepted', activity);
    }
    this.#appending += activities.length;
    return this.sink.spool.append(activities, { whole: true }).then(
      ({ dropped }) => {
        this.#appending -= activities.length;
        if (dropped > 0) {
          throw new ActivityLogError(
            'SPOOL_FULL',
            `${activities.length === 1 ? 'the activity' : `${activities.length} activities`} could not be journaled: the spool at ${this.sink.spool.dir} is full (ACTIVITY_LOG_SPOOL_MAX_MB)`,
          );
        }
        this.sink.replaySoon(this.#flushIntervalMs);
      },
      (error: unknown) => {
        this.#appending -= activities.length;
        throw error;
      },
    );
  }

  /** Activities being journaled plus those journaled and not yet stored. */
  pending(): number {
    return this.#appending + this.sink.pending();
  }

  /** Only those being journaled: the rest are on disk, and monitoring shows the spool on its own. */
  buffered(): number {
    return this.#appending;
  }

  /**
   * Drains the journal now. Resolves when the pass ends, also when the destination is down: the
   * activities are durable in the spool either way. Rejects only if the spool cannot be read.
   */
  async flush(): Promise<void> {
    const result = await this.sink.replayNow();
    if (result !== null && !result.complete && result.error !== undefined && isSpoolError(result.error)) {
      throw result.error;
    }
  }

  /** Refuses new activities, drains what it can, and leaves the rest in the spool for the next start. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.flush();
    } finally {
      await this.sink.close();
    }
  }
}

function isSpoolError(error: unknown): boolean {
  return error instanceof ActivityLogError && error.code.startsWith('SPOOL_');
}
