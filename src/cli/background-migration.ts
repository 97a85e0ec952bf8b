import { ActivityLogError, isActivityLogError } from '../core/errors.js';
import type { MigrateResult } from '../store/activity-store.js';

export interface BackgroundMigrationOptions {
  /** Runs the migration once (`store.migrate()`). */
  readonly migrate: () => Promise<MigrateResult>;
  /** Called once the migration has succeeded. */
  readonly onMigrated: (result: MigrateResult) => void;
  /** Called when an attempt fails, with when the next one is. */
  readonly onFailed: (error: unknown, retryInMs: number) => void;
  /** First wait before trying again (default 1 s); doubles up to `maxRetryMs`. */
  readonly firstRetryMs?: number;
  /** Longest wait between attempts (default 30 s). */
  readonly maxRetryMs?: number;
}

/**
 * Migrates the store, and while that fails (the database is down at start-up) keeps trying in
 * the background instead of refusing to start: `serve` can accept activities into the spool, or
 * the queue, meanwhile. {@link state} is the store's readiness for `GET /health`.
 *
 * @example
 * const migration = new BackgroundMigration({ migrate: () => store.migrate(), onMigrated, onFailed });
 * await migration.start(); // resolves after the first attempt, whatever its outcome
 */
export class BackgroundMigration {
  readonly #options: BackgroundMigrationOptions;
  readonly #maxRetryMs: number;
  #retryMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #error: unknown = new ActivityLogError('STORE_SCHEMA_MISSING', 'the migration has not run yet');
  #done = false;
  #stopped = false;

  constructor(options: BackgroundMigrationOptions) {
    this.#options = options;
    this.#retryMs = options.firstRetryMs ?? 1000;
    this.#maxRetryMs = options.maxRetryMs ?? 30_000;
  }

  /** Whether the table is known to be up to date, and why not. */
  state(): { readonly ok: true } | { readonly ok: false; readonly error: ActivityLogError } {
    if (this.#done) return { ok: true };
    const cause = this.#error;
    const message = `the activity table is not migrated yet (retrying in the background): ${cause instanceof Error ? cause.message : String(cause)}`;
    return {
      ok: false,
      error: new ActivityLogError(isActivityLogError(cause) ? cause.code : 'STORE_SCHEMA_MISSING', message, {
        cause,
      }),
    };
  }

  /** Makes the first attempt; resolves when it has ended, successful or not. */
  start(): Promise<void> {
    return this.#attempt();
  }

  /** Stops retrying and waits for an attempt in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  #attempt(): Promise<void> {
    this.#running = this.#options.migrate().then(
      (result) => {
        this.#done = true;
        this.#options.onMigrated(result);
      },
      (error: unknown) => {
        this.#error = error;
        if (this.#stopped) return;
        const retryInMs = this.#retryMs;
        this.#retryMs = Math.min(this.#maxRetryMs, this.#retryMs * 2);
        this.#options.onFailed(error, retryInMs);
        this.#timer = setTimeout(() => {
          this.#timer = null;
          void this.#attempt();
        }, retryInMs);
      },
    );
    return this.#running;
  }
}
