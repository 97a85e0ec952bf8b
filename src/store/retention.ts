import type { ActivityStore } from './activity-store.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface RetentionSchedulerOptions {
  readonly store: ActivityStore;
  /** Activities older than this many days are deleted (`ACTIVITY_LOG_RETENTION_DAYS`). */
  readonly retentionDays: number;
  /** Time between passes (default one day). */
  readonly intervalMs?: number;
  /** Time from `start()` to the first pass (default one minute, so start-up is not slowed). */
  readonly firstRunDelayMs?: number;
  /** Rows per DELETE (default 1000), as `activity-log prune --chunk`. */
  readonly chunkSize?: number;
  /** After each pass that deleted something. */
  readonly onPruned?: (event: {
    readonly deleted: number;
    readonly before: Date;
    readonly seconds: number;
  }) => void;
  /** A pass failed (the database is down…); the next pass is tried at the next interval. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Deletes activities older than the retention period on a schedule, as `activity-log prune` does
 * by hand (whole partitions dropped where the table is partitioned, the rest in chunks, sealed
 * rows by whole seals): a first pass shortly after `start()`, then one per interval.
 * Passes never overlap, and a failed pass waits for the next interval. Several processes may run
 * one each: a chunked delete of rows another process already deleted deletes nothing.
 *
 * @example
 * const retention = new RetentionScheduler({ store, retentionDays: 365 });
 * retention.start();
 * // …
 * await retention.stop();
 */
export class RetentionScheduler {
  readonly #options: RetentionSchedulerOptions;
  readonly #intervalMs: number;
  readonly #stopped = new AbortController();
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;

  constructor(options: RetentionSchedulerOptions) {
    this.#options = options;
    this.#intervalMs = options.intervalMs ?? DAY_MS;
  }

  start(): void {
    if (this.#timer !== null || this.#stopped.signal.aborted) return;
    this.#schedule(this.#options.firstRunDelayMs ?? 60_000);
  }

  /** Runs one pass now (unless one is running, which is awaited instead); resolves with the rows deleted. */
  async runOnce(): Promise<number> {
    if (this.#running !== null) {
      await this.#running;
      return 0;
    }
    let deleted = 0;
    const pass = (async () => {
      const started = performance.now();
      const before = new Date(Date.now() - this.#options.retentionDays * DAY_MS);
      deleted = await this.#options.store.prune({
        before,
        ...(this.#options.chunkSize === undefined ? {} : { chunkSize: this.#options.chunkSize }),
      });
      if (deleted > 0) {
        this.#options.onPruned?.({ deleted, before, seconds: (performance.now() - started) / 1000 });
      }
    })();
    this.#running = pass;
    try {
      await pass;
      return deleted;
    } finally {
      this.#running = null;
    }
  }

  /** Stops scheduling and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.#stopped.abort();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => undefined);
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.runOnce()
        .catch((error: unknown) => this.#options.onError?.(error))
        .finally(() => {
          if (!this.#stopped.signal.aborted) this.#schedule(this.#intervalMs);
        });
    }, delayMs);
    // A pending prune never keeps the process alive on its own.
    this.#timer.unref();
  }
}
