import { createPublicKey } from 'node:crypto';
import { type Checkpoint, checkpointFormatProblem, checkpointProblem, publicKeyId } from './checkpoint.js';

/**
 * What a check of the chain knows about one of its seals: the seal's hash and, when it counted
 * them, the rows seals 1…`seq` seal together. A {@link Seal} will do.
 */
export interface ChainSeal {
  readonly hash: Uint8Array;
  readonly totalRows?: number | undefined;
}

/** The seal chain in the database as a checkpoint is held against it. */
export interface ChainView {
  readonly table: string;
  /** The newest seal's `seq`; 0 when the chain has no seal. */
  readonly headSeq: number;
  /** The seal the chain holds at `seq`, or undefined when it holds none there. */
  sealAt(seq: number): ChainSeal | undefined;
  /**
   * Seals 1…`prunedToSeq` were pruned by retention: a checkpoint below it is checked only for
   * what remains, its signature and table (the one at it, against the hash and rows recorded).
   */
  readonly prunedToSeq?: number | undefined;
}

/**
 * How a checkpoint disagrees with the chain:
 * - `signature`: not a well-formed checkpoint, or not signed by any of the trusted keys;
 * - `table`: it signs another table's chain;
 * - `head-behind`: the chain ends before the checkpoint's seal (the newest seals, and their rows,
 *   were removed);
 * - `seal-missing`: the chain goes past the checkpoint's seal but has no seal with its `seq`;
 * - `seal-hash`: the seal at the checkpoint's `seq` has another hash (the chain was rewritten at
 *   or before that seal);
 * - `total-rows`: seals 1…`seq` seal another number of rows than the checkpoint signed.
 */
export type CheckpointMismatchKind =
  | 'signature'
  | 'table'
  | 'head-behind'
  | 'seal-missing'
  | 'seal-hash'
  | 'total-rows';

export interface CheckpointMismatch {
  readonly kind: CheckpointMismatchKind;
  /** The checkpoint's `seq`, or null when the checkpoint is not well formed. */
  readonly seq: number | null;
  /** One sentence saying what does not hold. */
  readonly message: string;
}

/**
 * Holds a signed checkpoint against the seal chain: the first thing that does not hold, or null
 * when it is signed by one of `publicKeyPems`, names the chain's table, the chain reaches its seal,
 * that seal has the hash it signed, and (when `sealAt` counts them) the rows it signed.
 *
 * `verify --checkpoint` calls it once per checkpoint after streaming the seals, with a `sealAt`
 * that answers for the checkpoints' `seq`s only, so no more than those seals are kept.
 *
 * @example
 * const mismatch = checkCheckpointAgainstChain(checkpoint, {
 *   table: 'activity_log',
 *   headSeq: lastSeal.seq,
 *   sealAt: (seq) => sealsAtCheckpoints.get(seq),
 * }, publicKeyPem);
 */
export function checkCheckpointAgainstChain(
  checkpoint: unknown,
  chain: ChainView,
  publicKeyPems: string | readonly string[],
): CheckpointMismatch | null {
  const formatProblem = checkpointFormatProblem(checkpoint);
  if (formatProblem !== null) return { kind: 'signature', seq: null, message: formatProblem };
  const { body } = checkpoint as Checkpoint;
  const { seq } = body;
  const signatureProblem = signedByOneOf(checkpoint, publicKeyPems);
  if (signatureProblem !== null) {
    return { kind: 'signature', seq, message: `checkpoint at seal ${seq}: ${signatureProblem}` };
  }
  if (body.table !== chain.table) {
    return {
      kind: 'table',
      seq,
      message: `checkpoint at seal ${seq} signs table ${body.table}, not ${chain.table}`,
    };
  }
  if (chain.headSeq < seq) {
    const kept = chain.headSeq === 0 ? 'has no seal' : `ends at seal ${chain.headSeq}`;
    return {
      kind: 'head-behind',
      seq,
      message: `the chain ${kept}, behind the checkpoint signed at seal ${seq} (${body.issued_at}): the newest seals and their rows were removed`,
    };
  }
  if (seq < (chain.prunedToSeq ?? 0)) return null;
  const seal = chain.sealAt(seq);
  if (seal === undefined) {
    return {
      kind: 'seal-missing',
      seq,
      message: `seal ${seq}, signed by the checkpoint of ${body.issued_at}, is missing from the chain`,
    };
  }
  const hash = Buffer.from(seal.hash).toString('hex');
  if (hash !== body.seal_hash) {
    return {
      kind: 'seal-hash',
      seq,
      message: `seal ${seq} has hash ${hash}, the checkpoint of ${body.issued_at} signed ${body.seal_hash}: the chain was rewritten at or before seal ${seq}`,
    };
  }
  if (seal.totalRows !== undefined && seal.totalRows !== body.total_rows) {
    return {
      kind: 'total-rows',
      seq,
      message: `seals 1…${seq} seal ${seal.totalRows} rows, the checkpoint of ${body.issued_at} signed ${body.total_rows}`,
    };
  }
  return null;
}

/** The signature problem against the trusted key the checkpoint names, or null. */
function signedByOneOf(checkpoint: unknown, publicKeyPems: string | readonly string[]): string | null {
  const keys = typeof publicKeyPems === 'string' ? [publicKeyPems] : publicKeyPems;
  if (keys.length === 0) return 'no public key was given to check its signature with';
  if (keys.length === 1) return checkpointProblem(checkpoint, keys[0]!);
  const { key_id } = (checkpoint as Checkpoint).body;
  const named = keys.find((pem) => keyIdOf(pem) === key_id);
  if (named === undefined) {
    return `it is signed by key ${key_id}, which is none of the ${keys.length} keys given`;
  }
  return checkpointProblem(checkpoint, named);
}

function keyIdOf(pem: string): string | null {
  try {
    return publicKeyId(createPublicKey(pem));
  } catch {
    return null;
  }
}
