import { isDeepStrictEqual } from 'node:util';
import type { Model, ModelStatic, Transaction } from 'sequelize';
import type { ModelRef } from '../core/activity.js';
import type { PendingActivities } from '../core/pending-activities.js';
import type { ActivityLog } from '../runtime/create-activity-log.js';
import {
  type ModelChange,
  type ModelChangeDefaults,
  type ModelEvent,
  type ModelLogOptions,
  modelChangeInput,
  type ResolvedModelOptions,
  resolveModelOptions,
  warnUndelivered,
} from './model-changes.js';

export type { BulkChange, ModelEvent, ModelLogOptions } from './model-changes.js';
export { logBulkChange } from './model-changes.js';

/** A model to watch, alone (its options default) or with its options. */
export type SequelizeModelEntry =
  | ModelStatic<Model>
  | readonly [model: ModelStatic<Model>, options: ModelLogOptions<Model>];

/** Options of {@link logSequelizeModels}. */
export interface SequelizeActivityLogOptions extends ModelChangeDefaults {
  readonly models: readonly SequelizeModelEntry[];
}

/** What {@link logSequelizeModels} returns. */
export interface SequelizeActivityLogging {
  /**
   * The after-commit list of `transaction` (created on first use): for logging by hand, e.g. a
   * bulk change made inside the transaction, so it is delivered only if the transaction commits.
   */
  activitiesAfterCommit(transaction: Transaction): PendingActivities;
  /** Removes the hooks from every model. */
  detach(): void;
}

type HookName = 'beforeUpdate' | 'afterCreate' | 'afterUpdate' | 'afterDestroy' | 'afterRestore';
type InstanceHook = (
  instance: Model,
  options: { transaction?: Transaction | null },
) => Promise<void> | undefined;

interface HookableModel {
  readonly name: string;
  readonly primaryKeyAttributes: readonly string[];
  getAttributes(): Record<string, unknown>;
  addHook(hook: HookName, name: string, fn: InstanceHook): unknown;
  removeHook(hook: HookName, name: string): unknown;
}

const HOOK_EVENTS: readonly (readonly [HookName, ModelEvent])[] = [
  ['afterCreate', 'created'],
  ['afterUpdate', 'updated'],
  ['afterDestroy', 'deleted'],
  ['afterRestore', 'restored'],
];

let registrations = 0;

/**
 * Records every create, update, delete and restore of the given Sequelize models, like Laravel's
 * `LogsActivity` trait: subject = the model (its name and primary key), causer from the request
 * context, `properties.attributes` / `properties.old` per the model's options. Changes made inside
 * a transaction (passed as `transaction`, or filled in by Sequelize's CLS) are delivered only
 * when it commits, and dropped when it (or the savepoint they were made in) rolls back.
 *
 * Static bulk calls (`Model.update(values, { where })`, `Model.destroy({ where })`) run no per-row
 * hooks: pass `individualHooks: true`, or record them with {@link logBulkChange}.
 *
 * @example
 * import { logSequelizeModels } from 'activity-log/sequelize';
 *
 * logSequelizeModels(activityLog, {
 *   exceptAttributes: ['updatedAt', 'password'],
 *   models: [
 *     [User, { logAll: true, logOnlyDirty: true, useLogName: 'users' }],
 *     [Post, { logOnly: ['title', 'status'], dontSubmitEmptyLogs: true }],
 *   ],
 * });
 */
