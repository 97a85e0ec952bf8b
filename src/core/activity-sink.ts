import type { Activity } from './activity.js';

/**
 * The write step: takes a batch of activities somewhere durable (a store, a queue, a spool).
 * Delivery methods call a sink; the circuit breaker, spool and queue producer are sinks
 * that wrap or replace the store sink, so the logger never changes when they are added.
 */
export interface ActivitySink {
  readonly name: string;
  /** Resolves once every activity in the batch is durable at the sink; rejects if none of it is. */
  write(activities: readonly Activity[]): Promise<void>;
  /**
   * Keeps activities durable without writing them to the destination now (the spool, replayed
   * later); optional. A buffering delivery whose backlog outgrew memory hands batches here.
   */
  spill?(activities: readonly Activity[]): Promise<void>;
  /**
   * Writes to the destination what the sink set aside before the call (spilled or spooled), if
   * the destination takes it now; what it does not take stays durable. Optional.
   */
  drain?(): Promise<void>;
  /** Resolves when the destination answers now (readiness for `GET /health`); optional. */
  ping?(): Promise<void>;
  close(): Promise<void>;
}
