import { randomInt } from 'node:crypto';
import { CompiledQuery, Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { type Activity, CREATED_AT_MAX_MS, CREATED_AT_MIN_MS, invalid, LIMITS } from '../core/activity.js';
import {
  ACTIVITY_FIELDS,
  type ActivityFieldDefinition,
  type ActivityProperty,
  FILTER_FIELDS,
  type FilterValues,
} from '../core/activity-fields.js';
import { propertiesJson } from '../core/canonical-encoding.js';
import { ActivityLogError } from '../core/errors.js';
import { checkErasableFields, type ErasableField } from '../integrity/activity-leaf.js';
import { decodeActivityRow } from './activity-row-codec.js';
import {
  type ActivityPage,
  type ActivityQuery,
  type ActivityStore,
  DEFAULT_QUERY_LIMIT,
  MAX_PRUNE_CHUNK,
  MAX_QUERY_LIMIT,
  type MigrateResult,
  type PruneOptions,
  type StoreCapabilities,
} from './activity-store.js';
import type { ActivityColumn, ActivityDatabase, ActivityRow } from './activity-table.js';
import { ACTIVITY_MIGRATIONS } from './migrations/activity-migrations.js';
import { migrateSchema, type TableLayout, UNPARTITIONED } from './migrations/migrate-schema.js';
import { pruneActivities } from './prune-activities.js';
import { decodeCursor, encodeCursor, type QueryCursor } from './query-cursor.js';
import {
  CHAIN_HEAD_BUSY,
  insertSeal,
  type LeafedActivity,
  leafedActivity,
  lockChainHead,
  type SealTarget,
  sealOver,
  stampPlaceholder,
  tryLockChainHead,
} from './seal-table.js';
import type { StoreDialect } from './store-dialect.js';

/** How a store seals what it writes (`ACTIVITY_LOG_SEAL`, `ACTIVITY_LOG_ERASABLE_FIELDS`). */
export interface SealOptions {
  /** Every INSERT that stores new rows appends a seal in the same transaction. */
  readonly seal: boolean;
  /** Columns committed by salted hash in each row's leaf. */
  readonly erasableFields: readonly ErasableField[];
}

/** The seal options of a database configuration. */
export function sealOptionsOf(config: Pick<DatabaseConfig, 'seal' | 'erasableFields'>): SealOptions {
  return { seal: config.seal === 'on', erasableFields: checkErasableFields(config.erasableFields) };
}

const NO_SEAL: SealOptions = Object.freeze({ seal: false, erasableFields: Object.freeze([]) });

/** Rows hashed between two turns of the event loop while a sealed insert makes its leaves. */
const LEAVES_PER_TURN = 64;

/** The rows of a sealed insert by id (the first of a repeated id), each with its salt and leaf. */
type LeafedRows = Map<string, LeafedActivity>;

/** A sealed insert under way: its transaction, its rows, and the ids a statement of it has sealed. */
interface SealedBatch {
  readonly trx: Kysely<ActivityDatabase>;
  readonly activities: readonly Activity[];
  readonly leafed: LeafedRows;
  readonly returning: boolean;
  readonly sealed: Set<string>;
}

/** Times a sealed insert runs when the server keeps choosing it to break a deadlock. */
const DEADLOCK_ATTEMPTS = 5;

/** Placeholder `seal_seq`s are drawn from -1 down to -(2^47 - 1), never a seal's. */
const PLACEHOLDER_RANGE = 2 ** 47;

const DEFAULT_PRUNE_CHUNK = 1000;
/** Statement text an INSERT row costs beyond its long values (placeholders, quotes, short fields). */
const ROW_OVERHEAD_CHARS = 400;
const INSERT_SQL_CACHE_SIZE = 8;

const COLUMN_NAMES: readonly ActivityColumn[] = ACTIVITY_FIELDS.map((field) => field.column);

/** Each exact-match filter and the column it compares. */
const FILTER_COLUMNS: ReadonlyArray<readonly [keyof FilterValues, ActivityColumn]> = FILTER_FIELDS.map(
  (field) => [field.property, field.column] as const,
);

/** How a field's value becomes an INSERT parameter, in column order. */
const PARAMETER_KINDS = ACTIVITY_FIELDS.map((field) => [field.property, field.kind] as const);

/** Fields long enough to count towards a statement's size one by one. */
const LONG_PROPERTIES: readonly ActivityProperty[] = ACTIVITY_FIELDS.filter(
  (field) => field.kind === 'text' || ((field as ActivityFieldDefinition).maxChars ?? 0) > LIMITS.nameChars,
).map((field) => field.property);

/**
 * The {@link ActivityStore} for every SQL dialect: the SQL that is the same everywhere lives here,
 * and the differences come from the {@link StoreDialect}. Methods map driver errors to coded
 * {@link ActivityLogError}s and never retry.
 *
 * @example
 * const store = new KyselyStore(createSqliteDialect(config.database), config.database.table);
 * await store.migrate();
 * await store.insertMany(activities);
 * const { data, nextCursor } = await store.query({ logName: 'orders', limit: 100 });
 */
export class KyselyStore implements ActivityStore {
  readonly capabilities: StoreCapabilities;
  readonly #dialect: StoreDialect;
  readonly #table: string;
  readonly #db: Kysely<ActivityDatabase>;
  readonly #insertSqlCache = new Map<string, string>();
  readonly #seal: SealOptions;
  readonly #layout: TableLayout;
  #closed = false;

  constructor(
    dialect: StoreDialect,
    table: string,
    seal: SealOptions = NO_SEAL,
    layout: TableLayout = UNPARTITIONED,
  ) {
    this.capabilities = dialect.capabilities;
    this.#dialect = dialect;
    this.#table = table;
    this.#seal = seal;
    this.#layout = layout;
    this.#db = new Kysely<ActivityDatabase>({ dialect: dialect.createKyselyDialect() });
  }

  migrate(): Promise<MigrateResult> {
    return this.#run(() =>
      migrateSchema(this.#db, this.#dialect, this.#table, ACTIVITY_MIGRATIONS, this.#layout),
    );
  }

  insertMany(activities: readonly Activity[]): Promise<number> {
    return this.#run(async () => {
      if (activities.length === 0) return 0;
      if (this.#seal.seal) return this.#insertSealed(activities);
      const first = this.#insertChunk(activities, 0);
      if (first.end === activities.length) return this.#insert(this.#db, first);
      // More than one statement: one transaction, so a refused row in a later chunk leaves
      // nothing of the batch stored (a sync logMany() or ingest request is all or none).
      return this.#db.transaction().execute(async (trx) => {
        let inserted = await this.#insert(trx, first);
        for (let start = first.end; start < activities.length; ) {
          const chunk = this.#insertChunk(activities, start);
          inserted += await this.#insert(trx, chunk);
          start = chunk.end;
        }
        return inserted;
      });
    });
  }

  async #insert(
    db: Kysely<ActivityDatabase>,
    chunk: { readonly rows: number; readonly parameters: unknown[] },
  ): Promise<number> {
    const result = await db.executeQuery(
      CompiledQuery.raw(this.#insertSql(chunk.rows, 'plain'), chunk.parameters),
    );
    return Number(result.numAffectedRows ?? 0n);
  }

  /**
   * One transaction: each chunk's INSERT (every row with a fresh salt and the `seal_seq` of the
   * seal it will join) and one seal per statement that stored rows, appended after the chain head.
   * Which rows a statement stored is told by their salt: `RETURNING id, seal_salt` where the
   * server has it, a lookup of the chunk's ids in the same transaction where not (MySQL). A row
   * skipped as a duplicate comes back with the salt it was stored with before, never this
   * insert's, and keeps its own seal. Leaves are made before the transaction.
   *
   * The head is locked before the first INSERT, unless another writer holds it where the dialect
   * lets inserts overlap (`StoreDialect.overlapSealedInserts`): then the rows are written while it
   * does, with placeholder `seal_seq`s, and stamped once this transaction holds the head.
   *
   * Read committed (SQLite has one writer and ignores it), so that under MySQL no statement locks
   * rows it only scans.
   */
  async #insertSealed(activities: readonly Activity[]): Promise<number> {
    const target: SealTarget = { table: this.#table, dialect: this.#dialect };
    const leafed = await this.#leaves(activities);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#sealedTransaction(activities, leafed, target);
      } catch (error) {
        // Two writers storing the same rows at once (a replay racing its original) can deadlock
        // when one holds the head and waits for a row the other stored while waiting for the
        // head; the server rolls one back, which then runs again and finds those rows stored.
        if (attempt >= DEADLOCK_ATTEMPTS || !this.#dialect.isDeadlock(error)) throw error;
      }
    }
  }

  #sealedTransaction(
    activities: readonly Activity[],
    leafed: LeafedRows,
    target: SealTarget,
  ): Promise<number> {
    return this.#db
      .transaction()
      .setIsolationLevel('read committed')
      .execute(async (trx) => {
        const batch: SealedBatch = {
          trx,
          activities,
          leafed,
          returning: await this.#dialect.insertReturning(trx),
          sealed: new Set<string>(),
        };
        let head = (await this.#dialect.overlapSealedInserts(trx))
          ? await tryLockChainHead(trx, target)
          : await lockChainHead(trx, target);
        if (head === CHAIN_HEAD_BUSY) return this.#insertBehindHead(batch, target);
        const sealedAt = new Date();
        let inserted = 0;
        for (let start = 0; start < activities.length; ) {
          const chunk = await this.#insertSealedChunk(batch, start, (head?.seq ?? 0) + 1);
          if (chunk.rows.length > 0) {
            head = sealOver(head, chunk.rows, sealedAt);
            await insertSeal(trx, target, head, this.#seal.erasableFields);
            inserted += chunk.rows.length;
          }
          start = chunk.end;
        }
        return inserted;
      });
  }

  /**
   * The sealed insert while another transaction holds the chain head: every chunk is written
   * with a placeholder `seal_seq` of its own, then the head is locked (waiting for the holder to
   * commit) and each chunk's rows are stamped with their seal as it is appended. A stamp that
   * finds other than the rows its INSERT stored fails the transaction, so nothing of the batch
   * is stored half-sealed.
   */
  async #insertBehindHead(batch: SealedBatch, target: SealTarget): Promise<number> {
    const pending: { placeholder: number; rows: LeafedActivity[] }[] = [];
    for (let start = 0; start < batch.activities.length; ) {
      const placeholder = -randomInt(1, PLACEHOLDER_RANGE);
      const chunk = await this.#insertSealedChunk(batch, start, placeholder);
      if (chunk.rows.length > 0) pending.push({ placeholder, rows: chunk.rows });
      start = chunk.end;
    }
    if (pending.length === 0) return 0;
    let head = await lockChainHead(batch.trx, target);
    const sealedAt = new Date();
    let inserted = 0;
    for (const { placeholder, rows } of pending) {
      head = sealOver(head, rows, sealedAt);
      const stamped = await stampPlaceholder(batch.trx, target, placeholder, head.seq, rows.length);
      if (stamped !== rows.length) {
        throw new ActivityLogError(
          'STORE_FAILED',
          `sealing ${this.#table}: seal ${head.seq} stamped ${stamped} rows, not the ${rows.length} its INSERT stored; the batch was not stored`,
        );
      }
      await insertSeal(batch.trx, target, head, this.#seal.erasableFields);
      inserted += rows.length;
    }
    return inserted;
  }

  /**
   * One INSERT of the rows from `start` with `seal_seq` = `seq`, and those of them it stored that
   * no earlier statement of the batch sealed.
   */
  async #insertSealedChunk(
    batch: SealedBatch,
    start: number,
    seq: number,
  ): Promise<{ end: number; rows: LeafedActivity[] }> {
    const { trx, leafed, returning, sealed } = batch;
    const chunk = this.#insertChunk(batch.activities, start, { rows: leafed, seq });
    const text = this.#insertSql(chunk.rows, returning ? 'returning' : 'sealed');
    const result = await trx.executeQuery<{ id: string; seal_salt: string | null }>(
      CompiledQuery.raw(text, chunk.parameters),
    );
    const stored = returning ? result.rows : await this.#saltsOf(trx, chunk.ids);
    const rows: LeafedActivity[] = [];
    for (const row of stored) {
      const candidate = leafed.get(row.id);
      // An id repeated in the batch comes back (MariaDB, the lookup) with this insert's salt once
      // it is stored; only its first statement seals it.
      if (candidate === undefined || sealed.has(row.id) || candidate.saltHex !== row.seal_salt) continue;
      sealed.add(row.id);
      rows.push(candidate);
    }
    return { end: chunk.end, rows };
  }

  /**
   * Each row's salt and leaf, made before the transaction. Hashing a large batch takes tens of
   * milliseconds, so it gives way every {@link LEAVES_PER_TURN} rows: another insert of this
   * process that holds the chain head meanwhile gets its answers and commits, rather than holding
   * the lock, and every writer waiting for it, until this batch is hashed.
   */
  async #leaves(activities: readonly Activity[]): Promise<LeafedRows> {
    const leafed: LeafedRows = new Map();
    let made = 0;
    for (const activity of activities) {
      if (leafed.has(activity.id)) continue;
      leafed.set(activity.id, leafedActivity(activity, this.#seal.erasableFields));
      if (++made % LEAVES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    return leafed;
  }

  async #saltsOf(
    trx: Kysely<ActivityDatabase>,
    ids: readonly string[],
  ): Promise<readonly { id: string; seal_salt: string | null }[]> {
    return trx.selectFrom(this.#table).select(['id', 'seal_salt']).where('id', 'in', ids).execute();
  }

  query(query: ActivityQuery = {}): Promise<ActivityPage> {
    return this.#run(async () => {
      const limit = checkLimit(query.limit);
      const rows = await this.#selectPage(query, limit).execute();
      const page = rows.slice(0, limit);
      const data = page.map((row) => this.#toActivity(row));
      const erasedIds = new Set(page.filter((row) => Number(row.erased) === 1).map((row) => row.id));
      const last = data.at(-1);
      const nextCursor =
        rows.length > limit && last !== undefined
          ? encodeCursor({ createdAtMs: last.createdAt.getTime(), id: last.id })
          : null;
      return { data, nextCursor, erasedIds };
    });
  }

  /**
   * The SQL and parameters {@link query} runs for `query`, for EXPLAIN and for diagnostics.
   *
   * @throws ActivityLogError `VALIDATION_FAILED` for a bad `limit` or `cursor`, as `query` would.
   */
  compileQuery(query: ActivityQuery = {}): CompiledQuery {
    return this.#selectPage(query, checkLimit(query.limit)).compile();
  }

  prune(options: PruneOptions): Promise<number> {
    return this.#run(() =>
      pruneActivities(
        { db: this.#db, dialect: this.#dialect, table: this.#table },
        {
          ...options,
          before: checkDate('before', options.before),
          chunkSize: checkChunkSize(options.chunkSize),
        },
      ),
    );
  }

  ping(): Promise<void> {
    return this.#run(async () => {
      await sql`SELECT 1`.execute(this.#db);
    });
  }

  /** Releases the pool. Idempotent; any later call fails with `STORE_CLOSED`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#db.destroy();
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError();
    try {
      return await operation();
    } catch (error) {
      if (this.#closed && !(error instanceof ActivityLogError)) throw closedError(error);
      throw this.#dialect.mapError(error);
    }
  }

  /** The rows from `start` that fit one INSERT; with `sealed`, each with its salt and `seal_seq`. */
  #insertChunk(
    activities: readonly Activity[],
    start: number,
    sealed?: { readonly rows: LeafedRows; readonly seq: number },
  ): { end: number; rows: number; parameters: unknown[]; ids: string[] } {
    const { maxRowsPerInsert } = this.capabilities;
    const { maxInsertChars } = this.#dialect;
    const encodeTimestamp = this.#dialect.encodeTimestamp;
    const parameters: unknown[] = [];
    const ids: string[] = [];
    let chars = 0;
    let end = start;
    while (end < activities.length && end - start < maxRowsPerInsert) {
      const activity = activities[end]!;
      const values = activity as unknown as Readonly<Record<string, unknown>>;
      const properties = propertiesJson(activity);
      chars += ROW_OVERHEAD_CHARS + properties.length;
      for (const property of LONG_PROPERTIES) {
        chars += (values[property] as string | null)?.length ?? 0;
      }
      if (chars > maxInsertChars && end > start) break;
      for (const [property, kind] of PARAMETER_KINDS) {
        parameters.push(
          kind === 'json'
            ? properties
            : kind === 'timestamp'
              ? encodeTimestamp(values[property] as Date)
              : values[property],
        );
      }
      if (sealed !== undefined) {
        // A repeated id has the first one's salt: the row stored is the first of them.
        parameters.push(sealed.rows.get(activity.id)!.saltHex, sealed.seq);
        ids.push(activity.id);
      }
      end++;
    }
    return { end, rows: end - start, parameters, ids };
  }

  /**
   * Multi-row INSERT text, written directly rather than through the query builder, which spends
   * about 1.5 ms of CPU building and compiling a 1000-row insert on the hot write path. The text
   * depends only on the row count, so recent sizes are cached.
   */
  #insertSql(rowCount: number, form: 'plain' | 'sealed' | 'returning'): string {
    const key = `${form}:${rowCount}`;
    const cached = this.#insertSqlCache.get(key);
    if (cached !== undefined) return cached;
    const dialect = this.#dialect;
    const names: readonly string[] =
      form === 'plain' ? COLUMN_NAMES : [...COLUMN_NAMES, 'seal_salt', 'seal_seq'];
    const columns = names.map((name) => dialect.quoteIdentifier(name)).join(', ');
    const rows: string[] = [];
    let index = 0;
    for (let row = 0; row < rowCount; row++) {
      const placeholders: string[] = [];
      for (let column = 0; column < names.length; column++) {
        placeholders.push(dialect.placeholder(index++));
      }
      rows.push(`(${placeholders.join(', ')})`);
    }
    const returning =
      form === 'returning'
        ? ` RETURNING ${dialect.quoteIdentifier('id')}, ${dialect.quoteIdentifier('seal_salt')}`
        : '';
    const text = `INSERT INTO ${dialect.quoteIdentifier(this.#table)} (${columns}) VALUES ${rows.join(', ')} ${dialect.skipDuplicateIdClause}${returning}`;
    if (this.#insertSqlCache.size >= INSERT_SQL_CACHE_SIZE) {
      this.#insertSqlCache.delete(this.#insertSqlCache.keys().next().value!);
    }
    this.#insertSqlCache.set(key, text);
    return text;
  }

  /** Newest first by (created_at, id); one extra row tells whether another page follows. */
  #selectPage(query: ActivityQuery, limit: number) {
    const encode = this.#dialect.encodeTimestamp;
    let select = this.#db
      .selectFrom(this.#table)
      .select(COLUMN_NAMES)
      // A flag, not the commitments: the page says which rows were erased without carrying them.
      .select(sql<number | boolean>`${sql.ref('seal_commitments')} IS NOT NULL`.as('erased'));
    for (const [field, column] of FILTER_COLUMNS) {
      const value = query[field];
      if (value !== undefined) select = select.where(column, '=', value);
    }
    if (query.from !== undefined)
      select = select.where('created_at', '>=', encode(checkDate('from', query.from)));
    if (query.to !== undefined) select = select.where('created_at', '<', encode(checkDate('to', query.to)));
    if (query.cursor !== undefined) {
      const cursor: QueryCursor = decodeCursor(query.cursor);
      const createdAt = encode(new Date(cursor.createdAtMs));
      // Written as a range on created_at plus a tie-break, not as a row comparison, so every
      // dialect can seek the (…, created_at) index to the cursor.
      select = select.where((eb) =>
        eb.and([
          eb('created_at', '<=', createdAt),
          eb.or([eb('created_at', '<', createdAt), eb('id', '<', cursor.id)]),
        ]),
      );
    }
    return select
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1);
  }

  #toActivity(row: Pick<ActivityRow, ActivityColumn>): Activity {
    return decodeActivityRow(row, this.#dialect);
  }
}

