import type { Activity } from '../core/activity.js';
import { type ActivityEventBus, createActivityEventBus } from '../core/activity-events.js';
import type { ActivitySink } from '../core/activity-sink.js';
import type { Delivery } from '../core/delivery.js';
import { ActivityLogError } from '../core/errors.js';

export interface BatchDeliveryOptions {
  /** `batch` writes to the store; `queue` uses the same buffer in front of a queue producer. */
  readonly method?: 'batch' | 'queue';
  /** Activities per write; a full buffer is written at once. */
  readonly batchSize: number;
  /** Longest an activity waits in the buffer. */
  readonly flushIntervalMs: number;
  /** Writes running at once (default 2), so building the next batch overlaps the database round-trip. */
  readonly maxConcurrentWrites?: number;
  /** First retry delay after a failed write (default 100 ms); doubles per consecutive failure. */
  readonly retryInitialDelayMs?: number;
  /** Longest retry delay (default 30 s). */
  readonly retryMaxDelayMs?: number;
  /** How long `close()` keeps retrying a failing sink before giving up (default 10 s). */
  readonly closeTimeoutMs?: number;
  /**
   * Activities held in memory beyond which full batches go to the sink's `spill` (the spool)
   * instead of waiting for the destination (default 20 batches). Keeps memory bounded while the
   * destination is slower than the rate of `log()` calls without failing outright.
   */
  readonly maxBufferedActivities?: number;
  /** Where `accepted` is reported (default: a bus of its own). */
  readonly bus?: ActivityEventBus;
}

interface PendingBatch {
  readonly activities: Activity[];
  /** Sequence number of its first activity: activities are numbered in the order they were accepted. */
  readonly firstSeq: number;
  attempt: number;
}

interface FlushWaiter {
  /** Resolved once every activity numbered below this is written. */
  readonly upToSeq: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * `batch` (and the producer side of `queue`): `log()` appends to an in-process buffer and returns;
 * the buffer is written when it holds `batchSize` activities or its oldest one has waited
 * `flushIntervalMs`, whichever comes first. A failed write keeps its batch and is retried with
 * exponential backoff and jitter, ahead of newer activities; nothing is dropped.
 */
export class BatchDelivery implements Delivery {
  readonly method: 'batch' | 'queue';
  readonly bus: ActivityEventBus;
  readonly #sink: ActivitySink;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxConcurrentWrites: number;
  readonly #retryInitialDelayMs: number;
  readonly #retryMaxDelayMs: number;
  readonly #closeTimeoutMs: number;
  readonly #maxBufferedActivities: number;

  #buffer: Activity[] = [];
  /** Activities accepted so far; the buffer holds the last `#buffer.length` of them. */
  #acceptedSeq = 0;
  readonly #retries: PendingBatch[] = [];
  /** Batches being written or spilled. */
  readonly #inFlight = new Set<PendingBatch>();
  #writes = 0;
  #writingCount = 0;
  #timer: NodeJS.Timeout | null = null;
  /** The oldest buffered activity has waited its interval: partial batches may be written. */
  #due = false;
  #backoffTimer: NodeJS.Timeout | null = null;
  #consecutiveFailures = 0;
  #flushWaiters: FlushWaiter[] = [];
  /** Batches went to the sink's spill since the last `flush()`. */
  #spilled = false;
  #closed = false;

  constructor(sink: ActivitySink, options: BatchDeliveryOptions) {
    this.#sink = sink;
    this.method = options.method ?? 'batch';
    this.bus = options.bus ?? createActivityEventBus();
    this.#batchSize = options.batchSize;
    this.#flushIntervalMs = options.flushIntervalMs;
    this.#maxConcurrentWrites = options.maxConcurrentWrites ?? 2;
    this.#retryInitialDelayMs = options.retryInitialDelayMs ?? 100;
    this.#retryMaxDelayMs = options.retryMaxDelayMs ?? 30_000;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.#maxBufferedActivities = options.maxBufferedActivities ?? 20 * options.batchSize;
  }

