import { AsyncLocalStorage } from 'node:async_hooks';
import type { LogInput } from '../core/activity.js';
import { currentContext } from '../core/context.js';
import { ActivityLogError } from '../core/errors.js';
import { newBatchUuid } from '../core/ids.js';
import type { PendingActivities } from '../core/pending-activities.js';
import type { ActivityLog } from '../runtime/create-activity-log.js';
import {
  type ModelChangeDefaults,
  type ModelEvent,
  type ModelLogOptions,
  modelChangeInput,
  type ResolvedModelOptions,
  resolveModelOptions,
  warnUndelivered,
} from './model-changes.js';

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

interface Watched {
  readonly name: string;
  readonly delegate: string;
  readonly idField: string;
  readonly softDelete: string | undefined;
  readonly options: ResolvedModelOptions<Record<string, unknown>>;
}

type Row = Record<string, unknown>;
type Delegate = Record<string, (args?: unknown) => Promise<unknown>>;
type Client = Record<string, unknown> & { $transaction: (...args: unknown[]) => Promise<unknown> };

/** What the operations of a `$transaction` share: its after-commit list and, if interactive, its client. */
interface TransactionScope {
  readonly pending: PendingActivities;
  readonly tx: Client | null;
  /** Set while this module itself runs an operation, so the extension lets it through. */
  readonly passThrough?: boolean;
}

interface Operation {
  readonly model: string;
  readonly operation: string;
  readonly args: Row;
  readonly query: (args: unknown) => Promise<unknown>;
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
  const watched = new Map<string, Watched>();
  for (const [name, modelOptions] of Object.entries(options.models)) {
    watched.set(name, {
      name,
      delegate: name.charAt(0).toLowerCase() + name.slice(1),
      idField: modelOptions.idField ?? 'id',
      softDelete: modelOptions.softDeleteField,
      options: resolveModelOptions(name, modelOptions, options),
    });
  }
  const scopes = new AsyncLocalStorage<TransactionScope>();
  const base = prisma as unknown as Client;
  const provider = String((prisma as unknown as { _activeProvider?: string })._activeProvider ?? '');
  const recorder = new Recorder(activityLog, base, scopes, onError, limit, provider !== 'mysql');

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

/** Runs one watched write with the reads it needs and records what it changed. */
class Recorder {
  constructor(
    readonly activityLog: ActivityLog,
    readonly base: Client,
    readonly scopes: AsyncLocalStorage<TransactionScope>,
    readonly onError: (error: unknown) => void,
    readonly limit: number,
    readonly returnsRows: boolean,
  ) {}

  async run(model: Watched, op: Operation): Promise<unknown> {
    const scope = this.scopes.getStore();
    if (scope !== undefined) {
      // Inside an interactive transaction the reads go through its client; in a batch there is none.
      const client = scope.tx ?? this.base;
      const { result, inputs } = await this.perform(model, op, client, (args) => op.query(args));
      this.deliver(() => scope.pending.logMany(inputs()));
      return result;
    }
    if (op.operation === 'create') {
      const { result, inputs } = await this.perform(model, op, this.base, (args) => op.query(args));
      await this.deliverNow(inputs);
      return result;
    }
    if (op.operation === 'update' || op.operation === 'upsert' || op.operation === 'delete') {
      // A batch transaction (read, then write) is as atomic as an interactive one and much cheaper.
      const delegate = delegateOf(this.base, model);
      const [found, written] = (await this.base.$transaction([
        delegate.findMany!({ where: op.args.where, take: 1 }),
        delegate[op.operation]!(op.args),
      ])) as [Row[], Row];
      const readOne = async (where: unknown) => ((await delegate.findMany!({ where, take: 1 })) as Row[])[0];
      const { result, inputs } = await this.singleRow(model, op, found[0], written, readOne);
      await this.deliverNow(inputs);
      return result;
    }
    const { result, inputs } = (await this.base.$transaction((tx: Client) =>
      this.perform(model, op, tx, (args) =>
        this.passThrough(() => delegateOf(tx, model)[op.operation]!(args)),
      ),
    )) as Performed;
    await this.deliverNow(inputs);
    return result;
  }

