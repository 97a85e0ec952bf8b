import type { Config } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';
import type { ActivityStore } from '../store/activity-store.js';
import { BatchDelivery } from './batch.js';
import type { Delivery } from './delivery.js';
import { createStoreSink } from './store-sink.js';
import { SyncDelivery } from './sync.js';

/** The delivery method named by `ACTIVITY_LOG_METHOD`, writing to `store`. */
export function createDelivery(config: Config, store: ActivityStore): Delivery {
  const sink = createStoreSink(store);
  switch (config.method) {
    case 'sync':
      return new SyncDelivery(sink);
    case 'batch':
      return new BatchDelivery(sink, {
        batchSize: config.batchSize,
        flushIntervalMs: config.flushIntervalMs,
      });
    case 'queue':
      throw new ActivityLogError(
        'CONFIG_INVALID',
        'ACTIVITY_LOG_METHOD=queue is not available in this build: expected sync or batch',
        { field: 'ACTIVITY_LOG_METHOD' },
      );
  }
}