  /** The sink written to (the resilient sink made by `createDelivery`, for monitoring its breaker and spool). */
  get sink(): ActivitySink {
    return this.#sink;
  }

  deliver(activity: Activity): undefined {
    if (this.#closed) throw new ActivityLogError('DELIVERY_CLOSED', 'log() was called after close()');
    this.#buffer.push(activity);
    this.#acceptedSeq++;
    if (this.bus.listenerCount('accepted') > 0) this.bus.emit('accepted', activity);
    if (this.#buffer.length >= this.#batchSize) this.#pump();
    else if (this.#timer === null && !this.#due)
      this.#timer = setTimeout(this.#onInterval, this.#flushIntervalMs);
    return undefined;
  }

  pending(): number {
    return (
      this.#buffer.length +
      this.#writingCount +
      this.#retries.reduce((sum, b) => sum + b.activities.length, 0)
    );
  }

  /**
   * Writes everything accepted so far (not what is logged after the call, so a steady stream of
   * `log()` calls cannot keep it waiting), including a backlog spilled to the spool while the
   * destination answers. Rejects if a write fails (the activities stay queued for retry).
   */
  async flush(): Promise<void> {
    const upToSeq = this.#acceptedSeq;
    if (this.#oldestUnwrittenSeq() < upToSeq) {
      await new Promise<void>((resolve, reject) => {
        this.#flushWaiters.push({ upToSeq, resolve, reject });
        this.#due = true;
        this.#pump();
      });
    }
    if (this.#spilled) {
      this.#spilled = false;
      await this.#sink.drain?.();
    }
  }

  /**
   * Stops accepting, then writes what is pending, retrying a failing sink until `closeTimeoutMs`.
   * Rejects, naming how many activities were not written, if the sink never recovered.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const deadline = Date.now() + this.#closeTimeoutMs;
    let lastError: unknown;
    while (this.pending() > 0 && Date.now() < deadline) {
      try {
        await this.flush();
      } catch (error) {
        lastError = error;
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(this.#retryDelayMs(), deadline - Date.now())),
        );
        this.#clearBackoff();
      }
    }
    this.#clearTimer();
    this.#clearBackoff();
    const unwritten = this.pending();
    await this.#sink.close();
    if (unwritten > 0) {
      throw new ActivityLogError(
        'STORE_FAILED',
        `close(): ${unwritten} activities could not be written to ${this.#sink.name}`,
        { cause: lastError, details: { unwritten } },
      );
    }
  }

  readonly #onInterval = (): void => {
    this.#timer = null;
    this.#due = true;
    this.#pump();
  };

  #pump(): void {
    this.#clearTimer();
    // After a failure, one write at a time probes the sink until it succeeds again.
    const maxWrites = this.#consecutiveFailures > 0 ? 1 : this.#maxConcurrentWrites;
    while (this.#writes < maxWrites && this.#backoffTimer === null) {
      const batch = this.#takeBatch();
      if (batch === null) break;
      void this.#write(batch);
    }
    this.#spillBacklog();
    if (this.#buffer.length === 0) this.#due = false;
    else if (!this.#due && this.#backoffTimer === null) {
      this.#timer = setTimeout(this.#onInterval, this.#flushIntervalMs);
    }
  }

  #takeBatch(): PendingBatch | null {
    const retry = this.#retries.shift();
    if (retry !== undefined) return retry;
    if (this.#buffer.length >= this.#batchSize) return this.#takeFromBuffer(this.#batchSize);
    if (this.#due && this.#buffer.length > 0) return this.#takeFromBuffer(this.#buffer.length);
    return null;
  }

  #takeFromBuffer(count: number): PendingBatch {
    const firstSeq = this.#acceptedSeq - this.#buffer.length;
    const activities = count === this.#buffer.length ? this.#buffer : this.#buffer.splice(0, count);
    if (activities === this.#buffer) this.#buffer = [];
    return { activities, firstSeq, attempt: 0 };
  }

  /**
   * While the destination is slower than the stream of `log()` calls (slow, not failing, so its
   * breaker stays closed), full batches beyond `maxBufferedActivities` go to the sink's spill
   * (the spool), which is replayed as the destination catches up: memory stays bounded and
   * nothing is dropped unless the spool is full too.
   */
  #spillBacklog(): void {
    if (this.#sink.spill === undefined) return;
    while (this.#buffer.length >= this.#batchSize && this.#heldInMemory() > this.#maxBufferedActivities) {
      void this.#spill(this.#takeFromBuffer(this.#batchSize));
    }
  }

  #heldInMemory(): number {
    return this.#buffer.length + this.#retries.reduce((sum, b) => sum + b.activities.length, 0);
  }

  async #spill(batch: PendingBatch): Promise<void> {
    this.#inFlight.add(batch);
    this.#writingCount += batch.activities.length;
    this.#spilled = true;
    try {
      await this.#sink.spill!(batch.activities);
    } catch {
      // The spool could not take it either: keep the batch for the normal retry path.
      this.#retries.push(batch);
    } finally {
      this.#inFlight.delete(batch);
      this.#writingCount -= batch.activities.length;
    }
    this.#releaseFlushWaiters();
  }

  /** Sequence number of the oldest activity not yet written; `#acceptedSeq` when there is none. */
  #oldestUnwrittenSeq(): number {
    let oldest = this.#buffer.length > 0 ? this.#acceptedSeq - this.#buffer.length : this.#acceptedSeq;
    for (const batch of this.#inFlight) oldest = Math.min(oldest, batch.firstSeq);
    for (const batch of this.#retries) oldest = Math.min(oldest, batch.firstSeq);
    return oldest;
  }

  #releaseFlushWaiters(): void {
    if (this.#flushWaiters.length === 0) return;
    const oldest = this.#oldestUnwrittenSeq();
    const waiting: FlushWaiter[] = [];
    for (const waiter of this.#flushWaiters) {
      if (waiter.upToSeq <= oldest) waiter.resolve();
      else waiting.push(waiter);
    }
    this.#flushWaiters = waiting;
  }

  async #write(batch: PendingBatch): Promise<void> {
    this.#writes++;
    this.#inFlight.add(batch);
    this.#writingCount += batch.activities.length;
    batch.attempt++;
    let failure: unknown = null;
    try {
      await this.#sink.write(batch.activities);
      this.#consecutiveFailures = 0;
    } catch (error) {
      failure = error;
      this.#consecutiveFailures++;
      this.#retries.push(batch);
      this.bus.emit('writeFailed', {
        sink: this.#sink.name,
        destination: this.method === 'queue' ? 'queue' : 'store',
        by: 'app',
        count: batch.activities.length,
        error,
        willRetry: true,
        failedJobs: 0,
      });
      if (this.#backoffTimer === null && !this.#closed) {
        this.#backoffTimer = setTimeout(() => {
          this.#backoffTimer = null;
          this.#due = true;
          this.#pump();
        }, this.#retryDelayMs());
      }
    } finally {
      this.#writes--;
      this.#inFlight.delete(batch);
      this.#writingCount -= batch.activities.length;
    }
    if (failure !== null) {
      for (const waiter of this.#flushWaiters.splice(0)) waiter.reject(failure);
      return;
    }
    this.#pump();
    this.#releaseFlushWaiters();
  }

  /** Exponential backoff with full jitter, so many processes do not retry in step. */
  #retryDelayMs(): number {
    const exponent = Math.min(this.#consecutiveFailures - 1, 20);
    const ceiling = Math.min(this.#retryMaxDelayMs, this.#retryInitialDelayMs * 2 ** Math.max(exponent, 0));
    return Math.max(1, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #clearBackoff(): void {
    if (this.#backoffTimer !== null) {
      clearTimeout(this.#backoffTimer);
      this.#backoffTimer = null;
    }
  }
}
