import { type Kysely, sql } from 'kysely';
import type { Activity } from '../core/activity.js';
import { activityLeafHash, type ErasableField, generateSalt } from '../integrity/activity-leaf.js';
import { HASH_BYTES, merkleRoot } from '../integrity/merkle-tree.js';
import { nextSeal, type Seal } from '../integrity/seal-hash.js';
import { type ActivityDatabase, sealsTableName } from './activity-table.js';
import type { StoreDialect } from './store-dialect.js';

/**
 * `<table>_seals`, the chain of seals of an activity table (`integrity/seal-hash.ts` says what a
 * seal is), and how a transaction appends to it.
 *
 * Row seq 0 is the anchor, not a seal: its fields are zero and the chain starts after it (seal 1
 * chains to the genesis hash). A sealing transaction first locks it ({@link lockChainHead}), so
 * concurrent writers queue there, once per transaction and never per row; the holder then reads
 * the head with a locking read, which sees the newest committed seal under any isolation level.
 * A sealed insert takes the head before its INSERT when it is free, so each row is written with
 * its `seal_seq` and never rewritten. When another writer holds it, on MariaDB and MySQL the
 * insert writes its rows with a placeholder `seal_seq` meanwhile and stamps them once it holds
 * the head ({@link tryLockChainHead}, {@link stampPlaceholder}): InnoDB rewrites the one column
 * and its index entry in about a quarter of the INSERT's time, and that stamp, the seal and the
 * commit are all that writers then do one at a time. On PostgreSQL a stamp writes a new version
 * of each row into every index, as dear as the INSERT, so writers there take the head first.
 * Locking the newest seal itself would not do: a writer waiting for it reads that seal again once
 * it is released, not the one appended meanwhile, and would append a duplicate `seq`. On SQLite a
 * transaction that has written holds the database's only write lock, so no lock clause is needed.
 *
 * Hashes are stored as 64 lowercase hex digits, `sealed_at` at millisecond precision.
 */

/** The columns of `<table>_seals`, in order; `seq` is the primary key. */
export const SEALS_TABLE_COLUMNS = Object.freeze([
  { name: 'seq', kind: 'sequence' },
  { name: 'root', kind: 'hash' },
  { name: 'row_count', kind: 'sequence' },
  { name: 'prev_hash', kind: 'hash' },
  { name: 'hash', kind: 'hash' },
  { name: 'sealed_at', kind: 'timestamp' },
] as const);

/**
 * The column (added by migration 3, so not among {@link SEALS_TABLE_COLUMNS}, which migration 2
 * creates) naming the erasable fields the seal's rows were sealed with, as a comma list: `''` for
 * none, null for a seal written before the column existed. It is not in the seal hash: the list
 * decides which fields each leaf holds as commitments, so a changed list changes the leaves and
 * the root, which the hash covers.
 */
export const SEAL_ERASABLE_FIELDS_COLUMN = 'erasable_fields';

/** A row of `<table>_seals` as the drivers return it. */
export interface SealRow {
  readonly seq: number | string;
  readonly root: string;
  readonly row_count: number | string;
  readonly prev_hash: string;
  readonly hash: string;
  readonly sealed_at: unknown;
  /** Absent from a seals table that predates migration 3. */
  readonly erasable_fields?: string | null;
}

const ZERO_HASH = Buffer.alloc(HASH_BYTES);

/** The anchor row, seq 0, that sealing transactions lock. */
export const GENESIS_ROW: Seal = Object.freeze({
  seq: 0,
  root: ZERO_HASH,
  row_count: 0,
  prev_hash: ZERO_HASH,
  hash: ZERO_HASH,
  sealed_at: new Date(0),
});

/** Ids per `UPDATE … WHERE id IN`, under SQLite's bound-parameter limit. */
const IDS_PER_UPDATE = 10_000;

export const sealsTable = sealsTableName;

/** A seal's column values in {@link SEALS_TABLE_COLUMNS} order, as parameters. */
export function sealRowValues(seal: Seal, dialect: StoreDialect): unknown[] {
  return [
    seal.seq,
    seal.root.toString('hex'),
    seal.row_count,
    seal.prev_hash.toString('hex'),
    seal.hash.toString('hex'),
    dialect.encodeTimestamp(seal.sealed_at),
  ];
}

