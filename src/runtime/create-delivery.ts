import type { Config } from '../config/config.js';
import { type ActivityEventBus, createActivityEventBus } from '../core/activity-events.js';
import type { ActivitySink } from '../core/activity-sink.js';
import type { Delivery } from '../core/delivery.js';
import { BatchDelivery } from '../delivery/batch.js';
import { attachQueueSink, createQueueSink } from '../delivery/queue-sink.js';
import { assertQueueEnabled } from '../delivery/redis-connection.js';
import { createStoreSink } from '../delivery/store-sink.js';
import { SyncDelivery } from '../delivery/sync.js';
import { JournaledDelivery } from '../resilience/journaled-delivery.js';
import type { ActivityStore } from '../store/activity-store.js';
import { createResilientSink } from './create-resilient-sink.js';

/** What a delivery is made with besides the configuration and the store. */
export interface DeliveryOptions {
  /** Where one-line warnings go (default: stderr). */
  readonly warn?: (line: string) => void;
  /** The bus the delivery, its sink, breaker and spool report on (default: a new one). */
  readonly bus?: ActivityEventBus;
}

/** An enqueue slower than this fails, counts against the queue breaker, and its activities are spooled. */
const QUEUE_ENQUEUE_TIMEOUT_MS = 5000;

/**
 * The delivery method named by `ACTIVITY_LOG_METHOD`, writing to `store`. `sync` and `batch`
 * write through the store's circuit breaker and fall back to the spool; with
 * `ACTIVITY_LOG_DURABILITY=disk`, `batch` journals every activity to the spool before `log()`
 * resolves and drains the spool into the store. `queue` enqueues through a breaker of its own
 * (named `queue`) with the same spool behind it.
 */
export function createDelivery(
  config: Config,
  store: ActivityStore,
  options: DeliveryOptions = {},
): Delivery {
  const bus = options.bus ?? createActivityEventBus();
  const shared = { bus, ...(options.warn === undefined ? {} : { warn: options.warn }) };
  switch (config.method) {
    case 'sync':
      // Each sync write is already durable when log() resolves (stored or fsync'd in the spool).
      return new SyncDelivery(
        createResilientSink(config, createStoreSink(store), { callerWaits: true, ...shared }),
        { bus },
      );
    case 'batch': {
      const sink = createResilientSink(config, createStoreSink(store), shared);
      if (config.durability === 'disk') {
        return new JournaledDelivery(sink, { flushIntervalMs: config.flushIntervalMs });
      }
      return new BatchDelivery(sink, {
        batchSize: config.batchSize,
        flushIntervalMs: config.flushIntervalMs,
        bus,
      });
    }
    case 'queue': {
      assertQueueEnabled(config, 'ACTIVITY_LOG_METHOD=queue');
      const queueSink = createQueueSink({
        redis: config.redis,
        queueName: config.queueName,
        tries: config.tries,
        batchSize: config.batchSize,
        enqueueTimeoutMs: QUEUE_ENQUEUE_TIMEOUT_MS,
      });
      // Redis down, slow or its breaker open: the activities go to the spool and are replayed into
      // the queue once Redis is back.
      const sink = createResilientSink(config, closingStoreToo(queueSink, store), {
        name: 'queue',
        destination: 'queue',
        timeoutMs: QUEUE_ENQUEUE_TIMEOUT_MS,
        // With a disk journal, each batch stays in it until a worker has stored it: a Redis that
        // loses its jobs (a crash without persistence) loses nothing whose log() resolved.
        ...(config.durability === 'disk' ? { acknowledgement: queueSink.acknowledgement } : {}),
        ...shared,
      });
      const delivery =
        config.durability === 'disk'
          ? new JournaledDelivery(sink, { method: 'queue', flushIntervalMs: config.flushIntervalMs })
          : new BatchDelivery(sink, {
              method: 'queue',
              batchSize: config.batchSize,
              flushIntervalMs: config.flushIntervalMs,
              bus,
            });
      attachQueueSink(delivery, queueSink);
      return delivery;
    }
  }
}

/** The queue sink does not write to the store, but the delivery still owns it and closes it last. */
function closingStoreToo(sink: ActivitySink, store: ActivityStore): ActivitySink {
  return {
    name: sink.name,
    write: (activities) => sink.write(activities),
    ...(sink.ping === undefined ? {} : { ping: () => sink.ping!() }),
    async close() {
      try {
        await sink.close();
      } finally {
        await store.close();
      }
    },
  };
}
