import type { Activity } from '../core/activity.js';
import { CANONICAL_FIELDS } from '../core/canonical-encoding.js';
import {
  activityLeafHash,
  checkErasableFields,
  type ErasableField,
  type FieldCommitments,
  mismatchedCommitments,
  SALT_BYTES,
  type StoredLeafValues,
  storedRowLeafHash,
} from './activity-leaf.js';
import { merkleRoot } from './merkle-tree.js';
import { GENESIS_PREV_HASH, type Seal, sealHash } from './seal-hash.js';
import { SealRootPool } from './seal-root-pool.js';

/**
 * Checking a table's seal chain, seal by seal, from what a reader streams (`store/seal-reader.ts`):
 * each seal with the rows that claim it. Nothing here does I/O, so `verify`, a scheduled check and
 * the proof endpoint share it.
 *
 * For each seal: its hash is recomputed from its fields; it follows the seal before it (`seq` one
 * more, `prev_hash` that seal's hash, seal 1 the genesis hash); its rows are counted against
 * `row_count`; their leaves are recomputed and their Merkle root compared with `root`; a row that
 * has both a salt and stored commitments has each commitment recomputed. What a root cannot say is
 * which of its rows changed: a row is named when its commitments, its salt or its values show it,
 * or when it is its seal's only row (or, with one row too many, the row whose removal restores the
 * root). The newest seals deleted with their rows, or the whole chain rebuilt, leave no trace here:
 * that needs a checkpoint kept outside the database ({@link HeadCheck}).
 */

/** A stored row as the reader gives it: values decoded, the seal's columns as stored. */
export interface StoredSealedRow {
  readonly id: string;
  /** Null when the row's values could not be decoded (its JSON is not JSON). */
  readonly activity: Activity | null;
  /** `seal_salt` as stored: 32 hex digits, or null once erased. */
  readonly salt: string | null;
  /** `seal_commitments` as stored: JSON text of column → commitment, or null. */
  readonly commitments: string | null;
  /** The row's values as stored, when the reader keeps them: its leaf is made from them first. */
  readonly values?: StoredLeafValues | undefined;
}

/** One `seq`: its seal (null when rows claim a seal that does not exist) and its rows in `id` order. */
export interface SealGroup {
  readonly seq: number;
  readonly seal: Seal | null;
  readonly rows: readonly StoredSealedRow[];
  /**
   * The erasable fields the seal records its rows were sealed with; null or absent when it records
   * none (written before seals kept the list), and the configured list is used instead.
   */
  readonly erasableFields?: readonly ErasableField[] | null | undefined;
}

export type ChainProblemKind =
  /** A row's values, salt or commitments no longer match its seal. */
  | 'row-altered'
  /** Fewer rows claim the seal than it sealed. */
  | 'rows-missing'
  /** More rows claim the seal than it sealed (a forged `seal_seq`). */
  | 'rows-extra'
  /** Rows claim a seal that does not exist. */
  | 'rows-without-seal'
  /** The seal's hash is not the hash of its fields. */
  | 'seal-altered'
  /** The seal's `prev_hash` is not the previous seal's hash. */
  | 'link-broken'
  /** Seals are missing from the chain (a gap in `seq`). */
  | 'seal-missing'
  /** A checkpoint is not well formed or not signed by the key given. */
  | 'signature'
  /** A checkpoint signs another table's chain. */
  | 'table'
  /** The chain ends before a checkpoint's seal (the newest seals and their rows were removed). */
  | 'head-behind'
  /** The seal at a checkpoint's `seq` has another hash than it signed (the chain was rewritten). */
  | 'seal-hash'
  /** Seals 1…`seq` seal another number of rows than a checkpoint signed. */
  | 'total-rows';

export interface ChainProblem {
  readonly kind: ChainProblemKind;
  /** The seal concerned. */
  readonly seq: number;
  /** One line saying what is wrong, where. */
  readonly message: string;
  /** The rows concerned, when they can be told (at most {@link MAX_IDS_PER_PROBLEM}). */
  readonly ids?: readonly string[];
  /** The fields concerned, when they can be told. */
  readonly fields?: readonly string[];
  /** The checkpoint file concerned, for a problem a checkpoint shows. */
  readonly checkpoint?: string;
}

/** The newest seal the check reached. */
export interface VerifiedHead {
  readonly seq: number;
  readonly hash: string;
  /** Rows sealed by seals 1…`seq`, when the check started at seal 1. */
  readonly totalRows: number | null;
}

/**
 * Checks the verified head against checkpoints kept outside the database (the checkpoint work
 * plugs in here): a head behind a signed checkpoint, or a different hash at the same `seq`.
 */
