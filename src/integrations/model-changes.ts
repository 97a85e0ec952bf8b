import type { Activity, LogInput, ModelRef } from '../core/activity.js';
import { currentContext } from '../core/context.js';
import { ActivityLogError } from '../core/errors.js';
import { newBatchUuid } from '../core/ids.js';
import type { PendingActivities } from '../core/pending-activities.js';
import type { ActivityLog } from '../runtime/create-activity-log.js';

/** The model events the ORM integrations record. `restored` only happens to soft-delete models. */
export type ModelEvent = 'created' | 'updated' | 'deleted' | 'restored';

export const MODEL_EVENTS: readonly ModelEvent[] = Object.freeze([
  'created',
  'updated',
  'deleted',
  'restored',
]);

/**
 * What to record for one model, after Laravel's `LogsActivity` options. Without `logOnly` or
 * `logAll`, events are recorded with no attribute values.
 *
 * @example
 * const postOptions: ModelLogOptions = {
 *   logOnly: ['title', 'status'], logOnlyDirty: true, dontSubmitEmptyLogs: true, useLogName: 'posts',
 *   descriptionForEvent: (event) => `post ${event}`,
 * };
 */
export interface ModelLogOptions<Model = object> {
  /** Events to record (default: all of created, updated, deleted, restored). */
  readonly recordEvents?: readonly ModelEvent[];
  /** Attributes whose values are recorded; `'*'` means all. */
  readonly logOnly?: readonly string[];
  /** Attributes never recorded for this model. */
  readonly logExcept?: readonly string[];
  /** Record every attribute (same as `logOnly: ['*']`). */
  readonly logAll?: boolean;
  /** On update, record only the attributes that changed (with their previous values in `old`). */
  readonly logOnlyDirty?: boolean;
  /** Skip an update that changes none of the recorded attributes, and any event that would record none. */
  readonly dontSubmitEmptyLogs?: boolean;
  /** The `log_name` of this model's activities (default `default`). */
  readonly useLogName?: string;
  /** The description of each activity (default: the event name). Placeholders like `:subject.title` work. */
  readonly descriptionForEvent?: (event: ModelEvent, model: Model) => string;
}

/** Options shared by every model an integration watches. */
export interface ModelChangeDefaults {
  /** Attributes never recorded on any model, e.g. `['updatedAt', 'password']`. */
  readonly exceptAttributes?: readonly string[];
  /**
   * Called when a change could not be recorded: its activity was refused (properties over 64 KiB
   * with `logAll`…), or the activities of a committed transaction could not be delivered. The
   * application's write goes on either way: the error is never thrown into the ORM. Default: a
   * process warning.
   */
  readonly onDeliveryError?: (error: unknown) => void;
}

/** The default `onDeliveryError`. */
export function warnUndelivered(error: unknown): void {
  process.emitWarning(
    `activity-log: a model change could not be recorded: ${error instanceof Error ? error.message : String(error)}`,
  );
}

/** One change an ORM hook saw, in ORM-neutral terms. */
export interface ModelChange<Model = object> {
  readonly event: ModelEvent;
  readonly model: Model;
  readonly subject: ModelRef;
  /** The model's current attribute values (after the change). */
  readonly attributes: Readonly<Record<string, unknown>>;
  /** For updates: the values before the change. */
  readonly old?: Readonly<Record<string, unknown>> | undefined;
  /** For updates: the attributes that changed, when the ORM knows; otherwise they are compared. */
  readonly changed?: readonly string[] | undefined;
}

/** A model's options with the shared defaults folded in, checked once when hooks are attached. */
export interface ResolvedModelOptions<Model = object> {
  readonly events: ReadonlySet<ModelEvent>;
  readonly selects: (attribute: string) => boolean;
  readonly logOnlyDirty: boolean;
  readonly dontSubmitEmptyLogs: boolean;
  readonly logName: string | undefined;
  readonly describe: (event: ModelEvent, model: Model) => string;
}

