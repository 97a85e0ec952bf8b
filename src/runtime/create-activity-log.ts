import { type Config, type ConfigOverrides, loadConfig } from '../config/config.js';
import { defaultModelResolver, type LogInput, type ModelResolver } from '../core/activity.js';
import { type ActivityEventBus, createActivityEventBus } from '../core/activity-events.js';
import { currentContext } from '../core/context.js';
import type { Delivery } from '../core/delivery.js';
import { type ActivityLogger, createLogger } from '../core/logger.js';
import { secretKeyMatcher } from '../core/redact.js';
import { transactionTagOf } from '../core/transaction-tag.js';
import { MetricsCollector } from '../metrics/collector.js';
import { reportResilience } from '../resilience/report-resilience.js';
import { resilienceOf } from '../resilience/resilient-sink.js';
import type { ActivityPage, ActivityQuery, ActivityStore } from '../store/activity-store.js';
import { createStore } from '../store/create-store.js';
import { createDelivery, type DeliveryOptions } from './create-delivery.js';
import {
  runTagStatement,
  type SqlExecutor,
  type TagTransactionOptions,
  tagDialectOfSource,
} from './tag-transaction.js';

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
  /** Count into this collector (default: a new one); for a clock of its own, mostly in tests. */
  readonly collector?: MetricsCollector;
}

/** The activity log: build with {@link createActivityLog}. */
export interface ActivityLog extends ActivityLogger {
  /** Reads the log, newest first, with keyset paging. */
  query(query?: ActivityQuery): Promise<ActivityPage>;
  /**
   * Writes the request context (causer, IP, URL, method, user agent, batch) into the application's
   * running transaction, so that `activity-log capture` attributes every row change of that
   * transaction to it. Call it inside the transaction, before its changes; one statement.
   *
   * @example
   * await db.transaction().execute(async (trx) => {
   *   await activityLog.tagTransaction(trx);
   *   await trx.updateTable('orders').set({ status: 'paid' }).where('customer_id', '=', 7).execute();
   * });
   */
  tagTransaction(executor: SqlExecutor, options?: TagTransactionOptions): Promise<void>;
}

/**
 * An activity log with the parts it was made of, for the code that runs it: a server probes the
 * store and the delivery, monitoring counts the delivery's events, a worker shares the store.
 */
export interface ComposedActivityLog {
  readonly activityLog: ActivityLog;
  readonly config: Config;
  readonly store: ActivityStore;
  readonly delivery: Delivery;
  /** The bus every part reports on (`ActivityEvents` lists what each one reports). */
  readonly events: ActivityEventBus;
  /** Counts what `events` reports, from the start; monitoring publishes and serves its figures. */
  readonly collector: MetricsCollector;
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
  return composeActivityLog(options).activityLog;
}

/**
 * Creates an activity log as {@link createActivityLog} does, and hands back the configuration,
 * store and delivery it is made of: what a process that also monitors or serves it needs.
 * `activityLog.close()` closes the delivery, and through it the store.
 *
 * @example
 * const { activityLog, config, delivery } = composeActivityLog();
 * const monitoring = startMonitoring({ config, delivery });
 */
export function composeActivityLog(options: ActivityLogOptions = {}): ComposedActivityLog {
  const config = loadConfig({
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.config === undefined ? {} : { overrides: options.config }),
  });
  const store = options.store ?? createStore(config.database);
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`));
  const delivery = (options.delivery ?? createDelivery)(config, store, {
    warn,
    bus: createActivityEventBus(),
  });
  const resilience = resilienceOf(delivery);
  const stopReporting = resilience === null ? () => undefined : reportResilience(resilience, warn);
  const collector = options.collector ?? new MetricsCollector();
  collector.listen(delivery.bus);
  collector.include({
    delivery,
    ...(resilience === null ? {} : { breakers: [resilience.breaker], spool: resilience.spool }),
  });
  const resolver = options.resolveModel ?? defaultModelResolver;
  const logger = createLogger({
    delivery,
    build: {
      resolveModel: resolver,
      isSecretKey: secretKeyMatcher(config.redactKeys),
    },
    afterClose: () => {
      stopReporting();
      if (options.collector === undefined) collector.close();
    },
  });
  const tagTransaction = (executor: SqlExecutor, tagOptions: TagTransactionOptions = {}) => {
    try {
      const tag = transactionTagOf(currentContext(), resolver, tagOptions.causer);
      return runTagStatement(executor, tag, tagOptions.dialect ?? tagDialectOfSource(config.capture.source));
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return {
    activityLog: withQuery(logger, store, tagTransaction),
    config,
    store,
    delivery,
    events: delivery.bus,
    collector,
  };
}

function withQuery(
  logger: ActivityLogger,
  store: ActivityStore,
  tagTransaction: ActivityLog['tagTransaction'],
): ActivityLog {
  return {
    tagTransaction,
    log: (input: LogInput) => logger.log(input),
    logMany: (inputs: readonly LogInput[]) => logger.logMany(inputs),
    activity: (logName?: string) => logger.activity(logName),
    withinBatch: <T>(fn: () => T | Promise<T>) => logger.withinBatch(fn),
    transaction: <T>(fn: () => T | Promise<T>) => logger.transaction(fn),
    afterCommit: () => logger.afterCommit(),
    query: (query?: ActivityQuery) => store.query(query),
    flush: () => logger.flush(),
    close: () => logger.close(),
  };
}
