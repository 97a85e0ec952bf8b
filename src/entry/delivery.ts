/** `activity-log/delivery`: the contracts of a custom delivery (`createActivityLog({ delivery })`) and the configured one. */

export { createActivityEventBus } from '../core/activity-events.js';
export type { ActivitySink } from '../core/activity-sink.js';
export type { Delivery } from '../core/delivery.js';
export { createStoreSink } from '../delivery/store-sink.js';
export type { DeliveryOptions } from '../runtime/create-delivery.js';
export { createDelivery } from '../runtime/create-delivery.js';
