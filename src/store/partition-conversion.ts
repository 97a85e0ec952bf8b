import { Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';
import {
  ACTIVITY_COLUMNS,
  ACTIVITY_INDEXES,
  type ActivityDatabase,
  derivedIdentifier,
  physicalIndexName,
  SEAL_COLUMNS,
  SEAL_SEQ_INDEX,
} from './activity-table.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import { addColumns } from './migrations/add-columns.js';
import { createActivityTable } from './migrations/create-activity-table.js';
import type { MigrationContext, TableLayout } from './migrations/migrate-schema.js';
import { type PartitionUnit, periodStart } from './partition-plan.js';
import type { StoreDialect } from './store-dialect.js';

/** Rows per INSERT … SELECT of the copy. */
const DEFAULT_COPY_CHUNK = 5000;
/** Periods a converted table starts with at most; older rows share the first partition. */
const MAX_FIRST_PARTITIONS = 600;

const COLUMNS: readonly string[] = [...ACTIVITY_COLUMNS, ...SEAL_COLUMNS].map((column) => column.name);

export interface ConversionOptions {
  /** Drop `<table>_unpartitioned` once the new table is in place. */
  readonly dropOld?: boolean;
  readonly chunkSize?: number;
  /** After each chunk copied, with the rows copied so far. */
  readonly onProgress?: (copied: number) => void;
}

export interface ConversionResult {
  /** False when the table was partitioned already. */
  readonly converted: boolean;
  /** Rows copied into the partitioned table. */
  readonly copied: number;
  /** The old table, kept under this name; null when dropped (or nothing was converted). */
  readonly keptAs: string | null;
}

/**
 * `migrate --to-partitioned`: an unpartitioned activity table becomes a partitioned one.
 *
 * 1. `<table>_partitioned` is created with the current schema, partitioned from the period of the
 *    oldest row (at most {@link MAX_FIRST_PARTITIONS} periods back) to `ACTIVITY_LOG_PARTITIONS_AHEAD`
 *    past the current one.
 * 2. The rows are copied along `(created_at, id)`, one INSERT … SELECT per chunk, skipping rows
 *    already copied: interrupted, it carries on from the newest row copied.
 * 3. Under a lock that keeps writers out of the old table (`LOCK TABLES … WRITE` on MySQL, `LOCK
 *    TABLE … IN EXCLUSIVE MODE` on PostgreSQL), rows written meanwhile are copied; if the two tables
 *    still count differently (a row written meanwhile with an older `created_at`, from a spool
 *    replay), every old row missing from the new table is copied too. Then the names are swapped:
 *    the old table becomes `<table>_unpartitioned` (and on PostgreSQL its indexes are renamed with
 *    it), the new one `<table>`.
 *
 * `<table>_seals`, `<table>_seals_pruned` and `<table>_migrations` stay as they are: the rows keep
 * their seals. The old table is dropped with `dropOld`, otherwise kept.
 */
export async function convertToPartitioned(
  config: DatabaseConfig,
  options: ConversionOptions = {},
): Promise<ConversionResult> {
  const dialect = DIALECT_REGISTRY[config.connection].create(config);
  const partitions = dialect.partitions;
  if (partitions === undefined) {
    throw new ActivityLogError(
      'CLI_USAGE',
      `--to-partitioned: a table on ${config.connection} cannot be partitioned (PostgreSQL, MySQL and MariaDB can)`,
      { field: '--to-partitioned' },
    );
  }
  if (config.partition === 'none') {
    throw new ActivityLogError(
      'CLI_USAGE',
      '--to-partitioned needs ACTIVITY_LOG_PARTITION=month or day: the partitions the table gets',
      { field: 'ACTIVITY_LOG_PARTITION' },
    );
  }
  const unit = config.partition;
  const db = new Kysely<ActivityDatabase>({ dialect: dialect.createKyselyDialect() });
  try {
    return await run({ db, dialect, table: config.table, unit, ahead: config.partitionsAhead }, options);
  } catch (error) {
    throw error instanceof ActivityLogError ? error : dialect.mapError(error);
  } finally {
    await db.destroy();
  }
}

interface Conversion {
  readonly db: Kysely<ActivityDatabase>;
  readonly dialect: StoreDialect;
  readonly table: string;
  readonly unit: PartitionUnit;
  readonly ahead: number;
}

async function run(conversion: Conversion, options: ConversionOptions): Promise<ConversionResult> {
  const { db, dialect, table } = conversion;
  const partitions = dialect.partitions!;
  const kept = derivedIdentifier(table, '_unpartitioned');
  if ((await partitions.list(db, table)).length > 0) {
    if (options.dropOld === true) await sql`DROP TABLE IF EXISTS ${sql.table(kept)}`.execute(db);
    return { converted: false, copied: 0, keptAs: null };
  }
  const target = derivedIdentifier(table, '_partitioned');
  if ((await partitions.list(db, target)).length === 0) await createTarget(conversion, target);

  const chunkSize = options.chunkSize ?? DEFAULT_COPY_CHUNK;
  let copied = await count(db, target);
  let last = await newestKey(db, target);
  for (;;) {
    const keys = await keysAfter(db, table, last, chunkSize);
    if (keys.length === 0) break;
    const upTo = keys.at(-1)!;
    const result = await copyRange(db, dialect, table, target, last, upTo);
    copied += result;
    last = upTo;
    options.onProgress?.(copied);
    if (keys.length < chunkSize) break;
  }

  await swap(conversion, target, kept, last, (rows) => {
    copied += rows;
    options.onProgress?.(copied);
  });
  if (options.dropOld === true) {
    await sql`DROP TABLE ${sql.table(kept)}`.execute(db);
    return { converted: true, copied, keptAs: null };
  }
  return { converted: true, copied, keptAs: kept };
}

/** The partitioned table, with the current schema's columns and indexes. */
async function createTarget(conversion: Conversion, target: string): Promise<void> {
  const { db, dialect, table, unit, ahead } = conversion;
  const { rows } = await sql<{
    oldest: unknown;
  }>`SELECT MIN(${sql.id('created_at')}) AS oldest FROM ${sql.table(table)}`.execute(db);
  const oldest =
    rows[0]?.oldest === null || rows[0]?.oldest === undefined
      ? null
      : dialect.decodeTimestamp(rows[0].oldest);
  const earliest = earliestPeriod(unit);
  const firstPeriod =
    oldest === null ? undefined : new Date(Math.max(periodStart(oldest, unit).getTime(), earliest.getTime()));
  const layout: TableLayout = { partition: unit, partitionsAhead: ahead, firstPeriod };
  const context: MigrationContext = { db, table: target, dialect, layout };
  // Every column and index the migrations give the activity table (1: the table, 2: the seal's).
  await createActivityTable(context);
  await addColumns(SEAL_COLUMNS, [SEAL_SEQ_INDEX])(context);
}

/** {@link MAX_FIRST_PARTITIONS} periods before the current one. */
function earliestPeriod(unit: PartitionUnit): Date {
  const now = new Date();
  return unit === 'month'
    ? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - MAX_FIRST_PARTITIONS, 1))
    : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - MAX_FIRST_PARTITIONS));
}