function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_QUERY_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
    throw invalid('limit', `must be a whole number from 1 to ${MAX_QUERY_LIMIT} (got ${limit})`);
  }
  return limit;
}

function checkChunkSize(chunkSize: number | undefined): number {
  if (chunkSize === undefined) return DEFAULT_PRUNE_CHUNK;
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_PRUNE_CHUNK) {
    throw invalid('chunkSize', `must be a whole number from 1 to ${MAX_PRUNE_CHUNK} (got ${chunkSize})`);
  }
  return chunkSize;
}

/**
 * A bound outside the range `created_at` can hold selects the same rows as the range's edge, and
 * every dialect can store the edge (a year past 9999 or before 1 is garbled or refused otherwise).
 */
function checkDate(field: string, value: Date): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw invalid(field, 'must be a valid Date');
  }
  const ms = value.getTime();
  if (ms < CREATED_AT_MIN_MS) return new Date(CREATED_AT_MIN_MS);
  if (ms > CREATED_AT_MAX_MS) return new Date(CREATED_AT_MAX_MS);
  return value;
}

function closedError(cause?: unknown): ActivityLogError {
  return new ActivityLogError(
    'STORE_CLOSED',
    'the activity store was used after close(); create a new store',
    cause === undefined ? {} : { cause },
  );
}
