import type { AsyncLocalStorage } from 'node:async_hooks';
import type { LogInput } from '../core/activity.js';
import { currentContext } from '../core/context.js';
import { newBatchUuid } from '../core/ids.js';
import type { PendingActivities } from '../core/pending-activities.js';
import type { ActivityLog } from '../runtime/create-activity-log.js';
import { type ModelEvent, modelChangeInput, type ResolvedModelOptions } from './model-changes.js';

export interface Watched {
  readonly name: string;
  readonly delegate: string;
  readonly idField: string;
  readonly softDelete: string | undefined;
  readonly options: ResolvedModelOptions<Record<string, unknown>>;
  /**
   * The scalar fields whose previous values an update or delete records (the selected ones and the
   * soft-delete field), or null when one of them cannot be compared for equality in a filter.
   */
  readonly oldFields: readonly string[] | null;
  /** The model's relation fields and the model each one leads to. */
  readonly relations: ReadonlyMap<string, string>;
}

/** Field types whose values read back compare equal in a filter (not Json, Float, Unsupported…). */
export const COMPARABLE_TYPES: ReadonlySet<string> = new Set([
  'String',
  'Int',
  'BigInt',
  'Boolean',
  'DateTime',
  'Decimal',
  'Bytes',
]);

/** How many times a conditional write is retried after a concurrent change before locking instead. */
const CONDITIONAL_ATTEMPTS = 2;

export type Row = Record<string, unknown>;
type Delegate = Record<string, (args?: unknown) => Promise<unknown>>;
export type Client = Record<string, unknown> & { $transaction: (...args: unknown[]) => Promise<unknown> };

/** What the operations of a `$transaction` share: its after-commit list and, if interactive, its client. */
export interface TransactionScope {
  readonly pending: PendingActivities;
  readonly tx: Client | null;
  /** Set while this module itself runs an operation, so the extension lets it through. */
  readonly passThrough?: boolean;
}

export interface Operation {
  readonly model: string;
  readonly operation: string;
  readonly args: Row;
  readonly query: (args: unknown) => Promise<unknown>;
}

