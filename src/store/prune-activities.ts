import { type Kysely, sql } from 'kysely';
import type { PruneOptions } from './activity-store.js';
import { type ActivityDatabase, sealsTableName } from './activity-table.js';
import {
  type PrunedWatermark,
  readPrunedSeals,
  recordPartlyPruned,
  recordWatermark,
  removePrunedSeals,
} from './seal-pruning.js';
import type { StoreDialect, StoredPartition } from './store-dialect.js';

/** Where a prune runs. */
export interface PruneTarget {
  readonly db: Kysely<ActivityDatabase>;
  readonly dialect: StoreDialect;
  readonly table: string;
}

/** Seals per `IN (…)` list. */
const SEALS_PER_STATEMENT = 1000;

/**
 * Retention, as `prune` and `serve`'s daily pass run it:
 *
 * 1. On a partitioned table (without `logName`), every range partition wholly older than
 *    `before` is dropped, one statement each, its rows counted first.
 * 2. What is left older than `before` (the boundary partition, rows in the catch-all, or the whole
 *    table when it is not partitioned) is deleted in chunks, oldest first.
 * 3. On a table with seals, a seal is pruned whole or not at all: the seals pruned are those
 *    before the first seal still holding a row from `before` on; rows older than `before` of later
 *    seals are kept until their seal's rows are all old. The newest seal pruned is recorded as the
 *    watermark (`<table>_seals_pruned`) before its rows go, so `verify` starts the chain there.
 *    A dropped partition may hold some rows of a later seal (a batch straddling the partition's
 *    bound): that seal is recorded as partly pruned, with the rows it loses, before the drop.
 *    With `logName`, only unsealed rows are deleted: a seal never loses rows by log name.
 */
export async function pruneActivities(
  target: PruneTarget,
  options: PruneOptions & { readonly chunkSize: number },
): Promise<number> {
  const { db, dialect, table } = target;
  const { before, logName, chunkSize } = options;
  const dryRun = options.dryRun === true;
  const cutoff = dialect.encodeTimestamp(before);

  const pruned = await readPrunedSeals(db, table);
  const watermark = pruned.watermark;
  const watermarkSeq = watermark?.seq ?? 0;
  const head = await headSeq(target);
  const sealed = head > watermarkSeq;
  /** The newest seal pruned whole once this pass is done. */
  let pruneToSeq = watermarkSeq;
  if (sealed && logName === undefined) {
    const { rows } = await sql<{ seq: number | string | null }>`SELECT MIN(${sql.id('seal_seq')}) AS seq
      FROM ${sql.table(table)} WHERE ${sql.id('created_at')} >= ${cutoff} AND ${sql.id('seal_seq')} > ${watermarkSeq}`.execute(
      db,
    );
    const firstKept = rows[0]?.seq;
    pruneToSeq = firstKept === null || firstKept === undefined ? head : Math.min(head, Number(firstKept) - 1);
  }

  const partitions = logName === undefined ? dialect.partitions : undefined;
  const droppable =
    partitions === undefined
      ? []
      : (await partitions.list(db, table)).filter(
          (partition): partition is StoredPartition & { to: Date } =>
            !partition.catchAll && partition.to !== null && partition.to <= before,
        );
  const droppedBefore = droppable.at(-1)?.to;

  let total = 0;
  if (!dryRun && sealed && droppedBefore !== undefined) {
    await recordStraddlingSeals(target, dialect.encodeTimestamp(droppedBefore), pruneToSeq);
  }
  let newWatermark: PrunedWatermark | null = watermark;
  if (!dryRun && sealed && pruneToSeq > watermarkSeq) {
    newWatermark = await recordWatermark(db, dialect, table, watermark, pruneToSeq);
  }
  for (const partition of droppable) {
    const rows = await countRows(target, partition.from, partition.to);
    if (!dryRun) await partitions!.drop(db, table, partition);
    total += rows;
    options.onPartition?.({ name: partition.name, rows });
  }

  // What is left older than the cutoff: rows without a seal, and rows of seals pruned whole.
  let olderRows = db.selectFrom(table).where('created_at', '<', cutoff);
  if (logName !== undefined) olderRows = olderRows.where('log_name', '=', logName);
  if (sealed) {
    olderRows =
      logName === undefined
        ? olderRows.where((eb) => eb.or([eb('seal_seq', 'is', null), eb('seal_seq', '<=', pruneToSeq)]))
        : olderRows.where('seal_seq', 'is', null);
  }
  if (dryRun && droppedBefore !== undefined) {
    olderRows = olderRows.where('created_at', '>=', dialect.encodeTimestamp(droppedBefore));
  }

  if (dryRun) {
    // Counted a chunk at a time along (created_at, id), as the delete walks them: one COUNT(*)
    // over millions of old rows would run into DB_QUERY_TIMEOUT_MS where the prune would not.
    let last: { readonly created_at: unknown; readonly id: string } | undefined;
    for (;;) {
      let chunk = olderRows.select(['created_at', 'id']);
      if (last !== undefined) {
        const after = last;
        chunk = chunk.where((eb) =>
          eb.or([
            eb('created_at', '>', after.created_at as string),
            eb.and([eb('created_at', '=', after.created_at as string), eb('id', '>', after.id)]),
          ]),
        );
      }
      const rows = await chunk.orderBy('created_at').orderBy('id').limit(chunkSize).execute();
      if (rows.length === 0) break;
      total += rows.length;
      options.onProgress?.(total);
      if (rows.length < chunkSize) break;
      last = rows[rows.length - 1];
    }
  } else {
    for (;;) {
      // Ids first, then a delete by primary key: the select walks idx_created_at (or
      // idx_log_name_created_at) oldest first, and no statement locks more than one chunk.
      const ids = (await olderRows.select('id').orderBy('created_at').limit(chunkSize).execute()).map(
        (row) => row.id,
      );
      if (ids.length === 0) break;
      const result = await db
        .deleteFrom(table)
        .where('id', 'in', ids)
        .where('created_at', '<', cutoff)
        .executeTakeFirst();
      total += Number(result.numDeletedRows);
      options.onProgress?.(total);
      if (ids.length < chunkSize) break;
    }
    if (sealed && newWatermark !== null && newWatermark.seq > 0) {
      await removePrunedSeals(db, table, newWatermark.seq);
    }
  }

  if (sealed && options.onSeals !== undefined) {
    let kept = db
      .selectFrom(table)
      .select(sql<number | string>`COUNT(*)`.as('n'))
      .where('created_at', '<', cutoff)
      .where('seal_seq', 'is not', null);
    if (logName !== undefined) kept = kept.where('log_name', '=', logName);
    else kept = kept.where('seal_seq', '>', pruneToSeq);
    // Rows of the dropped partitions are gone (or, in a dry run, would be) whatever their seal.
    if (droppedBefore !== undefined)
      kept = kept.where('created_at', '>=', dialect.encodeTimestamp(droppedBefore));
    const rows = await kept.execute();
    options.onSeals({ prunedToSeq: pruneToSeq, keptRows: Number(rows[0]?.n ?? 0) });
  }
  return total;
}