interface Key {
  readonly created_at: unknown;
  readonly id: string;
}

async function count(db: Kysely<ActivityDatabase>, table: string): Promise<number> {
  const { rows } = await sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM ${sql.table(table)}`.execute(
    db,
  );
  return Number(rows[0]?.n ?? 0);
}

async function newestKey(db: Kysely<ActivityDatabase>, table: string): Promise<Key | null> {
  const rows = await db
    .selectFrom(table)
    .select(['created_at', 'id'])
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .execute();
  return rows[0] ?? null;
}

function afterKey(key: Key | null) {
  if (key === null) return sql`1 = 1`;
  return sql`(${sql.id('created_at')} > ${key.created_at} OR (${sql.id('created_at')} = ${key.created_at} AND ${sql.id(
    'id',
  )} > ${key.id}))`;
}

function upToKey(key: Key) {
  return sql`(${sql.id('created_at')} < ${key.created_at} OR (${sql.id('created_at')} = ${key.created_at} AND ${sql.id(
    'id',
  )} <= ${key.id}))`;
}

async function keysAfter(
  db: Kysely<ActivityDatabase>,
  table: string,
  after: Key | null,
  limit: number,
): Promise<Key[]> {
  const { rows } = await sql<Key>`SELECT ${sql.id('created_at')}, ${sql.id('id')} FROM ${sql.table(table)}
    WHERE ${afterKey(after)} ORDER BY ${sql.id('created_at')}, ${sql.id('id')} LIMIT ${limit}`.execute(db);
  return rows;
}

const columnList = () => sql.join(COLUMNS.map((column) => sql.id(column)));

/**
 * The dialect's skip-duplicates clause for an INSERT … SELECT into `target`. MySQL's `ON DUPLICATE
 * KEY UPDATE id = id` is ambiguous when the SELECT reads a table with an `id` too, so there the
 * column is named with its table.
 */
function skipDuplicates(dialect: StoreDialect, target: string) {
  if (!dialect.skipDuplicateIdClause.startsWith('ON DUPLICATE KEY'))
    return sql.raw(dialect.skipDuplicateIdClause);
  const id = sql.ref(`${target}.id`);
  return sql`ON DUPLICATE KEY UPDATE ${id} = ${id}`;
}

/** Copies the rows of `source` after `after` up to `upTo` into `target`; resolves to the rows stored. */
async function copyRange(
  db: Kysely<ActivityDatabase>,
  dialect: StoreDialect,
  source: string,
  target: string,
  after: Key | null,
  upTo: Key | null,
): Promise<number> {
  const result = await sql`INSERT INTO ${sql.table(target)} (${columnList()})
    SELECT ${columnList()} FROM ${sql.table(source)} WHERE ${afterKey(after)}${upTo === null ? sql`` : sql` AND ${upToKey(upTo)}`}
    ${skipDuplicates(dialect, target)}`.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

/** The rows of `table` that `target` lacks, whatever their place in `(created_at, id)`. */
async function copyMissing(
  db: Kysely<ActivityDatabase>,
  dialect: StoreDialect,
  table: string,
  target: string,
) {
  const result = await sql`INSERT INTO ${sql.table(target)} (${columnList()})
    SELECT ${sql.join(COLUMNS.map((column) => sql.ref(`o.${column}`)))} FROM ${sql.table(table)} AS ${sql.id('o')}
    WHERE NOT EXISTS (SELECT 1 FROM ${sql.table(target)} AS ${sql.id('n')} WHERE ${sql.ref('n.id')} = ${sql.ref('o.id')}
      AND ${sql.ref('n.created_at')} = ${sql.ref('o.created_at')})
    ${skipDuplicates(dialect, target)}`.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

/** The last rows copied and the names swapped while writers wait. */
async function swap(
  conversion: Conversion,
  target: string,
  kept: string,
  last: Key | null,
  onCopied: (rows: number) => void,
): Promise<void> {
  const { db, dialect, table } = conversion;
  if (dialect.schema.indexNamesArePerTable) {
    // MySQL: LOCK TABLES holds both tables for this session, but RENAME TABLE is refused under it
    // (MariaDB). So the catch-up runs locked, and the rename (atomic for both names) right after
    // UNLOCK; what a writer stored in the old table in between is copied after the rename, from
    // the old table, which no one writes to any more.
    let lockedRows = 0;
    let lockedLast: Key | null = null;
    await db.connection().execute(async (connection) => {
      await sql`LOCK TABLES ${sql.table(table)} WRITE, ${sql.table(table)} AS ${sql.id('o')} READ, ${sql.table(
        target,
      )} WRITE, ${sql.table(target)} AS ${sql.id('n')} READ`.execute(connection);
      try {
        onCopied(await copyRange(connection, dialect, table, target, last, null));
        lockedRows = await count(connection, table);
        if (lockedRows !== (await count(connection, target))) {
          onCopied(await copyMissing(connection, dialect, table, target));
        }
        lockedLast = await newestKey(connection, table);
      } finally {
        await sql`UNLOCK TABLES`.execute(connection);
      }
      await sql`RENAME TABLE ${sql.table(table)} TO ${sql.table(kept)}, ${sql.table(target)} TO ${sql.table(
        table,
      )}`.execute(connection);
    });
    const late = await copyRange(db, dialect, kept, table, lockedLast, null);
    onCopied(late);
    if ((await count(db, kept)) - lockedRows > late) onCopied(await copyMissing(db, dialect, kept, table));
    return;
  }
  // PostgreSQL: one transaction; the lock lets readers on but keeps writers waiting until it ends.
  await db.transaction().execute(async (trx) => {
    await sql`LOCK TABLE ${sql.table(table)} IN EXCLUSIVE MODE`.execute(trx);
    onCopied(await copyRange(trx, dialect, table, target, last, null));
    if ((await count(trx, table)) !== (await count(trx, target))) {
      onCopied(await copyMissing(trx, dialect, table, target));
    }
    const partitionList = await dialect.partitions!.list(trx, target);
    await sql`ALTER TABLE ${sql.table(table)} RENAME TO ${sql.id(kept)}`.execute(trx);
    await sql`ALTER TABLE ${sql.table(target)} RENAME TO ${sql.id(table)}`.execute(trx);
    // Index names are global to the schema: the old table's go with it, the new one's take theirs.
    for (const index of [...ACTIVITY_INDEXES, SEAL_SEQ_INDEX]) {
      await sql`ALTER INDEX IF EXISTS ${sql.id(physicalIndexName(table, index.name, false))} RENAME TO ${sql.id(
        physicalIndexName(kept, index.name, false),
      )}`.execute(trx);
      await sql`ALTER INDEX ${sql.id(physicalIndexName(target, index.name, false))} RENAME TO ${sql.id(
        physicalIndexName(table, index.name, false),
      )}`.execute(trx);
    }
    // The partitions take the table's name too (`<table>_p202612`, `<table>_default`).
    for (const partition of partitionList) {
      const prefix = `${target}_`;
      if (!partition.name.startsWith(prefix)) continue;
      await sql`ALTER TABLE ${sql.id(partition.name)} RENAME TO ${sql.id(
        derivedIdentifier(table, `_${partition.name.slice(prefix.length)}`),
      )}`.execute(trx);
    }
  });
}
