import type {
  EntityMetadata,
  EntitySchema,
  EntitySubscriberInterface,
  InsertEvent,
  ObjectLiteral,
  QueryRunner,
  RecoverEvent,
  RemoveEvent,
  SoftRemoveEvent,
  TransactionCommitEvent,
  TransactionRollbackEvent,
  TransactionStartEvent,
  UpdateEvent,
} from 'typeorm';
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

/** An entity, named by its class, its `EntitySchema` or its entity name. */
// biome-ignore lint/complexity/noBannedTypes: entity classes are matched by identity, whatever their constructor.
export type EntityTarget = Function | EntitySchema<ObjectLiteral> | string;

/** An entity to watch, alone (its options default) or with its options. */
export type TypeOrmModelEntry = EntityTarget | readonly [entity: EntityTarget, options: ModelLogOptions];

/** Options of {@link ActivityLogSubscriber}. */
export interface TypeOrmActivityLogOptions extends ModelChangeDefaults {
  readonly models: readonly TypeOrmModelEntry[];
}

interface WatchedEntity {
  readonly target: EntityTarget;
  readonly options: ResolvedModelOptions;
}

/** One transaction level of a query runner; its list is made when something is first logged in it. */
type Level = { pending: PendingActivities | null };

/**
 * A TypeORM entity subscriber that records every insert, update, remove, soft remove and recover
 * of the given entities, like Laravel's `LogsActivity` trait: subject = the entity (its name and
 * primary key), causer from the request context, `properties.attributes` / `properties.old` per
 * the entity's options. Changes made in a transaction — including the one `save()` opens on its own
 * — are delivered when it commits and dropped when it (or the savepoint they were made in) rolls
 * back.
 *
 * Query-builder writes and `repository.update/delete/softDelete/restore(criteria)` touch rows
 * without loading them, so they are not recorded per row: use `save`/`remove`/`softRemove`/
 * `recover`, or record them with {@link logBulkChange}.
 *
 * @example
 * import { ActivityLogSubscriber } from 'activity-log/typeorm';
 *
 * const subscriber = new ActivityLogSubscriber(activityLog, {
 *   exceptAttributes: ['updatedAt', 'password'],
 *   models: [[User, { logAll: true, logOnlyDirty: true }], [PostSchema, { logOnly: ['title'] }]],
 * });
 * const dataSource = new DataSource({ ...options, subscribers: [] });
 * await dataSource.initialize();
 * dataSource.subscribers.push(subscriber);
 */
export class ActivityLogSubscriber implements EntitySubscriberInterface<ObjectLiteral> {
  readonly #activityLog: ActivityLog;
  readonly #watched: readonly WatchedEntity[];
  readonly #onDeliveryError: (error: unknown) => void;
  readonly #resolved = new WeakMap<EntityMetadata, WatchedEntity | null>();
  readonly #levels = new WeakMap<QueryRunner, Level[]>();

  constructor(activityLog: ActivityLog, options: TypeOrmActivityLogOptions) {
    this.#activityLog = activityLog;
    this.#onDeliveryError = options.onDeliveryError ?? warnUndelivered;
    this.#watched = options.models.map((entry) => {
      const [target, modelOptions] = isEntryWithOptions(entry) ? entry : [entry, {}];
      return { target, options: resolveModelOptions(targetName(target), modelOptions, options) };
    });
  }

  /**
   * The after-commit list of the query runner's current transaction (or null outside one): for
   * logging by hand, e.g. a bulk change made inside the transaction.
   */
  activitiesAfterCommit(queryRunner: QueryRunner): PendingActivities | null {
    if (!queryRunner.isTransactionActive) return null;
    let levels = this.#levels.get(queryRunner);
    if (levels === undefined || levels.length === 0) {
      // The subscriber was added while this transaction was already open.
      levels = [{ pending: null }];
      this.#levels.set(queryRunner, levels);
    }
    let parent: PendingActivities | null = null;
    for (const level of levels) {
      level.pending ??= parent === null ? this.#activityLog.afterCommit() : parent.nested();
      parent = level.pending;
    }
    return parent;
  }

  afterTransactionStart(event: TransactionStartEvent): void {
    const levels = this.#levels.get(event.queryRunner);
    if (levels === undefined) this.#levels.set(event.queryRunner, [{ pending: null }]);
    else levels.push({ pending: null });
  }

  async afterTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    const level = this.#levels.get(event.queryRunner)?.pop();
    if (level?.pending == null) return;
    await level.pending.commit().catch(this.#onDeliveryError);
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    this.#levels.get(event.queryRunner)?.pop()?.pending?.rollback();
  }

  async afterInsert(event: InsertEvent<ObjectLiteral>): Promise<void> {
    await this.#record('created', event, event.entity, undefined);
  }

  async afterUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> {
    // Without the loaded row this was a criteria update (query builder): no per-row record.
    if (event.entity === undefined || event.databaseEntity === undefined) return;
    // A change made through a relation object (`post.author = other`) is a change of its join column.
    const updated = [
      ...event.updatedColumns,
      ...event.updatedRelations.flatMap((relation) => relation.joinColumns),
    ];
    await this.#record('updated', event, event.entity, event.databaseEntity, updated);
  }

  async afterRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> {
    await this.#recordRemoval('deleted', event);
  }

  async afterSoftRemove(event: SoftRemoveEvent<ObjectLiteral>): Promise<void> {
    await this.#recordRemoval('deleted', event);
  }

  async afterRecover(event: RecoverEvent<ObjectLiteral>): Promise<void> {
    await this.#recordRemoval('restored', event);
  }

  async #recordRemoval(event: ModelEvent, removal: RemoveEvent<ObjectLiteral>): Promise<void> {
    const entity = removal.entity ?? removal.databaseEntity;
    if (entity === undefined) return;
    const ids =
      removal.entityId !== undefined && removal.entityId !== null && typeof removal.entityId !== 'object'
        ? { id: removal.entityId as string | number }
        : undefined;
    await this.#record(
      event,
      removal,
      definedOver(removal.databaseEntity, entity),
      undefined,
      undefined,
      ids,
    );
  }

  /** Logging never fails the application's write: what cannot be recorded is reported. */
  async #record(...change: SeenChange): Promise<void> {
    try {
      await this.#recordChange(...change);
    } catch (error) {
      this.#onDeliveryError(error);
    }
  }

  async #recordChange(
    ...[event, source, entity, databaseEntity, updatedColumns, knownId]: SeenChange
  ): Promise<void> {
    const watched = this.#watchedFor(source.metadata);
    if (watched === null || !watched.options.events.has(event)) return;
    const change = describeChange(event, source.metadata, entity, databaseEntity, updatedColumns, knownId);
    if (change === null) return;
    const input = modelChangeInput(change, watched.options);
    if (input === null) return;
    const pending = this.activitiesAfterCommit(source.queryRunner);
    if (pending !== null) pending.log(input);
    else await this.#activityLog.log(input);
  }

  #watchedFor(metadata: EntityMetadata): WatchedEntity | null {
    let watched = this.#resolved.get(metadata);
    if (watched === undefined) {
      watched = this.#watched.find((candidate) => matches(candidate.target, metadata)) ?? null;
      this.#resolved.set(metadata, watched);
    }
    return watched;
  }
}