export function logSequelizeModels(
  activityLog: ActivityLog,
  options: SequelizeActivityLogOptions,
): SequelizeActivityLogging {
  const hookName = `activity-log:${++registrations}`;
  const pendingByTransaction = new WeakMap<Transaction, PendingActivities>();
  const onDeliveryError = options.onDeliveryError ?? warnUndelivered;

  function activitiesAfterCommit(transaction: Transaction): PendingActivities {
    let pending = pendingByTransaction.get(transaction);
    if (pending === undefined) {
      const parent = (transaction as Transaction & { parent?: Transaction | null }).parent ?? null;
      // A savepoint's activities join its parent's when it is released; a rolled-back savepoint
      // never runs its after-commit hooks, so its activities are never joined.
      const created = parent === null ? activityLog.afterCommit() : activitiesAfterCommit(parent).nested();
      // Sequelize runs afterCommit hooks even when COMMIT fails (they sit in a `finally`), so the
      // transaction's own commit() is wrapped instead: the activities follow only a COMMIT that
      // succeeded, and are dropped with one that failed (a serialization failure, a deferred
      // constraint), as with a rollback.
      const commit = transaction.commit.bind(transaction);
      transaction.commit = async () => {
        try {
          await commit();
        } catch (error) {
          created.rollback();
          throw error;
        }
        await created.commit().catch(onDeliveryError);
      };
      pendingByTransaction.set(transaction, created);
      pending = created;
    }
    return pending;
  }

  /**
   * Each instance's values before an update. With `individualHooks: true`, a static update whose
   * rows change differently saves them one by one before `afterUpdate`, and that save forgets
   * the previous values; they are kept here from `beforeUpdate` instead.
   */
  const before = new WeakMap<Model, Record<string, unknown>>();

  const attached: HookableModel[] = [];
  for (const entry of options.models) {
    const [model, modelOptions] = Array.isArray(entry)
      ? (entry as readonly [ModelStatic<Model>, ModelLogOptions<Model>])
      : [entry as ModelStatic<Model>, {}];
    const hookable = model as unknown as HookableModel;
    const resolved = resolveModelOptions(hookable.name, modelOptions, options);
    if (resolved.events.has('updated')) {
      hookable.addHook('beforeUpdate', hookName, (instance) => {
        before.set(instance, previousValues(hookable, instance));
        return undefined;
      });
    }
    for (const [hook, event] of HOOK_EVENTS) {
      if (!resolved.events.has(event)) continue;
      // Logging never fails the application's write: what cannot be recorded is reported.
      hookable.addHook(hook, hookName, (instance, hookOptions) =>
        record(event, hookable, resolved, instance, hookOptions.transaction).catch(onDeliveryError),
      );
    }
    attached.push(hookable);
  }

  async function record(
    event: ModelEvent,
    model: HookableModel,
    resolved: ResolvedModelOptions<Model>,
    instance: Model,
    transaction: Transaction | null | undefined,
  ): Promise<void> {
    const previous = before.get(instance);
    before.delete(instance);
    const input = modelChangeInput(describeChange(event, model, instance, previous), resolved);
    if (input === null) return;
    if (transaction !== null && transaction !== undefined) {
      activitiesAfterCommit(transaction).log(input);
      return;
    }
    await activityLog.log(input);
  }

  return {
    activitiesAfterCommit,
    detach() {
      for (const model of attached.splice(0)) {
        for (const [hook] of HOOK_EVENTS) model.removeHook(hook, hookName);
        model.removeHook('beforeUpdate', hookName);
      }
    },
  };
}

function previousValues(model: HookableModel, instance: Model): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const key of Object.keys(model.getAttributes())) values[key] = instance.previous(key as never);
  return values;
}

function describeChange(
  event: ModelEvent,
  model: HookableModel,
  instance: Model,
  previous: Readonly<Record<string, unknown>> | undefined,
): ModelChange<Model> {
  const attributes: Record<string, unknown> = {};
  for (const key of Object.keys(model.getAttributes())) attributes[key] = instance.getDataValue(key as never);
  if (event !== 'updated')
    return { event, model: instance, subject: subjectOf(model, attributes), attributes };
  const old = previous ?? previousValues(model, instance);
  const changed =
    previous === undefined
      ? (instance.changed() || []).map(String)
      : Object.keys(attributes).filter((key) => !isDeepStrictEqual(attributes[key], old[key]));
  return { event, model: instance, subject: subjectOf(model, attributes), attributes, old, changed };
}

function subjectOf(model: HookableModel, attributes: Readonly<Record<string, unknown>>): ModelRef {
  const keys = model.primaryKeyAttributes;
  const id = keys.length === 1 ? attributes[keys[0]!] : keys.map((key) => String(attributes[key])).join(',');
  return { type: model.name, id: typeof id === 'number' ? id : String(id) };
}
