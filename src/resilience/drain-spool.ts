import { resolve } from 'node:path';
import type { Config } from '../config/config.js';
import type { ActivitySink } from '../core/activity-sink.js';
import { CircuitBreaker } from './breaker.js';
import { ResilientSink } from './resilient-sink.js';
import { Spool } from './spool.js';

export interface DrainSpoolOptions {
  /** Called after each stored batch with the running total and the activities there were to replay. */
  readonly onProgress?: (replayed: number, total: number) => void;
  /** Called after each segment is replayed and deleted. */
  readonly onSegment?: (segment: string, replayed: number, total: number) => void;
}

export interface DrainSpoolResult {
  /** Activities in segments of processes that are gone, when the drain started. */
  readonly total: number;
  readonly replayed: number;
  readonly segments: number;
  readonly corruptRecords: number;
  /** False when a write failed; `error` says why and the rest stays spooled. */
  readonly complete: boolean;
  readonly error?: unknown;
  /** Segments left alone because their process is running (it replays them itself). */
  readonly runningSegments: number;
  readonly seconds: number;
}

/**
 * Replays the spool under `ACTIVITY_LOG_SPOOL_DIR` into `target` once, now: the segments of
 * processes that are gone, in order, each deleted once stored. Used by `activity-log spool replay`,
 * and by anything else that drains pending work on demand. Stops at the first failed write.
 * Closes `target` when done.
 *
 * @example
 * const result = await drainSpool(config, createStoreSink(createStore(config.database)));
 * if (!result.complete) throw result.error;
 */
export async function drainSpool(
  config: Config,
  target: ActivitySink,
  options: DrainSpoolOptions = {},
): Promise<DrainSpoolResult> {
  const spool = new Spool({ dir: resolve(config.spoolDir), maxBytes: config.spoolMaxMb * 1024 * 1024 });
  const sink = new ResilientSink({
    target,
    breaker: new CircuitBreaker({
      name: target.name,
      // There is no caller to protect here, only a clear error to give: stop at the first failure.
      failureThreshold: 1,
      cooldownMs: config.breakerCooldownMs,
      timeoutMs: config.database.queryTimeoutMs,
    }),
    spool,
    replayBatchSize: config.batchSize,
    replayOnStart: false,
  });
  const started = performance.now();
  let replayed = 0;
  try {
    const status = await spool.status();
    const waiting = status.segments.filter((segment) => !segment.ownerAlive);
    const total = waiting.reduce((sum, segment) => sum + segment.activities, 0);
    const runningSegments = status.segments.length - waiting.length;
    sink.bus.on('stored', ({ count }) => {
      replayed += count;
      options.onProgress?.(replayed, total);
    });
    spool.events.on('replayed', ({ segment }) => options.onSegment?.(segment, replayed, total));
    const result = waiting.length === 0 ? null : await sink.replayNow();
    return {
      total,
      replayed,
      segments: result?.segments ?? 0,
      corruptRecords: result?.corruptRecords ?? 0,
      complete: waiting.length === 0 || result?.complete === true,
      ...(result?.error === undefined ? {} : { error: result.error }),
      runningSegments,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await sink.close();
  }
}
