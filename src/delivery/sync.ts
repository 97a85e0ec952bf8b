import type { Activity } from '../core/activity.js';
import { type ActivityEventBus, createActivityEventBus } from '../core/activity-events.js';
import type { ActivitySink } from '../core/activity-sink.js';
import type { Delivery } from '../core/delivery.js';
import { ActivityLogError } from '../core/errors.js';

/** `sync`: every `log()` waits for its own write. Simple, and the slowest method; use `batch` or `queue` under load. */
export class SyncDelivery implements Delivery {
  readonly method = 'sync';
  readonly bus: ActivityEventBus;
  readonly #sink: ActivitySink;
  #inFlight = 0;
  #closed = false;
  /** Writes running now; `flush()` waits for these, not for writes started after it was called. */
  readonly #writes = new Set<Promise<void>>();

  /** `options.bus`: where `accepted` is reported (default: a bus of its own). */
  constructor(sink: ActivitySink, options: { readonly bus?: ActivityEventBus } = {}) {
    this.#sink = sink;
    this.bus = options.bus ?? createActivityEventBus();
  }

  /** The sink written to (the resilient sink made by `createDelivery`, for monitoring its breaker and spool). */
  get sink(): ActivitySink {
    return this.#sink;
  }

  deliver(activity: Activity): Promise<void> {
    return this.deliverMany([activity]);
  }

  /** One write for all of them: they are stored (or spooled) together, or refused together. */
  deliverMany(activities: readonly Activity[]): Promise<void> {
    if (this.#closed)
      return Promise.reject(new ActivityLogError('DELIVERY_CLOSED', 'log() was called after close()'));
    if (activities.length === 0) return Promise.resolve();
    if (this.bus.listenerCount('accepted') > 0) {
      for (const activity of activities) this.bus.emit('accepted', activity);
    }
    const write = this.#write(activities);
    const settled = write.then(
      () => undefined,
      () => undefined,
    );
    this.#writes.add(settled);
    void settled.then(() => this.#writes.delete(settled));
    return write;
  }

  async #write(activities: readonly Activity[]): Promise<void> {
    this.#inFlight += activities.length;
    try {
      await this.#sink.write(activities);
    } finally {
      this.#inFlight -= activities.length;
    }
  }

  pending(): number {
    return this.#inFlight;
  }

  async flush(): Promise<void> {
    if (this.#writes.size > 0) await Promise.all([...this.#writes]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush();
    await this.#sink.close();
  }
}
