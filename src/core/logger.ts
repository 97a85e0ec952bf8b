import { AsyncLocalStorage } from 'node:async_hooks';
import type { Activity, LogInput, ModelLike } from './activity.js';
import { type BuildOptions, buildActivities, buildActivity } from './build-activity.js';
import { currentContext, runWithContext } from './context.js';
import type { Delivery } from './delivery.js';
import { ActivityLogError } from './errors.js';
import { newBatchUuid } from './ids.js';
import { type PendingActivities, PendingActivityList } from './pending-activities.js';

/** Fluent, immutable activity builder: every call returns a new builder. */
export interface ActivityBuilder {
  useLog(logName: string): ActivityBuilder;
  performedOn(subject: ModelLike): ActivityBuilder;
  causedBy(causer: ModelLike): ActivityBuilder;
  /** Records the activity with no causer, even inside a request whose context has one. */
  causedByAnonymous(): ActivityBuilder;
  event(name: string): ActivityBuilder;
  withProperties(properties: Readonly<Record<string, unknown>>): ActivityBuilder;
  withProperty(key: string, value: unknown): ActivityBuilder;
  createdAt(date: Date | string | number): ActivityBuilder;
  /** Logs the activity with this description (placeholders `:subject.x`, `:causer.x`, `:properties.x`). */
  log(description: string): Promise<Activity>;
}

/**
 * Logging activities through a delivery: everything the activity log does except reading the log
 * back, which the composition adds from the store.
 */
export interface ActivityLogger {
  /**
   * Records one activity. Validation happens here (a bad field throws `VALIDATION_FAILED` naming it);
   * the id, timestamp and request context are fixed now, whenever the row is written.
   * With `batch`/`queue` it resolves without waiting for I/O; with `sync` once the row is stored.
   */
  log(input: LogInput): Promise<Activity>;
  /** Records several activities; all are validated before any is accepted. */
  logMany(inputs: readonly LogInput[]): Promise<Activity[]>;
  /** Starts a fluent builder, e.g. `activity('orders').performedOn(order).causedBy(user).log('paid')`. */
  activity(logName?: string): ActivityBuilder;
  /** Runs `fn`; every activity logged inside it (across awaits) shares one `batch_uuid`. */
  withinBatch<T>(fn: () => T | Promise<T>): Promise<T>;
  /**
   * Runs `fn` and delivers the activities logged inside it (across awaits) only when it resolves;
   * if it throws, they are discarded. Inside, `log()` resolves at once with the built activity.
   * A nested call joins the outer one: its activities wait for the outermost commit.
   *
   * @example
   * await activityLog.transaction(async () => {
   *   await activityLog.log({ description: 'refunded', subject: order, event: 'updated' });
   *   await payments.refund(order); // throws → the activity is never written
   * });
   */
  transaction<T>(fn: () => T | Promise<T>): Promise<T>;
  /**
   * An explicit after-commit list, for code that drives its own transaction (the ORM integrations
   * use it): activities logged into it are delivered on `commit()` and dropped on `rollback()`.
   */
  afterCommit(): PendingActivities;
  /** Writes everything pending now. */
  flush(): Promise<void>;
  /** Flushes everything pending and releases connections. Further `log()` calls reject. */
  close(): Promise<void>;
}

export interface LoggerParts {
  /** Where built activities go. */
  readonly delivery: Delivery;
  /** How inputs become activities: the model resolver and which property keys are secret. */
  readonly build: BuildOptions;
  /** Called once the delivery has closed (or failed to). */
  readonly afterClose?: () => void;
}

/**
 * The logger over a delivery: validates and builds each activity at `log()` time, then hands it
 * to `delivery`.
 *
 * @example
 * const logger = createLogger({ delivery, build: { resolveModel: defaultModelResolver, isSecretKey } });
 * await logger.activity('orders').event('paid').log('paid order');
 */
export function createLogger(parts: LoggerParts): ActivityLogger {
  return new Logger(parts);
}

class Logger implements ActivityLogger {
  readonly #delivery: Delivery;
  readonly #build: BuildOptions;
  readonly #transactions = new AsyncLocalStorage<PendingActivities>();
  readonly #afterClose: () => void;
  #closing: Promise<void> | null = null;

  constructor(parts: LoggerParts) {
    this.#delivery = parts.delivery;
    this.#build = parts.build;
    this.#afterClose = parts.afterClose ?? (() => undefined);
  }

