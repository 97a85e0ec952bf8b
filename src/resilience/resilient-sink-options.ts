import type { ActivityEventBus, Destination } from '../core/activity-events.js';
import type { ActivitySink } from '../core/activity-sink.js';
import type { CircuitBreaker } from './breaker.js';
import type { Spool } from './spool.js';
import type { WriteAcknowledgement } from './write-acknowledgement.js';

/** How a `ResilientSink` is built: its destination, breaker and spool, and how it replays. */
export interface ResilientSinkOptions {
  /** Where activities go when all is well: the store sink, or the queue producer. */
  readonly target: ActivitySink;
  /** This destination's own breaker. */
  readonly breaker: CircuitBreaker;
  readonly spool: Spool;
  /** Activities per replayed write (`ACTIVITY_LOG_BATCH_SIZE`). */
  readonly replayBatchSize: number;
  /**
   * True for `sync`, where the caller of `log()` waits for this write: a spool too full to keep
   * the activity rejects with `SPOOL_FULL`, and data the destination refuses rejects with its
   * error, so the caller learns of either. False (default; `batch`, `queue`): the spool counts and
   * reports drops, and refused data is set aside in `rejected.ndjson`.
   */
  readonly callerWaits?: boolean;
  /** Pause before replay is tried again after a failed write that did not open the breaker (default: the smaller of 1 s and the cooldown). */
  readonly replayRetryMs?: number;
  /** Replay what earlier runs left in the spool as soon as the sink is made (default true). */
  readonly replayOnStart?: boolean;
  /**
   * How long `close()` keeps replaying what this process spooled while the destination is healthy
   * (default 30 s); what is left stays in the spool for the next process to start.
   */
  readonly closeDrainMs?: number;
  /**
   * `ACTIVITY_LOG_SLOW_WRITE_MS`: a write unanswered after this is slow. Its batch is spooled
   * then and `write()` resolves (the write goes on; if it stores the batch, the spooled copy is
   * replayed as a no-op), and while a write is slow every new batch goes straight to the spool, so
   * a hung destination holds nothing in memory. Default: off.
   */
  readonly slowWriteMs?: number | undefined;
  /**
   * For a destination that stores later (the queue): replayed segments are kept in the spool until
   * the destination confirms their activities stored, and written again if it lost them (a Redis
   * restart without persistence). Default: a segment is deleted once written.
   */
  readonly acknowledgement?: WriteAcknowledgement | undefined;
  /** How often unconfirmed segments are checked (default 1000 ms). */
  readonly acknowledgementPollMs?: number;
  /** Where the target writes: the store (default) or the queue; `stored` events say which. */
  readonly destination?: Destination;
  /** Where `stored`, `writeFailed` and `spooled` are reported (default: the spool's bus). */
  readonly bus?: ActivityEventBus;
}