/** Runs one watched write with the reads it needs and records what it changed. */
export class Recorder {
  constructor(
    readonly activityLog: ActivityLog,
    readonly base: Client,
    readonly scopes: AsyncLocalStorage<TransactionScope>,
    readonly onError: (error: unknown) => void,
    readonly limit: number,
    readonly returnsRows: boolean,
    readonly watched: ReadonlyMap<string, Watched>,
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
    if ((op.operation === 'update' || op.operation === 'delete') && model.oldFields !== null) {
      const conditional = await this.conditional(model, op, this.base, (args) => op.query(args));
      if (conditional !== null) {
        await this.deliverNow(conditional.inputs);
        return conditional.result;
      }
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
        const nested = this.nestedCreates(model, args);
        const added = nested.filter((field) => relationShape(args, field) === undefined);
        const returned = (await write(withRelations(args, added))) as Row;
        const result = omitKeys(returned, added);
        const row = await this.fullRow(model, args, result, readOne);
        const children = () =>
          nested.flatMap((field) => {
            const child = this.watched.get(model.relations.get(field) ?? '') as Watched;
            const rows = [returned[field] ?? []].flat() as Row[];
            return this.inputs(
              child,
              rows.map((created): Seen => ['created', created, undefined]),
            );
          });
        return {
          result,
          inputs: () => [...this.inputs(model, [['created', row, undefined]]), ...children()],
        };
      }
      case 'update':
      case 'delete':
      case 'upsert': {
        if (op.operation !== 'upsert' && model.oldFields !== null) {
          const conditional = await this.conditional(model, op, client, write);
          if (conditional !== null) return conditional;
        }
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

  /**
   * The relations of a `create` whose nested writes only create rows of a watched model
   * (`{ comments: { create: [...] } }`, `createMany`): after the write those relations hold exactly
   * the rows it created, so returning them with the parent records them without another read. A
   * relation the caller already shapes with a nested `select`/`include` is left alone.
   */
  nestedCreates(model: Watched, args: Row): string[] {
    const data = (args.data ?? {}) as Row;
    return [...model.relations].flatMap(([field, target]) => {
      const nested = data[field] as Row | undefined;
      if (nested === undefined || nested === null || !this.watched.has(target)) return [];
      const onlyCreates = Object.keys(nested).every((key) => key === 'create' || key === 'createMany');
      const shape = relationShape(args, field);
      return onlyCreates && (shape === undefined || shape === true) ? [field] : [];
    });
  }

  /**
   * An update or delete without a transaction: read the recorded fields, then write on condition
   * that they still hold those values (`where` AND each field equals what was read). The write is
   * one atomic statement, so what was read is exactly what it replaced. When another writer got in
   * between, the write matches nothing (P2025) and is tried again; null after the last attempt, and
   * when no row matched the read, so the caller takes the transactional path with the original
   * arguments (which then reports "not found" itself).
   */
  async conditional(
    model: Watched,
    op: Operation,
    client: Client,
    write: (args: unknown) => Promise<unknown>,
  ): Promise<Performed | null> {
    // A delete returns the row it removed; only a shaped result (`select`/`omit`) needs the read.
    const whole = op.args.select === undefined && op.args.omit === undefined;
    const fields = op.operation === 'delete' && whole ? [] : (model.oldFields ?? []);
    const where = op.args.where as Row;
    const delegate = delegateOf(client, model);
    for (let attempt = 0; attempt < CONDITIONAL_ATTEMPTS; attempt++) {
      let before: Row | undefined;
      let guarded: Row = where;
      if (fields.length > 0) {
        const select = Object.fromEntries(fields.map((field) => [field, true]));
        const found = (await this.passThrough(() => delegate.findMany!({ where, select, take: 1 }))) as Row[];
        before = found[0];
        if (before === undefined) return null;
        const unchanged = fields.map((field) => ({ [field]: { equals: before![field] } }));
        guarded = { ...where, AND: [...asList(where.AND), ...unchanged] };
      }
      let written: Row;
      try {
        written = (await write({ ...op.args, where: guarded })) as Row;
      } catch (error) {
        if (fields.length > 0 && (error as { code?: unknown }).code === 'P2025') continue;
        throw error;
      }
      const readOne = async (at: unknown) =>
        ((await this.passThrough(() => delegate.findMany!({ where: at, take: 1 }))) as Row[])[0];
      if (op.operation === 'delete') {
        const row = whole ? withoutRelations(op.args, written) : { ...written, ...before };
        return { result: written, inputs: () => this.inputs(model, [['deleted', row, undefined]]) };
      }
      const row = await this.fullRow(model, op.args, written, readOne);
      const old = before ?? {};
      return {
        result: written,
        inputs: () => this.inputs(model, [[updateEvent(model, old, row), row, old]]),
      };
    }
    return null;
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
    if (args.select === undefined && args.omit === undefined) return withoutRelations(args, result);
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
    // Marked like `logBulkChange` activities: one statement changed all of them.
    return this.inputs(model, seen).map((input) => ({
      ...input,
      batchUuid,
      properties: { bulk: true, ...input.properties },
    }));
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

/** How the caller's `select` or `include` returns a relation: undefined when it does not. */
function relationShape(args: Row, field: string): unknown {
  return ((args.select ?? args.include) as Row | undefined)?.[field];
}

/** The arguments with these relations added to what the write returns. */
function withRelations(args: Row, fields: readonly string[]): Row {
  if (fields.length === 0) return args;
  const key = args.select === undefined ? 'include' : 'select';
  const added = Object.fromEntries(fields.map((field) => [field, true]));
  return { ...args, [key]: { ...(args[key] as Row | undefined), ...added } };
}

function omitKeys(row: Row, keys: readonly string[]): Row {
  if (keys.length === 0) return row;
  const out = { ...row };
  for (const key of keys) delete out[key];
  return out;
}

/** A result without the relations `include` added to it. */
function withoutRelations(args: Row, result: Row): Row {
  const row = { ...result };
  for (const key of Object.keys((args.include as Row | undefined) ?? {})) delete row[key];
  return row;
}

function asList(value: unknown): unknown[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
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
