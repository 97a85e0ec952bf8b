import { EventEmitter } from 'node:events';
import type { Activity } from '../core/activity.js';
import type { ActivitySink } from '../core/activity-sink.js';
import type { Delivery, DeliveryEvents } from '../core/delivery.js';
import { ActivityLogError } from '../core/errors.js';

/** `sync`: every `log()` waits for its own write. Simple, and the slowest method; use `batch` or `queue` under load. */
export class SyncDelivery implements Delivery {
  readonly method = 'sync';
  readonly events = new EventEmitter<DeliveryEvents>();
  readonly #sink: ActivitySink;
  #inFlight = 0;
  #closed = false;
  /** Writes running now; `flush()` waits for these, not for writes started after it was called. */
  readonly #writes = new Set<Promise<void>>();

  constructor(sink: ActivitySink) {
    this.#sink = sink;
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
    for (const activity of activities) this.events.emit('accepted', activity);
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
    const started = performance.now();
    try {
      await this.#sink.write(activities);
      this.events.emit('written', {
        sink: this.#sink.name,
        count: activities.length,
        durationMs: performance.now() - started,
        activities,
      });
    } catch (error) {
      this.events.emit('writeFailed', {
        sink: this.#sink.name,
        count: activities.length,
        error,
        attempt: 1,
        willRetry: false,
      });
      throw error;
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
