import { resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { type ActivityEventBus, createActivityEventBus, type Destination } from '../core/activity-events.js';
import type { ActivitySink } from '../core/activity-sink.js';
import { CircuitBreaker } from '../resilience/breaker.js';
import {
  ResilientSink,
  type ResilientSinkOptions,
  type WriteAcknowledgement,
} from '../resilience/resilient-sink.js';
import { Spool } from '../resilience/spool.js';

export interface ResilientSinkSettings {
  /** The breaker's name in events and messages (default: the target's name). */
  readonly name?: string;
  /** A write slower than this is a failure (default `DB_QUERY_TIMEOUT_MS`; the queue producer passes its enqueue timeout). */
  readonly timeoutMs?: number;
  /** True for `sync`: see {@link ResilientSinkOptions.callerWaits}. */
  readonly callerWaits?: boolean;
  /** Where the spool's warnings go (default: one line on stderr). */
  readonly warn?: (message: string) => void;
  /** See {@link ResilientSinkOptions.acknowledgement}. */
  readonly acknowledgement?: WriteAcknowledgement;
  /** Where the sink is: the store (default) or the queue. */
  readonly destination?: Destination;
  /** The bus the sink, its breaker and its spool report on (default: a new one). */
  readonly bus?: ActivityEventBus;
}

/**
 * Wraps `target` with a breaker of its own (`ACTIVITY_LOG_BREAKER_FAILURES`,
 * `ACTIVITY_LOG_BREAKER_COOLDOWN_MS`, the query timeout, `ACTIVITY_LOG_SLOW_WRITE_MS`) and the spool under
 * `ACTIVITY_LOG_SPOOL_DIR`, bounded by `ACTIVITY_LOG_SPOOL_MAX_MB`.
 *
 * @example
 * const sink = createResilientSink(config, createStoreSink(store));
 * const delivery = new BatchDelivery(sink, { batchSize: config.batchSize, flushIntervalMs: config.flushIntervalMs });
 */
export function createResilientSink(
  config: Config,
  target: ActivitySink,
  settings: ResilientSinkSettings = {},
): ResilientSink {
  const bus = settings.bus ?? createActivityEventBus();
  const breaker = new CircuitBreaker({
    name: settings.name ?? target.name,
    failureThreshold: config.breakerFailures,
    cooldownMs: config.breakerCooldownMs,
    timeoutMs: settings.timeoutMs ?? config.database.queryTimeoutMs,
    slowCallMs: config.slowWriteMs,
    bus,
  });
  const spool = new Spool({
    dir: resolve(config.spoolDir),
    maxBytes: config.spoolMaxMb * 1024 * 1024,
    ...(settings.warn === undefined ? {} : { warn: settings.warn }),
    bus,
  });
  return new ResilientSink({
    target,
    breaker,
    spool,
    replayBatchSize: config.batchSize,
    callerWaits: settings.callerWaits ?? false,
    slowWriteMs: config.slowWriteMs,
    acknowledgement: settings.acknowledgement,
    destination: settings.destination ?? 'store',
    bus,
  });
}