  log(input: LogInput): Promise<Activity> {
    try {
      // A transaction that has settled (a timer started inside it fires later) no longer holds
      // anything: the activity is delivered as any other, as transaction() does for nesting.
      const pending = this.#transactions.getStore();
      if (pending !== undefined && !pending.settled) return Promise.resolve(pending.log(input));
      const activity = buildActivity(input, currentContext(), this.#build);
      const written = this.#deliver(activity);
      return written === undefined ? Promise.resolve(activity) : written.then(() => activity);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async logMany(inputs: readonly LogInput[]): Promise<Activity[]> {
    const pending = this.#transactions.getStore();
    if (pending !== undefined && !pending.settled) return pending.logMany(inputs);
    const activities = buildActivities(inputs, currentContext(), this.#build);
    await this.#deliverAll(activities);
    return activities;
  }

  activity(logName?: string): ActivityBuilder {
    return new Builder(this, logName === undefined ? {} : { logName });
  }

  withinBatch<T>(fn: () => T | Promise<T>): Promise<T> {
    // A nested batch joins the outer one, as the whole operation is one batch.
    if (currentContext()?.batchUuid !== undefined) return Promise.resolve().then(fn);
    return runWithContext({ batchUuid: newBatchUuid() }, async () => fn());
  }

  async transaction<T>(fn: () => T | Promise<T>): Promise<T> {
    const outer = this.#transactions.getStore();
    const pending = outer === undefined || outer.settled ? this.afterCommit() : outer.nested();
    let result: T;
    try {
      result = await this.#transactions.run(pending, fn);
    } catch (error) {
      pending.rollback();
      throw error;
    }
    await pending.commit();
    return result;
  }

  afterCommit(): PendingActivities {
    return new PendingActivityList({
      build: (input) => buildActivity(input, currentContext(), this.#build),
      buildMany: (inputs) => buildActivities(inputs, currentContext(), this.#build),
      release: (activities) => this.#deliverAll(activities),
    });
  }

  flush(): Promise<void> {
    return this.#delivery.flush();
  }

  close(): Promise<void> {
    this.#closing ??= this.#delivery.close().finally(this.#afterClose);
    return this.#closing;
  }

  async #deliverAll(activities: readonly Activity[]): Promise<void> {
    if (this.#delivery.deliverMany !== undefined) {
      if (this.#closing !== null)
        throw new ActivityLogError('DELIVERY_CLOSED', 'log() was called after close()');
      await this.#delivery.deliverMany(activities);
      return;
    }
    const waits: Promise<void>[] = [];
    for (const activity of activities) {
      const written = this.#deliver(activity);
      if (written !== undefined) waits.push(written);
    }
    await Promise.all(waits);
  }

  #deliver(activity: Activity): Promise<void> | undefined {
    if (this.#closing !== null)
      throw new ActivityLogError('DELIVERY_CLOSED', 'log() was called after close()');
    return this.#delivery.deliver(activity);
  }
}

type Draft = { -readonly [K in keyof LogInput]?: LogInput[K] };

class Builder implements ActivityBuilder {
  readonly #logger: ActivityLogger;
  readonly #draft: Readonly<Draft>;

  constructor(logger: ActivityLogger, draft: Readonly<Draft>) {
    this.#logger = logger;
    this.#draft = draft;
  }

  #with(change: Draft): ActivityBuilder {
    return new Builder(this.#logger, { ...this.#draft, ...change });
  }

  useLog(logName: string): ActivityBuilder {
    return this.#with({ logName });
  }

  performedOn(subject: ModelLike): ActivityBuilder {
    return this.#with({ subject });
  }

  causedBy(causer: ModelLike): ActivityBuilder {
    return this.#with({ causer });
  }

  causedByAnonymous(): ActivityBuilder {
    return this.#with({ causer: null });
  }

  event(name: string): ActivityBuilder {
    return this.#with({ event: name });
  }

  withProperties(properties: Readonly<Record<string, unknown>>): ActivityBuilder {
    return this.#with({ properties });
  }

  withProperty(key: string, value: unknown): ActivityBuilder {
    return this.#with({ properties: { ...(this.#draft.properties ?? {}), [key]: value } });
  }

  createdAt(date: Date | string | number): ActivityBuilder {
    return this.#with({ createdAt: date });
  }

  log(description: string): Promise<Activity> {
    return this.#logger.log({ ...this.#draft, description } as LogInput);
  }
}
