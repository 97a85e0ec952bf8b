import type { Delivery } from '../core/delivery.js';
import { queueSinkOf } from '../delivery/queue-sink.js';
import type { RedisDurability } from '../delivery/redis-durability.js';
import type { BreakerState } from '../resilience/breaker.js';
import { resilienceOf } from '../resilience/resilient-sink.js';
import type { ActivityStore } from '../store/activity-store.js';

/** The circuit breaker a delivery writes through, as `GET /health` shows it. */
export interface BreakerProbe {
  readonly name: string;
  readonly state: BreakerState;
  readonly failure_count: number;
  readonly is_allowed: boolean;
}

/** What `GET /health` asks of an activity log's parts; each call reads the part now. */
export interface HealthProbes {
  /** Resolves when the store answers; rejects with its (coded) error. */
  readonly pingStore: () => Promise<void>;
  readonly storeDialect: string;
  /** The delivery method and the activities accepted and not yet written. */
  readonly deliveryStatus: () => { readonly method: string; readonly pending: number };
  /** With the `queue` method: resolves when Redis answers. Null with other methods. */
  readonly pingQueue: (() => Promise<void>) | null;
  /** With the `queue` method: whether Redis keeps the queue through a crash, null until read. */
  readonly queueDurability: (() => RedisDurability | null) | null;
  /** The breaker the delivery writes through; null when it has none (a custom delivery). */
  readonly breaker: (() => BreakerProbe) | null;
  /** Activities waiting in the delivery's spool; null when it has none. */
  readonly spoolPending: (() => number) | null;
}

/**
 * The health probes of a store and the delivery writing to it.
 *
 * @example
 * const { store, delivery } = composeActivityLog();
 * const probes = healthProbesOf(store, delivery);
 * await probes.pingStore();
 */
export function healthProbesOf(store: ActivityStore, delivery: Delivery): HealthProbes {
  const resilience = resilienceOf(delivery);
  const queueSink = queueSinkOf(delivery);
  const throughQueue = delivery.method === 'queue' && resilience !== null;
  return {
    pingStore: () => store.ping(),
    storeDialect: store.capabilities.dialect,
    deliveryStatus: () => ({ method: delivery.method, pending: delivery.pending() }),
    pingQueue: throughQueue ? () => resilience.ping() : null,
    queueDurability: throughQueue && queueSink !== null ? () => queueSink.durability() : null,
    breaker:
      resilience === null ? null : () => ({ name: resilience.breaker.name, ...resilience.breaker.toJSON() }),
    spoolPending: resilience === null ? null : () => resilience.spool.pending(),
  };
}
