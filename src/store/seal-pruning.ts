import { type Kysely, sql } from 'kysely';
import { ActivityLogError } from '../core/errors.js';
import {
  type ActivityDatabase,
  type ColumnKind,
  derivedIdentifier,
  sealsTableName,
} from './activity-table.js';
import type { StoreDialect } from './store-dialect.js';

/**
 * `<table>_seals_pruned`: what retention removed from the seal chain (migration 4).
 *
 * - A **watermark** row (`total_rows` set): seals 1…`seq` were pruned whole, their rows and their
 *   seal rows removed (but seal `seq`'s own row, see {@link removePrunedSeals}); `hash` is seal `seq`'s hash, which the seal after it links to, and
 *   `total_rows` the rows seals 1…`seq` sealed, which a checkpoint's `total_rows` is held against.
 *   The newest watermark counts; older ones stay as a record of each pass.
 * - A **partly pruned** row (`total_rows` null): seal `seq`, which stays, lost `pruned_rows` of its
 *   `row_count` rows when a partition was dropped (its rows straddled the partition's bound).
 *
 * Both are written before the rows go, so a prune cut short leaves rows that `verify` already
 * counts as pruned, and running it again removes them.
 */

export const PRUNED_SEALS_COLUMNS: readonly {
  readonly name: string;
  readonly kind: ColumnKind;
  readonly nullable: boolean;
}[] = Object.freeze([
  { name: 'seq', kind: 'sequence', nullable: false },
  { name: 'hash', kind: 'hash', nullable: false },
  { name: 'row_count', kind: 'sequence', nullable: false },
  { name: 'pruned_rows', kind: 'sequence', nullable: false },
  { name: 'total_rows', kind: 'sequence', nullable: true },
  { name: 'pruned_at', kind: 'timestamp', nullable: false },
]);

/** `<table>_seals_pruned`. */
export function prunedSealsTable(table: string): string {
  return derivedIdentifier(table, '_seals_pruned');
}

/** Seals 1…`seq` were pruned whole. */
export interface PrunedWatermark {
  readonly seq: number;
  /** Seal `seq`'s hash. */
  readonly hash: Buffer;
  /** Rows seals 1…`seq` sealed. */
  readonly totalRows: number;
}

export interface PrunedSeals {
  readonly watermark: PrunedWatermark | null;
  /** Seal `seq` (past the watermark) → rows of it pruned with a dropped partition. */
  readonly partlyPruned: ReadonlyMap<number, number>;
}

interface PrunedRow {
  readonly seq: number | string;
  readonly hash: string;
  readonly pruned_rows: number | string;
  readonly total_rows: number | string | null;
}

/** What retention removed from `table`'s chain. */
export async function readPrunedSeals<DB>(db: Kysely<DB>, table: string): Promise<PrunedSeals> {
  const { rows } =
    await sql<PrunedRow>`SELECT ${sql.id('seq')}, ${sql.id('hash')}, ${sql.id('pruned_rows')}, ${sql.id(
      'total_rows',
    )} FROM ${sql.table(prunedSealsTable(table))} ORDER BY ${sql.id('seq')}`.execute(db);
  let watermark: PrunedWatermark | null = null;
  for (const row of rows) {
    if (row.total_rows === null) continue;
    watermark = {
      seq: Number(row.seq),
      hash: Buffer.from(String(row.hash).trim(), 'hex'),
      totalRows: Number(row.total_rows),
    };
  }
  const partlyPruned = new Map<number, number>();
  for (const row of rows) {
    const seq = Number(row.seq);
    if (row.total_rows === null && seq > (watermark?.seq ?? 0))
      partlyPruned.set(seq, Number(row.pruned_rows));
  }
  return { watermark, partlyPruned };
}

/**
 * Records seals (previous watermark)…`seq` as pruned whole: reads seal `seq`'s hash and the rows
 * the seals up to it sealed. Resolves to the new watermark.
 *
 * @throws ActivityLogError `STORE_FAILED` when seal `seq` is not in the chain.
 */