export type HeadCheck = (head: VerifiedHead | null) => readonly ChainProblem[];

export interface ChainReport {
  readonly intact: boolean;
  readonly fromSeq: number;
  /** Seals 1…`toSeq` pruned whole by retention (`rows` rows), not checked; null when none were. */
  readonly pruned: { readonly toSeq: number; readonly rows: number } | null;
  /** Seals checked that lost rows with a dropped partition: their rows kept cannot be held against their root. */
  readonly partlyPrunedSeals: number;
  /** Seals checked. */
  readonly seals: number;
  /** Rows checked (every row that claims a seal from `fromSeq` on). */
  readonly rows: number;
  /** Rows no seal covers yet (`seal_seq` null): not tampering, `seal --backfill` seals them. */
  readonly unsealedRows: number;
  readonly head: VerifiedHead | null;
  /** The first problems, lowest `seq` first. */
  readonly problems: readonly ChainProblem[];
  /** Problems found beyond those listed. */
  readonly moreProblems: number;
}

/**
 * What retention removed: seals 1…`seq` pruned whole (the chain after them links to `hash`,
 * and they sealed `totalRows` rows), and seals that lost some rows with a dropped partition.
 */
export interface PrunedRange {
  readonly seq: number;
  readonly hash: Uint8Array;
  readonly totalRows: number;
}

export interface ChainCheckOptions {
  /** The first seal to check; 1 checks the whole chain (or from the seal after {@link pruned}). */
  readonly fromSeq: number;
  /**
   * Seals pruned whole by retention. When `fromSeq` is the seal after it and there is no
   * `anchor`, the chain is checked from there, linked to its hash.
   */
  readonly pruned?: PrunedRange | null | undefined;
  /** Seal `seq` → rows of it removed with a dropped partition: fewer rows is then no problem. */
  readonly partlyPruned?: ReadonlyMap<number, number> | undefined;
  /** The seal before `fromSeq` (what it chains to); null when `fromSeq` is 1 or it is missing. */
  readonly anchor: Seal | null;
  /**
   * Fields committed in the leaves of rows whose commitments are not stored, for seals that do not
   * record their own list (`SealGroup.erasableFields`).
   */
  readonly erasableFields: readonly ErasableField[];
  readonly unsealedRows: number;
  readonly maxProblems?: number;
  readonly checkHead?: HeadCheck;
  /** Called after each seal with the rows checked so far. */
  readonly onProgress?: (rows: number, seals: number) => void;
  /** Worker threads that make seals' roots ({@link verifyChain}); 0 or absent: none. */
  readonly threads?: number;
  /** Rows read in this thread alone before the worker threads start (default 0). */
  readonly threadsAfterRows?: number;
}

export const MAX_IDS_PER_PROBLEM = 10;
const DEFAULT_MAX_PROBLEMS = 20;
/** Largest seal searched for the one forged row among one row too many (quadratic in the rows). */
const MAX_ROWS_TO_SEARCH = 2048;

/** Rows per task sent to a worker thread (whole seals, so a task may hold more). */
const ROWS_PER_TASK = 2000;
/** Tasks waiting for a worker thread, per thread: enough to keep each busy while one is read. */
const TASKS_IN_FLIGHT_PER_THREAD = 2;

/**
 * Checks every group the reader yields, in `seq` order, and reports.
 *
 * With {@link ChainCheckOptions.threads}, the roots of seals' rows are made on that many worker
 * threads once {@link ChainCheckOptions.threadsAfterRows} rows have been read, while this thread
 * reads on; each seal is still checked here, in order, so the report is the one a check in this
 * thread alone makes.
 */
export async function verifyChain(
  groups: AsyncIterable<SealGroup>,
  options: ChainCheckOptions,
): Promise<ChainReport> {
  const checker = new ChainChecker(options);
  const threads = options.threads ?? 0;
  const threadsAfterRows = options.threadsAfterRows ?? 0;
  let pool: SealRootPool | null = null;
  const inFlight: { groups: SealGroup[]; roots: Promise<(Buffer | null | undefined)[]> }[] = [];
  const finish = async (task: (typeof inFlight)[number]): Promise<void> => {
    const roots = await task.roots;
    for (const [index, group] of task.groups.entries()) {
      checker.check(group, roots[index]);
      options.onProgress?.(checker.rows, checker.seals);
    }
  };
  let rowsRead = 0;
  let batch: SealGroup[] = [];
  let batchRows = 0;
  try {
    for await (const group of groups) {
      rowsRead += group.rows.length;
      if (pool === null && threads > 0 && rowsRead > threadsAfterRows) pool = new SealRootPool(threads);
      if (pool === null) {
        checker.check(group);
        options.onProgress?.(checker.rows, checker.seals);
        continue;
      }
      batch.push(group);
      batchRows += group.rows.length;
      if (batchRows >= ROWS_PER_TASK) {
        inFlight.push({ groups: batch, roots: pool.roots(batch, options.erasableFields) });
        batch = [];
        batchRows = 0;
      }
      while (inFlight.length > threads * TASKS_IN_FLIGHT_PER_THREAD) await finish(inFlight.shift()!);
    }
    if (batch.length > 0) inFlight.push({ groups: batch, roots: pool!.roots(batch, options.erasableFields) });
    while (inFlight.length > 0) await finish(inFlight.shift()!);
  } finally {
    await pool?.close();
  }
  return checker.report(options.checkHead);
}