/** Checks and folds the options once, so each hook call only applies them. */
export function resolveModelOptions<Model>(
  model: string,
  options: ModelLogOptions<Model> = {},
  defaults: ModelChangeDefaults = {},
): ResolvedModelOptions<Model> {
  const recordEvents = options.recordEvents ?? MODEL_EVENTS;
  for (const event of recordEvents) {
    if (!MODEL_EVENTS.includes(event)) {
      throw new ActivityLogError(
        'VALIDATION_FAILED',
        `recordEvents of ${model} has ${JSON.stringify(event)}; allowed: ${MODEL_EVENTS.join(', ')}`,
        { field: 'recordEvents' },
      );
    }
  }
  const logOnly = options.logOnly ?? [];
  const all = options.logAll === true || logOnly.includes('*');
  const only = new Set(logOnly);
  const except = new Set([...(options.logExcept ?? []), ...(defaults.exceptAttributes ?? [])]);
  return {
    events: new Set(recordEvents),
    selects: (attribute) => !except.has(attribute) && (all || only.has(attribute)),
    logOnlyDirty: options.logOnlyDirty === true,
    dontSubmitEmptyLogs: options.dontSubmitEmptyLogs === true,
    logName: options.useLogName,
    describe: options.descriptionForEvent ?? ((event) => event),
  };
}

/** Turns a model change into what `log()` takes, or null when the options say not to record it. */
export function modelChangeInput<Model>(
  change: ModelChange<Model>,
  options: ResolvedModelOptions<Model>,
): LogInput | null {
  if (!options.events.has(change.event)) return null;
  const selected = Object.keys(change.attributes).filter(options.selects);
  let properties: Record<string, unknown>;
  if (change.event === 'updated') {
    const old = change.old ?? {};
    const changed = new Set(
      change.changed ?? selected.filter((key) => !sameValue(change.attributes[key], old[key])),
    );
    const dirty = selected.filter((key) => changed.has(key));
    if (options.dontSubmitEmptyLogs && dirty.length === 0) return null;
    const recorded = options.logOnlyDirty ? dirty : selected;
    properties =
      recorded.length === 0
        ? {}
        : { attributes: pick(change.attributes, recorded), old: pick(old, recorded) };
  } else {
    if (options.dontSubmitEmptyLogs && selected.length === 0) return null;
    properties = selected.length === 0 ? {} : { attributes: pick(change.attributes, selected) };
  }
  return {
    description: options.describe(change.event, change.model),
    event: change.event,
    subject: change.subject,
    properties,
    ...(options.logName === undefined ? {} : { logName: options.logName }),
  };
}

function pick(values: Readonly<Record<string, unknown>>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) out[key] = values[key] === undefined ? null : values[key];
  return out;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    return JSON.stringify(a) === JSON.stringify(b);
  }
  return Object.is(a, b) || ((a === null || a === undefined) && (b === null || b === undefined));
}

/** A change made by one statement to many rows (a query-builder update, a bulk destroy). */
export interface BulkChange {
  /** The subject type of every affected row, e.g. `Post`. */
  readonly subjectType: string;
  /** Primary keys of the affected rows: one activity is recorded per id. */
  readonly ids: readonly (string | number)[];
  readonly event: ModelEvent | (string & {});
  /** New values set on every row. */
  readonly attributes?: Readonly<Record<string, unknown>>;
  /** Previous values, when the caller read them, keyed by id. */
  readonly old?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Default: `bulk <event>`. */
  readonly description?: string;
  readonly logName?: string;
}

/**
 * Logs a change that bypassed per-row hooks (`Model.update(values, { where })` in Sequelize,
 * `repository.update()` / query builders in TypeORM): one activity per affected id, all sharing
 * one `batch_uuid` (the surrounding one, if any), with `properties.bulk = true`. Pass `into` (an
 * after-commit list) when the statement ran inside a transaction.
 *
 * @example
 * const ids = (await Post.findAll({ where: { status: 'draft' }, attributes: ['id'] })).map((p) => p.id);
 * await Post.update({ status: 'archived' }, { where: { id: ids } });
 * await logBulkChange(activityLog, { subjectType: 'Post', ids, event: 'updated', attributes: { status: 'archived' } });
 */
export async function logBulkChange(
  activityLog: ActivityLog,
  change: BulkChange,
  options: { readonly into?: PendingActivities } = {},
): Promise<Activity[]> {
  if (change.ids.length === 0) return [];
  const batchUuid = currentContext()?.batchUuid ?? newBatchUuid();
  const inputs: LogInput[] = change.ids.map((id) => {
    const old = change.old?.[String(id)];
    return {
      description: change.description ?? `bulk ${change.event}`,
      event: change.event,
      subject: { type: change.subjectType, id },
      batchUuid,
      properties: {
        bulk: true,
        ...(change.attributes === undefined ? {} : { attributes: change.attributes }),
        ...(old === undefined ? {} : { old }),
      },
      ...(change.logName === undefined ? {} : { logName: change.logName }),
    };
  });
  return options.into === undefined ? activityLog.logMany(inputs) : options.into.logMany(inputs);
}