export async function recordWatermark(
  db: Kysely<ActivityDatabase>,
  dialect: StoreDialect,
  table: string,
  previous: PrunedWatermark | null,
  seq: number,
): Promise<PrunedWatermark> {
  const seals = sql.table(sealsTableName(table));
  const { rows } = await sql<{
    hash: string;
    row_count: number | string;
  }>`SELECT ${sql.id('hash')}, ${sql.id('row_count')} FROM ${seals} WHERE ${sql.id('seq')} = ${seq}`.execute(
    db,
  );
  const seal = rows[0];
  if (seal === undefined) {
    throw new ActivityLogError(
      'STORE_FAILED',
      `seal ${seq} is missing from ${sealsTableName(table)}, so the seals before it cannot be pruned; run activity-log verify`,
    );
  }
  const after = previous?.seq ?? 0;
  const { rows: sums } = await sql<{
    rows: number | string | null;
  }>`SELECT SUM(${sql.id('row_count')}) AS ${sql.id(
    'rows',
  )} FROM ${seals} WHERE ${sql.id('seq')} > ${after} AND ${sql.id('seq')} <= ${seq}`.execute(db);
  const pruned = Number(sums[0]?.rows ?? 0);
  const watermark: PrunedWatermark = {
    seq,
    hash: Buffer.from(String(seal.hash).trim(), 'hex'),
    totalRows: (previous?.totalRows ?? 0) + pruned,
  };
  const target = sql.table(prunedSealsTable(table));
  await db.transaction().execute(async (trx) => {
    await sql`DELETE FROM ${target} WHERE ${sql.id('seq')} = ${seq}`.execute(trx);
    await sql`INSERT INTO ${target} (${sql.join(PRUNED_SEALS_COLUMNS.map((column) => sql.id(column.name)))})
      VALUES (${sql.join([
        seq,
        watermark.hash.toString('hex'),
        Number(seal.row_count),
        pruned,
        watermark.totalRows,
        dialect.encodeTimestamp(new Date()),
      ])})`.execute(trx);
  });
  return watermark;
}

/** Records seals that lose rows with a dropped partition: `prunedRows` of their `rowCount`. */
export async function recordPartlyPruned(
  db: Kysely<ActivityDatabase>,
  dialect: StoreDialect,
  table: string,
  seals: readonly { readonly seq: number; readonly rowCount: number; readonly prunedRows: number }[],
): Promise<void> {
  if (seals.length === 0) return;
  const target = sql.table(prunedSealsTable(table));
  const now = dialect.encodeTimestamp(new Date());
  await db.transaction().execute(async (trx) => {
    for (let start = 0; start < seals.length; start += 500) {
      const slice = seals.slice(start, start + 500);
      await sql`DELETE FROM ${target} WHERE ${sql.id('total_rows')} IS NULL AND ${sql.id('seq')} IN (${sql.join(
        slice.map((seal) => seal.seq),
      )})`.execute(trx);
      await sql`INSERT INTO ${target} (${sql.join(PRUNED_SEALS_COLUMNS.map((column) => sql.id(column.name)))})
        VALUES ${sql.join(
          slice.map(
            (seal) => sql`(${sql.join([seal.seq, ZERO_HASH, seal.rowCount, seal.prunedRows, null, now])})`,
          ),
        )}`.execute(trx);
    }
  });
}

/**
 * Removes the seal rows the watermark at `seq` covers but seal `seq` itself, and their
 * partly-pruned records. Seal `seq` stays as the chain's head for writers, which append after the
 * newest seal row: were it gone with the chain fully pruned, the next seal would start a new chain.
 */
export async function removePrunedSeals(
  db: Kysely<ActivityDatabase>,
  table: string,
  seq: number,
): Promise<void> {
  await sql`DELETE FROM ${sql.table(sealsTableName(table))} WHERE ${sql.id('seq')} > 0 AND ${sql.id(
    'seq',
  )} < ${seq}`.execute(db);
  await sql`DELETE FROM ${sql.table(prunedSealsTable(table))} WHERE ${sql.id('total_rows')} IS NULL AND ${sql.id(
    'seq',
  )} <= ${seq}`.execute(db);
}

const ZERO_HASH = '0'.repeat(64);