/** The chain check as a state machine, fed one group at a time. */
export class ChainChecker {
  seals = 0;
  rows = 0;
  readonly #options: ChainCheckOptions;
  readonly #maxProblems: number;
  readonly #problems: ChainProblem[] = [];
  #moreProblems = 0;
  /** The previous seal, with its hash as recomputed from its fields. */
  #previous: Seal | null;
  #expectedSeq: number;
  #totalRows = 0;
  #head: Seal | null = null;
  /** The erasable fields of the group being checked. */
  #erasableFields: readonly ErasableField[];
  /** The chain starts after the pruned seals, so row totals count from seal 1. */
  readonly #fromPruned: boolean;
  #partlyPrunedSeals = 0;

  constructor(options: ChainCheckOptions) {
    this.#options = options;
    this.#maxProblems = options.maxProblems ?? DEFAULT_MAX_PROBLEMS;
    const pruned = options.pruned ?? null;
    this.#fromPruned = options.anchor === null && pruned !== null && options.fromSeq === pruned.seq + 1;
    this.#previous =
      options.anchor !== null ? recomputed(options.anchor) : this.#fromPruned ? prunedAnchor(pruned!) : null;
    this.#totalRows = this.#fromPruned ? pruned!.totalRows : 0;
    this.#expectedSeq = options.fromSeq;
    this.#erasableFields = options.erasableFields;
  }