/** The newest seal's `seq`, 0 for none. */
async function headSeq({ db, table }: PruneTarget): Promise<number> {
  const { rows } = await sql<{
    seq: number | string | null;
  }>`SELECT MAX(${sql.id('seq')}) AS seq FROM ${sql.table(sealsTableName(table))}`.execute(db);
  return Number(rows[0]?.seq ?? 0);
}

/** Rows with `from <= created_at < to` (from null: every older row). */
async function countRows({ db, dialect, table }: PruneTarget, from: Date | null, to: Date): Promise<number> {
  let select = db
    .selectFrom(table)
    .select(sql<number | string>`COUNT(*)`.as('n'))
    .where('created_at', '<', dialect.encodeTimestamp(to));
  if (from !== null) select = select.where('created_at', '>=', dialect.encodeTimestamp(from));
  const rows = await select.execute();
  return Number(rows[0]?.n ?? 0);
}

/**
 * Seals after `pruneToSeq` with rows older than `droppedBefore` lose those rows with the dropped
 * partitions: each is recorded with its `row_count` and the rows it loses (its rows minus those it
 * keeps), which is the same whether the drop has happened yet or not, so a prune run again after
 * an interruption records the same.
 */
async function recordStraddlingSeals(
  target: PruneTarget,
  droppedBefore: string,
  pruneToSeq: number,
): Promise<void> {
  const { db, dialect, table } = target;
  const { rows } = await sql<{ seq: number | string }>`SELECT DISTINCT ${sql.id('seal_seq')} AS seq
    FROM ${sql.table(table)} WHERE ${sql.id('created_at')} < ${droppedBefore} AND ${sql.id('seal_seq')} > ${pruneToSeq}`.execute(
    db,
  );
  const seqs = rows.map((row) => Number(row.seq)).sort((a, b) => a - b);
  const straddling: { seq: number; rowCount: number; prunedRows: number }[] = [];
  for (let start = 0; start < seqs.length; start += SEALS_PER_STATEMENT) {
    const slice = seqs.slice(start, start + SEALS_PER_STATEMENT);
    const kept = await sql<{ seq: number | string; n: number | string }>`SELECT ${sql.id('seal_seq')} AS seq,
        COUNT(*) AS n FROM ${sql.table(table)} WHERE ${sql.id('created_at')} >= ${droppedBefore}
        AND ${sql.id('seal_seq')} IN (${sql.join(slice)}) GROUP BY ${sql.id('seal_seq')}`.execute(db);
    const keptBySeq = new Map(kept.rows.map((row) => [Number(row.seq), Number(row.n)]));
    const seals = await sql<{ seq: number | string; row_count: number | string }>`SELECT ${sql.id('seq')},
        ${sql.id('row_count')} FROM ${sql.table(sealsTableName(table))} WHERE ${sql.id('seq')} IN (${sql.join(slice)})`.execute(
      db,
    );
    for (const seal of seals.rows) {
      const rowCount = Number(seal.row_count);
      const seq = Number(seal.seq);
      straddling.push({ seq, rowCount, prunedRows: Math.max(0, rowCount - (keptBySeq.get(seq) ?? 0)) });
    }
  }
  await recordPartlyPruned(db, dialect, table, straddling);
}
