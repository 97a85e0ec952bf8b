import type { Activity, LogInput } from './activity.js';
import { ActivityLogError } from './errors.js';

/**
 * Activities held back until a database transaction commits. Each one is built (validated, given its
 * id, timestamp and request context) when it is logged, so deferring it loses nothing; `commit()`
 * hands them all to delivery, `rollback()` discards them. Get one from `activityLog.afterCommit()`.
 *
 * @example
 * const pending = activityLog.afterCommit();
 * const t = await db.begin();
 * pending.log({ description: 'paid', subject: order, event: 'updated' });
 * try { await t.commit(); await pending.commit(); } catch (error) { pending.rollback(); throw error; }
 */
export interface PendingActivities {
  /** Activities held and not yet committed or discarded. */
  readonly size: number;
  /** Whether `commit()` or `rollback()` has been called. */
  readonly settled: boolean;
  /** Builds the activity now and holds it. Throws `VALIDATION_FAILED` as `log()` would. */
  log(input: LogInput): Activity;
  /** Builds every activity (all validated before any is held) and holds them. */
  logMany(inputs: readonly LogInput[]): Activity[];
  /**
   * A nested level (a savepoint): its `commit()` moves its activities into this one, its
   * `rollback()` discards only its own.
   */
  nested(): PendingActivities;
  /** Delivers everything held (for the outermost level) and resolves as `log()` would. */
  commit(): Promise<void>;
  /** Discards everything held; returns how many activities were dropped. */
  rollback(): number;
}

/** How a list builds activities (with the logger's resolver and the current context) and lets them go. */
export interface PendingActivityHooks {
  readonly build: (input: LogInput) => Activity;
  readonly buildMany: (inputs: readonly LogInput[]) => Activity[];
  readonly release: (activities: readonly Activity[]) => Promise<void>;
}

/** The logger makes these; integrations only see the {@link PendingActivities} interface. */
export class PendingActivityList implements PendingActivities {
  readonly #hooks: PendingActivityHooks;
  #activities: Activity[] = [];
  #settled = false;

  constructor(hooks: PendingActivityHooks) {
    this.#hooks = hooks;
  }

  get size(): number {
    return this.#activities.length;
  }

  get settled(): boolean {
    return this.#settled;
  }

  log(input: LogInput): Activity {
    this.#assertOpen('log');
    const activity = this.#hooks.build(input);
    this.#activities.push(activity);
    return activity;
  }

  logMany(inputs: readonly LogInput[]): Activity[] {
    this.#assertOpen('log');
    const activities = this.#hooks.buildMany(inputs);
    this.#activities.push(...activities);
    return activities;
  }

  nested(): PendingActivities {
    this.#assertOpen('nested');
    return new PendingActivityList({
      ...this.#hooks,
      release: async (activities) => {
        this.#assertOpen('commit a nested level into');
        this.#activities.push(...activities);
      },
    });
  }

  commit(): Promise<void> {
    try {
      this.#assertOpen('commit');
    } catch (error) {
      return Promise.reject(error);
    }
    this.#settled = true;
    const activities = this.#activities;
    this.#activities = [];
    return activities.length === 0 ? Promise.resolve() : this.#hooks.release(activities);
  }

  rollback(): number {
    const dropped = this.#activities.length;
    this.#settled = true;
    this.#activities = [];
    return dropped;
  }

  #assertOpen(action: string): void {
    if (this.#settled) {
      throw new ActivityLogError(
        'TRANSACTION_SETTLED',
        `cannot ${action} pending activities after their transaction was committed or rolled back`,
      );
    }
  }
}