/** What a subscriber event says about one change: the event, where, the entity before and after. */
type SeenChange = [
  event: ModelEvent,
  source: { metadata: EntityMetadata; queryRunner: QueryRunner },
  entity: ObjectLiteral,
  databaseEntity: ObjectLiteral | undefined,
  updatedColumns?: readonly { propertyPath: string }[],
  knownId?: { id: string | number },
];

function describeChange(
  event: ModelEvent,
  metadata: EntityMetadata,
  entity: ObjectLiteral,
  databaseEntity: ObjectLiteral | undefined,
  updatedColumns: readonly { propertyPath: string }[] | undefined,
  knownId: { id: string | number } | undefined,
): ModelChange | null {
  const attributes: Record<string, unknown> = {};
  const old: Record<string, unknown> = {};
  for (const column of metadata.columns) {
    const key = column.propertyPath;
    const value = column.getEntityValue(entity);
    const previous = databaseEntity === undefined ? undefined : column.getEntityValue(databaseEntity);
    attributes[key] = value === undefined ? (previous ?? null) : value;
    if (databaseEntity !== undefined) old[key] = previous ?? null;
  }
  const subject = subjectOf(metadata, attributes, knownId);
  if (subject === null) return null;
  return {
    event,
    model: entity,
    subject,
    attributes,
    ...(event === 'updated' ? { old, changed: updatedColumns?.map((column) => column.propertyPath) } : {}),
  };
}

/** `entity`'s values over `base`'s, skipping the undefined ones (a removed entity loses its id). */
function definedOver(base: ObjectLiteral | undefined, entity: ObjectLiteral): ObjectLiteral {
  const merged: ObjectLiteral = { ...base };
  for (const [key, value] of Object.entries(entity)) if (value !== undefined) merged[key] = value;
  return merged;
}

function subjectOf(
  metadata: EntityMetadata,
  attributes: Readonly<Record<string, unknown>>,
  knownId: { id: string | number } | undefined,
): ModelRef | null {
  if (knownId !== undefined) return { type: metadata.name, id: knownId.id };
  const values = metadata.primaryColumns.map((column) => attributes[column.propertyPath]);
  if (values.length === 0 || values.some((value) => value === null || value === undefined)) return null;
  const id = values.length === 1 ? values[0] : values.map(String).join(',');
  return { type: metadata.name, id: typeof id === 'number' ? id : String(id) };
}

function isEntryWithOptions(
  entry: TypeOrmModelEntry,
): entry is readonly [entity: EntityTarget, options: ModelLogOptions] {
  return Array.isArray(entry);
}

function isEntitySchema(target: EntityTarget): target is EntitySchema<ObjectLiteral> {
  return typeof target === 'object' && target !== null && 'options' in target;
}

function targetName(target: EntityTarget): string {
  if (typeof target === 'string') return target;
  if (isEntitySchema(target)) return target.options.name;
  return target.name;
}

function matches(target: EntityTarget, metadata: EntityMetadata): boolean {
  if (typeof target === 'string') return metadata.name === target || metadata.targetName === target;
  if (isEntitySchema(target)) {
    return metadata.name === target.options.name || (target.options.target ?? null) === metadata.target;
  }
  return metadata.target === target;
}