  /**
   * Checks the next group. `storedRoot` is the root its rows' stored values make, when made
   * elsewhere ({@link storedValuesRoot}); without it that root is made here.
   */
  check(group: SealGroup, storedRoot?: Buffer | null): void {
    this.rows += group.rows.length;
    if (group.seal === null) {
      this.#problem({
        kind: 'rows-without-seal',
        seq: group.seq,
        message: `${count(group.rows.length, 'row')} claim seal ${group.seq}, which does not exist (a forged seal_seq, or the seal was deleted)`,
        ids: idsOf(group.rows),
      });
      return;
    }
    this.seals++;
    this.#erasableFields = group.erasableFields ?? this.#options.erasableFields;
    // An altered seal's root and count say nothing about its rows: the seal alone is reported.
    if (this.#checkLink(group.seal)) this.#checkRows(group.seal, group.rows, storedRoot);
    this.#totalRows += group.seal.row_count;
    this.#head = group.seal;
    this.#previous = recomputed(group.seal);
    this.#expectedSeq = group.seal.seq + 1;
  }

  report(checkHead?: HeadCheck): ChainReport {
    const head: VerifiedHead | null =
      this.#head === null
        ? null
        : {
            seq: this.#head.seq,
            hash: this.#head.hash.toString('hex'),
            totalRows: this.#options.fromSeq === 1 || this.#fromPruned ? this.#totalRows : null,
          };
    const pruned = this.#options.pruned ?? null;
    for (const problem of checkHead?.(head) ?? []) this.#problem(problem);
    return Object.freeze({
      intact: this.#problems.length === 0,
      fromSeq: this.#options.fromSeq,
      pruned: pruned === null ? null : { toSeq: pruned.seq, rows: pruned.totalRows },
      partlyPrunedSeals: this.#partlyPrunedSeals,
      seals: this.seals,
      rows: this.rows,
      unsealedRows: this.#options.unsealedRows,
      head,
      problems: Object.freeze([...this.#problems]),
      moreProblems: this.#moreProblems,
    });
  }

  /** Checks the seal's hash and its link to the one before; false when the seal itself was altered. */
  #checkLink(seal: Seal): boolean {
    const { seq } = seal;
    const intact = recomputed(seal).hash.equals(seal.hash);
    if (!intact) {
      this.#problem({
        kind: 'seal-altered',
        seq,
        message: `seal ${seq}: its hash is not the hash of its fields (the seal was altered)`,
      });
    }
    if (seq > this.#expectedSeq) {
      const first = this.#expectedSeq;
      const missing =
        first === seq - 1 ? `seal ${first} is missing` : `seals ${first}…${seq - 1} are missing`;
      this.#problem({
        kind: 'seal-missing',
        seq: first,
        message: `${missing}: the chain goes from seal ${first - 1} to seal ${seq} (deleted with their rows?)`,
      });
      return intact;
    }
    if (seq === 1) {
      if (!GENESIS_PREV_HASH.equals(seal.prev_hash)) {
        this.#problem({
          kind: 'link-broken',
          seq,
          message: 'seal 1: prev_hash is not the genesis hash (32 zero bytes)',
        });
      }
      return intact;
    }
    if (this.#previous === null) {
      this.#problem({
        kind: 'seal-missing',
        seq: seq - 1,
        message: `seal ${seq - 1}, which seal ${seq} chains to, is missing`,
      });
    } else if (!seal.prev_hash.equals(this.#previous.hash)) {
      this.#problem({
        kind: 'link-broken',
        seq,
        message: `seal ${seq}: prev_hash is not the hash of seal ${seq - 1} (broken link)`,
      });
    }
    return intact;
  }

  #checkRows(seal: Seal, rows: readonly StoredSealedRow[], storedRoot: Buffer | null | undefined): void {
    const { seq } = seal;
    // A seal whose rows make its root from their stored values is intact; only the others are
    // decoded and checked row by row, which says what changed.
    if (rows.length === seal.row_count) {
      const root = storedRoot !== undefined ? storedRoot : storedValuesRoot(rows, this.#erasableFields);
      if (root?.equals(seal.root)) return;
    }
    const leaves: (Buffer | null)[] = [];
    const named: ChainProblem[] = [];
    for (const row of rows) {
      const result = this.#leafOf(row);
      leaves.push(result.leaf);
      if (result.problem !== null) {
        named.push({
          kind: 'row-altered',
          seq,
          message: `row ${row.id} of seal ${seq}: ${result.problem}`,
          ids: [row.id],
          ...(result.fields === undefined ? {} : { fields: result.fields }),
        });
      }
    }
    const known = leaves.every((leaf) => leaf !== null) ? (leaves as Buffer[]) : null;
    const rootMatches = known !== null && merkleRoot(known).equals(seal.root);
    const prunedRows = this.#options.partlyPruned?.get(seq) ?? 0;
    if (prunedRows > 0 && rows.length < seal.row_count && rows.length >= seal.row_count - prunedRows) {
      // Retention dropped the rest with a partition: what is left cannot make the root, but each
      // row's own commitments are still checked.
      this.#partlyPrunedSeals++;
      for (const problem of named) this.#problem(problem);
      return;
    }

    if (rows.length < seal.row_count) {
      const missing = seal.row_count - rows.length;
      this.#problem({
        kind: 'rows-missing',
        seq,
        message: `seal ${seq}: ${count(missing, 'row')} of ${seal.row_count} missing (deleted)`,
      });
    } else if (rows.length > seal.row_count) {
      const extra = rows.length - seal.row_count;
      const forged = known === null || extra !== 1 ? null : forgedRow(known, seal.root, rows);
      this.#problem({
        kind: 'rows-extra',
        seq,
        message:
          forged === null
            ? `seal ${seq}: ${count(extra, 'more row')} claim it than it sealed (${rows.length}, sealed ${seal.row_count}): a forged seal_seq`
            : `row ${forged} claims seal ${seq}, which did not seal it (a forged seal_seq)`,
        ids: forged === null ? idsOf(rows) : [forged],
      });
    } else if (!rootMatches && named.length === 0) {
      const only = rows.length === 1 ? rows[0]! : null;
      this.#problem({
        kind: 'row-altered',
        seq,
        message:
          only !== null
            ? `row ${only.id} of seal ${seq} does not match its seal (altered)`
            : `a row of seal ${seq} does not match its seal (altered; its ${rows.length} rows do not hash to its root, and the root cannot tell which)`,
        ids: only !== null ? [only.id] : idsOf(rows),
      });
    }
    for (const problem of named) this.#problem(problem);
  }

  #leafOf(row: StoredSealedRow): {
    leaf: Buffer | null;
    problem: string | null;
    fields?: readonly string[];
  } {
    if (row.activity === null) return { leaf: null, problem: 'its values cannot be read (altered)' };
    let commitments: FieldCommitments | null = null;
    if (row.commitments !== null) {
      try {
        commitments = JSON.parse(row.commitments) as FieldCommitments;
        checkErasableFields(Object.keys(commitments));
      } catch {
        return {
          leaf: null,
          problem: 'its seal_commitments are not commitments of erasable fields (altered)',
        };
      }
    }
    let salt: Buffer | null = null;
    if (row.salt !== null) {
      if (!SALT_PATTERN.test(row.salt)) {
        return { leaf: null, problem: 'its seal_salt is not 32 hex digits (altered)' };
      }
      salt = Buffer.from(row.salt, 'hex');
    }
    if (salt === null && commitments === null) {
      return { leaf: null, problem: 'it has neither a salt nor commitments (altered)' };
    }
    try {
      if (salt !== null && commitments !== null) {
        const mismatched = mismatchedCommitments(row.activity, salt, commitments);
        const leaf = activityLeafHash(row.activity, {
          salt,
          erasableFields: Object.keys(commitments) as ErasableField[],
        });
        if (mismatched.length > 0) {
          return {
            leaf,
            problem: `${mismatched.join(', ')} ${mismatched.length === 1 ? 'does' : 'do'} not match ${mismatched.length === 1 ? 'its' : 'their'} commitment (altered)`,
            fields: mismatched,
          };
        }
        return { leaf, problem: null };
      }
      const leaf =
        salt !== null
          ? activityLeafHash(row.activity, { salt, erasableFields: this.#erasableFields })
          : activityLeafHash(row.activity, {
              salt: null,
              erasableFields: Object.keys(commitments!) as ErasableField[],
              commitments,
            });
      return { leaf, problem: null };
    } catch (error) {
      return { leaf: null, problem: `its leaf cannot be made (${(error as Error).message})` };
    }
  }

  #problem(problem: ChainProblem): void {
    if (this.#problems.length < this.#maxProblems) this.#problems.push(Object.freeze(problem));
    else this.#moreProblems++;
  }
}

/** A row as sent to a worker thread: its salt, then its stored values. */
export const STORED_ROW_SLOTS = 1 + CANONICAL_FIELDS.length;

const SALT_PATTERN = new RegExp(`^[0-9a-f]{${SALT_BYTES * 2}}$`);

/**
 * The Merkle root of rows' leaves made from their stored values ({@link storedRowLeafHash}); null
 * when a row has no stored values, is erased or is not of a form that takes.
 */
export function storedValuesRoot(
  rows: readonly StoredSealedRow[],
  erasableFields: readonly ErasableField[],
): Buffer | null {
  const leaves: Buffer[] = new Array(rows.length);
  try {
    for (let index = 0; index < rows.length; index++) {
      const { values, salt, commitments } = rows[index]!;
      if (values === undefined || salt === null || commitments !== null || !SALT_PATTERN.test(salt)) {
        return null;
      }
      const leaf = storedRowLeafHash(values, Buffer.from(salt, 'hex'), erasableFields);
      if (leaf === null) return null;
      leaves[index] = leaf;
    }
  } catch {
    return null;
  }
  return merkleRoot(leaves);
}

/**
 * The seal with the hash its fields give, so the next link is checked against what it should be.
 * A field that is no hash at all (not 32 bytes) leaves the stored hash, which then fails to match.
 */
function recomputed(seal: Seal): Seal {
  try {
    const hash = sealHash({
      seq: seal.seq,
      prevHash: seal.prev_hash,
      root: seal.root,
      rowCount: seal.row_count,
      sealedAt: seal.sealed_at,
    });
    return { ...seal, hash };
  } catch {
    return { ...seal, hash: Buffer.alloc(0) };
  }
}

/** The last pruned seal as the chain after it knows it: its `seq` and hash (its other fields are gone). */
function prunedAnchor(pruned: PrunedRange): Seal {
  const zero = Buffer.alloc(32);
  return {
    seq: pruned.seq,
    root: zero,
    row_count: 0,
    prev_hash: zero,
    hash: Buffer.from(pruned.hash),
    sealed_at: new Date(0),
  };
}

/** With one row too many: the row whose removal gives the seal's root, if there is one. */
function forgedRow(leaves: readonly Buffer[], root: Buffer, rows: readonly StoredSealedRow[]): string | null {
  if (leaves.length > MAX_ROWS_TO_SEARCH) return null;
  for (let index = 0; index < leaves.length; index++) {
    const rest = [...leaves.slice(0, index), ...leaves.slice(index + 1)];
    if (merkleRoot(rest).equals(root)) return rows[index]!.id;
  }
  return null;
}

function idsOf(rows: readonly StoredSealedRow[]): string[] {
  return rows.slice(0, MAX_IDS_PER_PROBLEM).map((row) => row.id);
}

function count(n: number, noun: string): string {
  return `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`;
}