  async perform(
    model: Watched,
    op: Operation,
    client: Client,
    write: (args: unknown) => Promise<unknown>,
  ): Promise<Performed> {
    const delegate = delegateOf(client, model);
    const read = (args: unknown) => this.passThrough(() => delegate.findMany!(args)) as Promise<Row[]>;
    const readOne = async (where: unknown) => (await read({ where, take: 1 }))[0];
    const { args } = op;
    const where = args.where as Row | undefined;
    switch (op.operation) {
      case 'create': {
        const result = (await write(args)) as Row;
        const row = await this.fullRow(model, args, result, readOne);
        return { result, inputs: () => this.inputs(model, [['created', row, undefined]]) };
      }
      case 'update':
      case 'upsert':
      case 'delete': {
        const before = await readOne(where);
        return this.singleRow(model, op, before, (await write(args)) as Row, readOne);
      }
      case 'createMany':
      case 'createManyAndReturn': {
        const data = (Array.isArray(args.data) ? args.data : [args.data]) as Row[];
        if (data.length > this.limit) {
          const result = (await write(args)) as { count?: number } | Row[];
          const count = Array.isArray(result) ? result.length : (result.count ?? 0);
          return { result, inputs: () => [summary(model, 'created', undefined, count)] };
        }
        if (op.operation === 'createMany' && this.returnsRows) {
          const rows = (await this.passThrough(() => delegate.createManyAndReturn!(args))) as Row[];
          return {
            result: { count: rows.length },
            inputs: () =>
              this.bulkInputs(
                model,
                rows.map((row) => ['created', row, undefined]),
              ),
          };
        }
        const result = (await write(args)) as { count: number } | Row[];
        // Without returned rows (MySQL/MariaDB) only rows whose key the caller gave can be named.
        const rows = Array.isArray(result) ? result : data.filter((row) => row[model.idField] != null);
        const count = Array.isArray(result) ? result.length : result.count;
        return {
          result,
          inputs: () =>
            rows.length === count
              ? this.bulkInputs(
                  model,
                  rows.map((row) => ['created', row, undefined]),
                )
              : [summary(model, 'created', undefined, count)],
        };
      }
      case 'updateMany':
      case 'updateManyAndReturn': {
        const before = await read({ where, take: this.limit + 1 });
        const result = (await write(args)) as { count: number } | Row[];
        const count = Array.isArray(result) ? result.length : result.count;
        if (before.length > this.limit)
          return { result, inputs: () => [summary(model, 'updated', where, count)] };
        const ids = before.map((row) => row[model.idField]);
        const after = await read({ where: { [model.idField]: { in: ids } } });
        const byId = new Map(after.map((row) => [String(row[model.idField]), row]));
        return {
          result,
          inputs: () =>
            this.bulkInputs(
              model,
              before.flatMap((old): Seen[] => {
                const row = byId.get(String(old[model.idField]));
                return row === undefined ? [] : [[updateEvent(model, old, row), row, old]];
              }),
            ),
        };
      }
      case 'deleteMany': {
        const before = await read({ where, take: this.limit + 1 });
        const result = (await write(args)) as { count: number };
        if (before.length > this.limit)
          return { result, inputs: () => [summary(model, 'deleted', where, result.count)] };
        return {
          result,
          inputs: () =>
            this.bulkInputs(
              model,
              before.map((row) => ['deleted', row, undefined]),
            ),
        };
      }
      default:
        return { result: await write(args), inputs: () => [] };
    }
  }

  async singleRow(
    model: Watched,
    op: Operation,
    before: Row | undefined,
    result: Row,
    readOne: (where: unknown) => Promise<Row | undefined>,
  ): Promise<Performed> {
    if (op.operation === 'delete') {
      return {
        result,
        inputs: () => this.inputs(model, before === undefined ? [] : [['deleted', before, undefined]]),
      };
    }
    const row = await this.fullRow(model, op.args, result, readOne);
    const event: ModelEvent = before === undefined ? 'created' : updateEvent(model, before, row);
    return { result, inputs: () => this.inputs(model, [[event, row, before]]) };
  }

  /** The row with every scalar field, when `select`/`omit`/`include` shaped the result. */
  async fullRow(
    model: Watched,
    args: Row,
    result: Row,
    readOne: (where: unknown) => Promise<Row | undefined>,
  ) {
    if (args.select === undefined && args.omit === undefined) {
      const row = { ...result };
      for (const key of Object.keys((args.include as Row | undefined) ?? {})) delete row[key];
      return row;
    }
    const id = result[model.idField];
    if (id === undefined) return result;
    return (await readOne({ [model.idField]: id })) ?? result;
  }

  inputs(model: Watched, seen: readonly Seen[]): LogInput[] {
    return seen.flatMap(([event, row, old]) => {
      const input = modelChangeInput(
        {
          event,
          model: row,
          subject: { type: model.name, id: subjectId(row[model.idField]) },
          attributes: row,
          old,
        },
        model.options,
      );
      return input === null ? [] : [input];
    });
  }

  bulkInputs(model: Watched, seen: readonly Seen[]): LogInput[] {
    const batchUuid = currentContext()?.batchUuid ?? newBatchUuid();
    return this.inputs(model, seen).map((input) => ({ ...input, batchUuid }));
  }

  /** Prisma runs a query when it is awaited, so the await must happen inside the marked scope. */
  passThrough<T>(fn: () => Promise<T>): Promise<T> {
    const scope = this.scopes.getStore();
    const marked = { pending: scope?.pending as PendingActivities, tx: scope?.tx ?? null, passThrough: true };
    return this.scopes.run(marked, async () => await fn());
  }

  deliver(fn: () => unknown): void {
    try {
      fn();
    } catch (error) {
      this.onError(error);
    }
  }

  async deliverNow(inputs: () => LogInput[]): Promise<void> {
    try {
      const built = inputs();
      if (built.length > 0) await this.activityLog.logMany(built);
    } catch (error) {
      this.onError(error);
    }
  }
}

type Seen = [event: ModelEvent, row: Row, old: Row | undefined];
interface Performed {
  readonly result: unknown;
  readonly inputs: () => LogInput[];
}

function delegateOf(client: Client, model: Watched): Delegate {
  return client[model.delegate] as Delegate;
}

function updateEvent(model: Watched, before: Row, after: Row): ModelEvent {
  if (model.softDelete === undefined) return 'updated';
  const was = before[model.softDelete] ?? null;
  const is = after[model.softDelete] ?? null;
  if (was === null && is !== null) return 'deleted';
  if (was !== null && is === null) return 'restored';
  return 'updated';
}

function subjectId(id: unknown): string | number {
  return typeof id === 'number' ? id : String(id);
}

/** One activity standing for a bulk operation too large to record row by row. */
function summary(model: Watched, event: ModelEvent, where: Row | undefined, count: number): LogInput {
  return {
    description: `bulk ${event}`,
    event,
    batchUuid: currentContext()?.batchUuid ?? newBatchUuid(),
    properties: { bulk: true, model: model.name, filter: jsonSafe(where ?? {}), count },
    ...(model.options.logName === undefined ? {} : { logName: model.options.logName }),
  };
}

function jsonSafe(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, inner) => (typeof inner === 'bigint' ? String(inner) : inner)),
  );
}
