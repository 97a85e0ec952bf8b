import { AsyncLocalStorage } from 'node:async_hooks';
import { ActivityLogError } from '../core/errors.js';
import type { ActivityLog } from '../runtime/create-activity-log.js';
import {
  type ModelChangeDefaults,
  type ModelLogOptions,
  resolveModelOptions,
  warnUndelivered,
} from './model-changes.js';
import {
  type Client,
  COMPARABLE_TYPES,
  type Operation,
  Recorder,
  type TransactionScope,
  type Watched,
} from './prisma-recorder.js';

export type { ModelEvent, ModelLogOptions } from './model-changes.js';

/** One Prisma model's options: the shared model options, its key and its soft-delete field. */
export interface PrismaModelOptions extends ModelLogOptions<Record<string, unknown>> {
  /** The model's single-field primary key (default `id`). */
  readonly idField?: string;
  /** A nullable timestamp whose setting is a `deleted` and whose clearing is a `restored`. */
  readonly softDeleteField?: string;
}

/** Options of {@link withActivityLog}. */
export interface PrismaActivityLogOptions extends ModelChangeDefaults {
  /** The models to watch, by Prisma model name (`Post`), with their options. */
  readonly models: Readonly<Record<string, PrismaModelOptions>>;
  /**
   * Above this many affected rows a bulk operation records one summary activity (model, filter,
   * count) instead of one per row. Default 10,000.
   */
  readonly bulkRowLimit?: number;
}

export const DEFAULT_BULK_ROW_LIMIT = 10_000;

/** The little of a Prisma client this module uses; any generated client fits. */
export interface PrismaClientLike {
  $extends(extension: object): unknown;
  $transaction(...args: never[]): Promise<unknown>;
}

/** The part of a generated client's data model this module reads. */
interface RuntimeDataModel {
  readonly models: Readonly<
    Record<string, { readonly fields: readonly { name: string; kind: string; type: string }[] }>
  >;
}

/** See {@link Watched.oldFields}; null too when the client exposes no data model. */
function oldFields(
  fields: RuntimeDataModel['models'][string]['fields'] | undefined,
  selects: (field: string) => boolean,
  softDelete: string | undefined,
): readonly string[] | null {
  if (fields === undefined) return null;
  const recorded = fields.filter(
    (field) => field.kind !== 'object' && (selects(field.name) || field.name === softDelete),
  );
  const comparable = recorded.every((field) => field.kind === 'enum' || COMPARABLE_TYPES.has(field.type));
  return comparable ? recorded.map((field) => field.name) : null;
}

const WRITES = new Set([
  'create',
  'update',
  'upsert',
  'delete',
  'createMany',
  'createManyAndReturn',
  'updateMany',
  'updateManyAndReturn',
  'deleteMany',
]);

/**
 * A Prisma client extended to record the changes of the given models like the Sequelize and
 * TypeORM integrations: subject = the model name and primary key, causer and request facts from the
 * request context, `properties.attributes` / `properties.old` per the model's options. `update`,
 * `upsert` and `delete` read the previous row first, in the same transaction; bulk operations read
 * the affected rows first and record one activity per row under one `batch_uuid`. Changes made in a
 * `$transaction` of the returned client are delivered when it commits and dropped on rollback.
 * Recording never fails the write: what cannot be recorded goes to `onDeliveryError`.
 *
 * @example
 * import { withActivityLog } from 'activity-log/prisma';
 *
 * const prisma = withActivityLog(new PrismaClient({ adapter }), activityLog, {
 *   exceptAttributes: ['updatedAt'],
 *   models: { Post: { logAll: true, logOnlyDirty: true, softDeleteField: 'deletedAt' } },
 * });
 */
export function withActivityLog<C extends PrismaClientLike>(
  prisma: C,
  activityLog: ActivityLog,
  options: PrismaActivityLogOptions,
): C {
  const limit = options.bulkRowLimit ?? DEFAULT_BULK_ROW_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new ActivityLogError('VALIDATION_FAILED', `bulkRowLimit must be a whole number ≥ 1, got ${limit}`, {
      field: 'bulkRowLimit',
    });
  }
  const onError = options.onDeliveryError ?? warnUndelivered;
  const dataModel = (prisma as unknown as { _runtimeDataModel?: RuntimeDataModel })._runtimeDataModel;
  const watched = new Map<string, Watched>();
  for (const [name, modelOptions] of Object.entries(options.models)) {
    const resolved = resolveModelOptions(name, modelOptions, options);
    watched.set(name, {
      name,
      delegate: name.charAt(0).toLowerCase() + name.slice(1),
      idField: modelOptions.idField ?? 'id',
      softDelete: modelOptions.softDeleteField,
      options: resolved,
      oldFields: oldFields(dataModel?.models[name]?.fields, resolved.selects, modelOptions.softDeleteField),
      relations: new Map(
        (dataModel?.models[name]?.fields ?? [])
          .filter((field) => field.kind === 'object')
          .map((field) => [field.name, field.type]),
      ),
    });
  }
  const scopes = new AsyncLocalStorage<TransactionScope>();
  const base = prisma as unknown as Client;
  const provider = String((prisma as unknown as { _activeProvider?: string })._activeProvider ?? '');
  const recorder = new Recorder(activityLog, base, scopes, onError, limit, provider !== 'mysql', watched);

  const extended = prisma.$extends({
    query: {
      $allModels: {
        $allOperations(operation: Operation) {
          const model = watched.get(operation.model);
          if (model === undefined || !WRITES.has(operation.operation) || scopes.getStore()?.passThrough) {
            return operation.query(operation.args);
          }
          return recorder.run(model, operation);
        },
      },
    },
  }) as Client;

  const $transaction = (input: unknown, txOptions?: unknown): Promise<unknown> => {
    const pending = activityLog.afterCommit();
    const settle = async <T>(work: Promise<T>): Promise<T> => {
      let result: T;
      try {
        result = await work;
      } catch (error) {
        pending.rollback();
        throw error;
      }
      await pending.commit().catch(onError);
      return result;
    };
    if (typeof input === 'function') {
      return settle(
        extended.$transaction(
          (tx: Client) => scopes.run({ pending, tx }, () => (input as (tx: Client) => unknown)(tx)),
          txOptions,
        ),
      );
    }
    return settle(scopes.run({ pending, tx: null }, () => extended.$transaction(input, txOptions)));
  };
  return new Proxy(extended, {
    get: (target, key, receiver) =>
      key === '$transaction' ? $transaction : Reflect.get(target, key, receiver),
  }) as unknown as C;
}