/**
 * A stored seal. A hash that is not 64 hex digits (tampered with) reads as the bytes it spells, so
 * its seal fails the hash check rather than the read.
 */
export function decodeSealRow(row: SealRow, dialect: StoreDialect): Seal {
  return Object.freeze({
    seq: Number(row.seq),
    root: hexBytes(row.root),
    row_count: Number(row.row_count),
    prev_hash: hexBytes(row.prev_hash),
    hash: hexBytes(row.hash),
    sealed_at: dialect.decodeTimestamp(row.sealed_at),
  });
}

function hexBytes(text: string): Buffer {
  const trimmed = String(text).trim();
  return /^[0-9a-f]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'utf8');
}

/** A row a sealing statement stored, with the salt it was stored with. */
export interface SaltedActivity {
  readonly activity: Activity;
  readonly salt: Buffer;
}

/** A row ready to seal: its salt (also as the hex the column holds) and its leaf, made before the head is locked. */
export interface LeafedActivity extends SaltedActivity {
  readonly saltHex: string;
  readonly leaf: Buffer;
}

/** The row with a fresh salt and the leaf it makes with it. */
export function leafedActivity(activity: Activity, erasableFields: readonly ErasableField[]): LeafedActivity {
  const salt = generateSalt();
  return {
    activity,
    salt,
    saltHex: salt.toString('hex'),
    leaf: activityLeafHash(activity, { salt, erasableFields }),
  };
}

/** The seal after `previous` closing `rows` (in any order: they are sealed in `id` order). */
export function sealOver(previous: Seal | null, rows: readonly LeafedActivity[], sealedAt: Date): Seal {
  const sorted = [...rows].sort((a, b) => (a.activity.id < b.activity.id ? -1 : 1));
  return nextSeal(previous, {
    root: merkleRoot(sorted.map((row) => row.leaf)),
    rowCount: sorted.length,
    sealedAt,
  });
}

/** Where the seals of `table` are, and how to speak to its database. */
export interface SealTarget {
  readonly table: string;
  readonly dialect: StoreDialect;
}

/**
 * Locks the chain head of `table` until the transaction ends and returns it (null before seal 1).
 * The anchor is locked by a no-op UPDATE: on PostgreSQL and MySQL that is the row lock `FOR
 * UPDATE` takes, and on SQLite it makes the transaction a writer from its first statement (a
 * transaction that read first and writes later fails with SQLITE_BUSY_SNAPSHOT if another process
 * wrote in between). An anchor that is missing (deleted by hand) is put back, then locked.
 */
export async function lockChainHead(trx: Kysely<ActivityDatabase>, target: SealTarget): Promise<Seal | null> {
  const { dialect } = target;
  const seals = sql.table(sealsTable(target.table));
  const seq = sql.id('seq');
  const lockAnchor = () => sql`UPDATE ${seals} SET ${seq} = ${seq} WHERE ${seq} = 0`.execute(trx);
  await lockAnchor();
  let rows = await readLockedHead(trx, target);
  if (!rows.some((row) => row.seq === 0)) {
    await insertSealRow(trx, target, GENESIS_ROW, dialect.skipDuplicateKeyClause('seq'));
    await lockAnchor();
    rows = await readLockedHead(trx, target);
  }
  const head = rows[0];
  return head === undefined || head.seq === 0 ? null : head;
}

/** What {@link tryLockChainHead} answers while another transaction holds the chain head. */
export const CHAIN_HEAD_BUSY = Symbol('chain head busy');

/**
 * Locks the chain head like {@link lockChainHead} if no other transaction holds it, without
 * waiting: `FOR UPDATE SKIP LOCKED` passes over an anchor that is held, and then this answers
 * {@link CHAIN_HEAD_BUSY} holding nothing. A missing anchor also answers busy; the
 * {@link lockChainHead} that follows puts it back. Only where the dialect answers `SKIP LOCKED`
 * (see `StoreDialect.overlapSealedInserts`).
 */
export async function tryLockChainHead(
  trx: Kysely<ActivityDatabase>,
  target: SealTarget,
): Promise<Seal | null | typeof CHAIN_HEAD_BUSY> {
  const seq = sql.id('seq');
  const anchor =
    await sql`SELECT ${seq} FROM ${sql.table(sealsTable(target.table))} WHERE ${seq} = 0 FOR UPDATE SKIP LOCKED`.execute(
      trx,
    );
  if (anchor.rows.length === 0) return CHAIN_HEAD_BUSY;
  const head = (await readLockedHead(trx, target))[0];
  return head === undefined || head.seq === 0 ? null : head;
}

