/** `activity-log/resilience`: the circuit breaker and spool a delivery writes through, and draining the spool. */
export type {
  BreakerEvents,
  BreakerSnapshot,
  BreakerState,
  BreakerTransition,
  CircuitBreaker,
} from '../resilience/breaker.js';
export type { DrainSpoolOptions, DrainSpoolResult } from '../resilience/drain-spool.js';
export { drainSpool } from '../resilience/drain-spool.js';
export type { ResilientSink, ResilientSinkEvents, SpoolReason } from '../resilience/resilient-sink.js';
export { resilienceOf } from '../resilience/resilient-sink.js';
export type { Spool, SpoolStatus } from '../resilience/spool.js';
