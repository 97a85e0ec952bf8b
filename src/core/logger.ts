import { AsyncLocalStorage } from 'node:async_hooks';
import { type Config, type ConfigOverrides, loadConfig } from '../config/config.js';
import { createDelivery, type DeliveryOptions } from '../delivery/create-delivery.js';
import { reportResilience } from '../resilience/report-resilience.js';
import { resilienceOf } from '../resilience/resilient-sink.js';
import type { ActivityPage, ActivityQuery, ActivityStore } from '../store/activity-store.js';
import { createStore } from '../store/create-store.js';
import {
  type Activity,
  defaultModelResolver,
  type LogInput,
  type ModelLike,
  type ModelResolver,
} from './activity.js';
import { type BuildOptions, buildActivities, buildActivity } from './build-activity.js';
import { currentContext, runWithContext } from './context.js';
import type { Delivery } from './delivery.js';
import { ActivityLogError } from './errors.js';
import { newBatchUuid } from './ids.js';
import { type PendingActivities, PendingActivityList } from './pending-activities.js';
import { secretKeyMatcher } from './redact.js';

export interface ActivityLogOptions {
  /** Any part of the configuration; wins over the environment. */
  readonly config?: ConfigOverrides;
  /** The environment to read (default: `process.env` plus `.env` in the working directory). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Use this store instead of one made from the configuration. */
  readonly store?: ActivityStore;
  /** Use this delivery instead of the configured method (advanced: custom sinks). */
  readonly delivery?: (config: Config, store: ActivityStore, options: DeliveryOptions) => Delivery;
  /** Maps application objects to `{ type, id }` (default: constructor name and `id`). */
  readonly resolveModel?: ModelResolver;
  /**
   * Where one-line warnings go: the circuit breaker opening and closing, activities going to the
   * spool and the spool replayed, refused or dropped activities, a missing table. Default: stderr.
   */
  readonly warn?: (line: string) => void;
}

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

/** The activity log: build with {@link createActivityLog}. */
export interface ActivityLog {
  readonly config: Config;
  readonly store: ActivityStore;
  readonly delivery: Delivery;
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
  /** Reads the log, newest first, with keyset paging. */
  query(query?: ActivityQuery): Promise<ActivityPage>;
  /** Writes everything pending now. */
  flush(): Promise<void>;
  /** Flushes everything pending and releases connections. Further `log()` calls reject. */
  close(): Promise<void>;
}

/**
 * Creates an activity log from the environment (and `.env`), with `options` winning.
 *
 * @example
 * const activityLog = createActivityLog({ config: { method: 'batch' } });
 * await activityLog.activity('orders').performedOn({ type: 'Order', id: 42 }).causedBy(user)
 *   .event('updated').withProperties({ total: 10.5 }).log('updated order :subject.id');
 * await activityLog.close();
 */
export function createActivityLog(options: ActivityLogOptions = {}): ActivityLog {
  const config = loadConfig({
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.config === undefined ? {} : { overrides: options.config }),
  });
  const store = options.store ?? createStore(config.database);
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`));
  const delivery = (options.delivery ?? createDelivery)(config, store, { warn });
  const resilience = resilienceOf(delivery);
  const stopReporting = resilience === null ? () => undefined : reportResilience(resilience, warn);
  return new Logger(
    config,
    store,
    delivery,
    {
      resolveModel: options.resolveModel ?? defaultModelResolver,
      isSecretKey: secretKeyMatcher(config.redactKeys),
    },
    stopReporting,
  );
}

class Logger implements ActivityLog {
  readonly config: Config;
  readonly store: ActivityStore;
  readonly delivery: Delivery;
  readonly #build: BuildOptions;
  readonly #transactions = new AsyncLocalStorage<PendingActivities>();
  readonly #stopReporting: () => void;
  #closing: Promise<void> | null = null;

  constructor(
    config: Config,
    store: ActivityStore,
    delivery: Delivery,
    build: BuildOptions,
    stopReporting: () => void,
  ) {
    this.config = config;
    this.store = store;
    this.delivery = delivery;
    this.#build = build;
    this.#stopReporting = stopReporting;
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

  query(query?: ActivityQuery): Promise<ActivityPage> {
    return this.store.query(query);
  }

  flush(): Promise<void> {
    return this.delivery.flush();
  }

  close(): Promise<void> {
    this.#closing ??= this.delivery.close().finally(this.#stopReporting);
    return this.#closing;
  }

  async #deliverAll(activities: readonly Activity[]): Promise<void> {
    if (this.delivery.deliverMany !== undefined) {
      if (this.#closing !== null)
        throw new ActivityLogError('DELIVERY_CLOSED', 'log() was called after close()');
      await this.delivery.deliverMany(activities);
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
    return this.delivery.deliver(activity);
  }
}

type Draft = { -readonly [K in keyof LogInput]?: LogInput[K] };

class Builder implements ActivityBuilder {
  readonly #logger: ActivityLog;
  readonly #draft: Readonly<Draft>;

  constructor(logger: ActivityLog, draft: Readonly<Draft>) {
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