/** The anchor and the newest seal, newest first, read with the dialect's lock clause. */
async function readLockedHead(trx: Kysely<ActivityDatabase>, target: SealTarget): Promise<Seal[]> {
  const { dialect } = target;
  const seals = sql.table(sealsTable(target.table));
  const seq = sql.id('seq');
  const { rows } =
    await sql<SealRow>`SELECT * FROM ${seals} WHERE ${seq} = 0 OR ${seq} = (SELECT MAX(${seq}) FROM ${seals})
        ORDER BY ${seq} DESC ${sql.raw(dialect.lockRowsClause)}`.execute(trx);
  return rows.map((row) => decodeSealRow(row, dialect));
}

/**
 * Appends `seal` after the head locked by {@link lockChainHead} in the same transaction, with the
 * erasable fields its rows' leaves commit to.
 */
export async function insertSeal(
  trx: Kysely<ActivityDatabase>,
  target: SealTarget,
  seal: Seal,
  erasableFields: readonly ErasableField[],
): Promise<void> {
  await sql`INSERT INTO ${sql.table(sealsTable(target.table))} (${sql.join([
    ...SEALS_TABLE_COLUMNS.map((column) => sql.id(column.name)),
    sql.id(SEAL_ERASABLE_FIELDS_COLUMN),
  ])}) VALUES (${sql.join([...sealRowValues(seal, target.dialect), erasableFields.join(',')])})`.execute(trx);
}

/**
 * The erasable fields a seal row records, or null when it records none (a seal written before
 * migration 3): then the configured list is the best guess. Names are not checked here; a name
 * that is no erasable field fails the leaf of every row of the seal, which reports it.
 */
export function sealedErasableFields(row: Pick<SealRow, 'erasable_fields'>): readonly ErasableField[] | null {
  const text = row.erasable_fields;
  if (text === null || text === undefined) return null;
  return text === '' ? [] : (text.split(',') as ErasableField[]);
}

/**
 * Stamps the `count` rows a statement of this transaction stored with `seal_seq` = `placeholder`
 * (a negative number no seal has) with the seal that closes them, through `idx_seal_seq`, and
 * answers how many it stamped. A placeholder is never committed: the transaction that wrote it
 * stamps it before it ends or rolls back. MariaDB/MySQL only (`UPDATE … LIMIT`): the limit stops
 * the scan at the last of those rows, where reading one entry further would wait for the rows
 * of another writer that stored its own while this one held the head, and deadlock with it.
 */
export async function stampPlaceholder(
  trx: Kysely<ActivityDatabase>,
  target: SealTarget,
  placeholder: number,
  seq: number,
  count: number,
): Promise<number> {
  const result =
    await sql`UPDATE ${sql.table(target.table)} SET ${sql.id('seal_seq')} = ${seq} WHERE ${sql.id(
      'seal_seq',
    )} = ${placeholder} LIMIT ${sql.raw(String(count))}`.execute(trx);
  return Number(result.numAffectedRows ?? 0n);
}

/** Stamps rows already stored with the seal that closes them. */
export async function stampRows(
  trx: Kysely<ActivityDatabase>,
  target: SealTarget,
  seq: number,
  ids: readonly string[],
): Promise<void> {
  for (let start = 0; start < ids.length; start += IDS_PER_UPDATE) {
    const slice = ids.slice(start, start + IDS_PER_UPDATE);
    await sql`UPDATE ${sql.table(target.table)} SET ${sql.id('seal_seq')} = ${seq} WHERE ${sql.id(
      'id',
    )} IN (${sql.join(slice)})`.execute(trx);
  }
}

async function insertSealRow(
  db: Kysely<ActivityDatabase>,
  target: SealTarget,
  seal: Seal,
  suffix: string,
): Promise<void> {
  await sql`INSERT INTO ${sql.table(sealsTable(target.table))} (${sql.join(
    SEALS_TABLE_COLUMNS.map((column) => sql.id(column.name)),
  )}) VALUES (${sql.join(sealRowValues(seal, target.dialect))}) ${sql.raw(suffix)}`.execute(db);
}
