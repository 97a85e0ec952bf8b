import type { Activity } from '../core/activity.js';
import { canonicalActivityJson, canonicalJson } from '../core/canonical-encoding.js';
import {
  activityLeafHash,
  checkErasableFields,
  type ErasableField,
  type FieldCommitments,
  fieldCommitment,
  isErasableField,
} from './activity-leaf.js';
import { type Checkpoint, checkpointProblem } from './checkpoint.js';
import { HASH_BYTES, hashLeaf, inclusionPath, verifyInclusion } from './merkle-tree.js';
import { type Seal, sealChainBreak } from './seal-hash.js';

/**
 * An inclusion proof: everything a third party needs to check that one activity is in the log as
 * it was written, with nothing but SHA-256 and Ed25519 (`examples/verify-proof.js` does it in a few
 * dozen lines of `node:crypto`).
 *
 * How the pieces hold together: each row's leaf (`activity-leaf.ts`) is a leaf of its seal's RFC
 * 6962 Merkle tree (`merkle-tree.ts`); the seal hash (`seal-hash.ts`) covers that tree's root and
 * the previous seal's hash, so the seals form a chain; a checkpoint (`checkpoint.ts`) signs the
 * chain's head and lives outside the database. A proof walks that path from one row to one
 * checkpoint.
 *
 * The proof is one JSON object; hashes are 64 lowercase hex digits, times ISO-8601 UTC with
 * milliseconds:
 *
 * ```
 * {
 *   "format": "activity-log/inclusion-proof/v1",
 *   "activity": { …the row's canonical object: snake_case keys, created_at as ISO-8601… },
 *   "salt": "<32 hex digits>" | null,          // null once the row was erased
 *   "commitments": { "causer_id": "<hex>", … }, // the row's committed fields, {} when none
 *   "leaf_hash": "<hex>",
 *   "leaf_index": 3,                            // the row's position in its seal, in id order
 *   "merkle_path": ["<hex>", …],                // RFC 6962 audit path, lowest sibling first
 *   "seals": [{ "seq", "prev_hash", "root", "row_count", "sealed_at", "hash" }, …],
 *   "checkpoint": { "body": { … }, "signature": "<base64>" } | null,
 *   "public_key": "-----BEGIN PUBLIC KEY-----…" | null,
 *   "anchored": true | false,                   // whether a checkpoint ends the proof
 *   "unanchored_reason": null | "<why not>"
 * }
 * ```
 *
 * `seals` runs from the row's seal to the checkpoint's seal, one seal per `seq`, lowest first. A
 * proof without a checkpoint (none is kept yet, or none signs a seal at or after the row's) runs
 * to the chain's head as it was read and is not anchored: it shows the row agrees with the seals
 * in the database, which whoever can rewrite the database could have rebuilt.
 *
 * Verifying, in order (the first failure is the answer):
 *
 * 1. Commitments: with a salt, each field named in `commitments` is recommitted from its value
 *    (SHA-256(salt ‖ column ‖ 0x00 ‖ canonical JSON of the value)) and must equal the one given;
 *    without a salt (an erased row) those fields must be null, and the given commitments stand in
 *    for the values they had.
 * 2. Leaf: SHA-256(0x00 ‖ canonical JSON of `activity` with each committed field's value replaced
 *    by `{"commitment":"<hex>"}`) must equal `leaf_hash`.
 * 3. Merkle path: RFC 9162 §2.1.3.2 from the leaf, at `leaf_index` in a tree of the first seal's
 *    `row_count` leaves, must reach that seal's `root`.
 * 4. Seal chain: each seal's hash recomputes from its fields, and each `prev_hash` is the hash of
 *    the seal before it.
 * 5. Checkpoint: its `seq` and `seal_hash` are those of the last seal, its `key_id` is the SHA-256
 *    of the public key's DER, and its Ed25519 signature over its body's canonical JSON verifies.
 *    The key in the proof is only as good as the verifier's reason to trust it: compare its id with
 *    the one the log's operator published, or pass the trusted key. Without a checkpoint the proof
 *    is verified but not anchored; given a trusted key, that is a failure.
 */

export const INCLUSION_PROOF_FORMAT = 'activity-log/inclusion-proof/v1';

/** A seal as JSON carries it. */
export interface SealJson {
  readonly seq: number;
  readonly prev_hash: string;
  readonly root: string;
  readonly row_count: number;
  readonly sealed_at: string;
  readonly hash: string;
}

export interface InclusionProof {
  readonly format: typeof INCLUSION_PROOF_FORMAT;
  readonly activity: Readonly<Record<string, unknown>>;
  readonly salt: string | null;
  readonly commitments: FieldCommitments;
  readonly leaf_hash: string;
  readonly leaf_index: number;
  readonly merkle_path: readonly string[];
  readonly seals: readonly SealJson[];
  readonly checkpoint: Checkpoint | null;
  readonly public_key: string | null;
  readonly anchored: boolean;
  readonly unanchored_reason: string | null;
}

/** A row as its seal stored it. */
export interface SealedRow {
  readonly activity: Activity;
  readonly salt: Uint8Array | null;
  readonly commitments: FieldCommitments;
}

/**
 * A row of the seal whose leaf cannot be made (its values or seal columns cannot be read): it
 * stands in the tree as 32 zero bytes, which no leaf hashes to, so no path through it verifies.
 */
export interface UnreadableRow {
  readonly id: string;
  readonly activity: null;
}

export interface InclusionProofInput {
  /** Every row of the seal, in `id` order. */
  readonly rows: readonly (SealedRow | UnreadableRow)[];
  /** The activity to prove. */
  readonly activityId: string;
  /** The seals from the row's seal to the checkpoint's seal, lowest `seq` first. */
  readonly seals: readonly Seal[];
  /** The checkpoint signing the last seal; null for a proof to the head that no checkpoint anchors. */
  readonly checkpoint: Checkpoint | null;
  /** The key the checkpoint is signed with, handed to the verifier; null when it is not known. */
  readonly publicKeyPem: string | null;
  /** Why no checkpoint anchors the proof (with `checkpoint` null). */
  readonly unanchoredReason?: string | undefined;
}

export type InclusionProofResult =
  | { readonly verified: true; readonly anchored: boolean }
  | { readonly verified: false; readonly problem: string };

/** The leaf of a row as its seal stored it: its commitments name the fields committed. */
export function sealedRowLeafHash(row: SealedRow): Buffer {
  return activityLeafHash(row.activity, {
    salt: row.salt,
    erasableFields: checkErasableFields(Object.keys(row.commitments)),
    commitments: row.commitments,
  });
}

/**
 * The proof that activity `activityId` is in its seal, chained to the checkpoint. It is made from
 * what it is given, tampered or not: checking is {@link verifyInclusionProof}'s work.
 *
 * @throws RangeError when the activity is not among `rows` or no seal is given.
 */
export function buildInclusionProof(input: InclusionProofInput): InclusionProof {
  const index = input.rows.findIndex(
    (row) => (row.activity === null ? row.id : row.activity.id) === input.activityId,
  );
  const row = input.rows[index];
  if (row === undefined) throw new RangeError(`activity ${input.activityId} is not among the seal's rows`);
  if (row.activity === null) throw new RangeError(`activity ${input.activityId} cannot be read`);
  if (input.seals.length === 0) throw new RangeError("an inclusion proof needs at least the row's seal");
  const leaves = input.rows.map((other) =>
    other.activity === null ? Buffer.alloc(HASH_BYTES) : sealedRowLeafHash(other),
  );
  const activity = JSON.parse(canonicalActivityJson(row.activity)) as Record<string, unknown>;
  // An erased row's properties read back as {}; the proof shows them as the null they are. Any
  // other value in an erased field is shown as stored, and fails: no salt commits to it.
  if (row.salt === null) {
    for (const column of Object.keys(row.commitments)) {
      const value = activity[column];
      if (typeof value === 'object' && value !== null && Object.keys(value).length === 0)
        activity[column] = null;
    }
  }
  return Object.freeze({
    format: INCLUSION_PROOF_FORMAT,
    activity,
    salt: row.salt === null ? null : Buffer.from(row.salt).toString('hex'),
    commitments: { ...row.commitments },
    leaf_hash: leaves[index]!.toString('hex'),
    leaf_index: index,
    merkle_path: inclusionPath(leaves, index).map((hash) => hash.toString('hex')),
    seals: input.seals.map(sealToJson),
    checkpoint: input.checkpoint,
    public_key: input.publicKeyPem,
    anchored: input.checkpoint !== null,
    unanchored_reason:
      input.checkpoint === null ? (input.unanchoredReason ?? 'no checkpoint signs this seal') : null,
  });
}

/**
 * Checks a proof (of any shape: it comes from outside) by the steps in this module's comment.
 * With `publicKeyPem` the checkpoint must be signed by that key, not merely by the proof's own.
 */
export function verifyInclusionProof(
  proof: unknown,
  options: { readonly publicKeyPem?: string } = {},
): InclusionProofResult {
  try {
    const problem = proofProblem(proof as InclusionProof, options.publicKeyPem);
    if (problem !== null) return { verified: false, problem };
    return { verified: true, anchored: (proof as InclusionProof).checkpoint !== null };
  } catch (error) {
    return { verified: false, problem: `the proof is malformed (${(error as Error).message})` };
  }
}

export function sealToJson(seal: Seal): SealJson {
  return {
    seq: seal.seq,
    prev_hash: seal.prev_hash.toString('hex'),
    root: seal.root.toString('hex'),
    row_count: seal.row_count,
    sealed_at: seal.sealed_at.toISOString(),
    hash: seal.hash.toString('hex'),
  };
}

export function sealFromJson(json: SealJson): Seal {
  return Object.freeze({
    seq: json.seq,
    prev_hash: hexHash(json.prev_hash, 'prev_hash'),
    root: hexHash(json.root, 'root'),
    row_count: json.row_count,
    sealed_at: new Date(json.sealed_at),
    hash: hexHash(json.hash, 'hash'),
  });
}

function proofProblem(proof: InclusionProof, trustedKeyPem: string | undefined): string | null {
  if (proof?.format !== INCLUSION_PROOF_FORMAT) return `the proof's format is not ${INCLUSION_PROOF_FORMAT}`;
  const columns = Object.keys(proof.commitments);
  const notErasable = columns.find((column) => !isErasableField(column));
  if (notErasable !== undefined) return `commitments name ${notErasable}, which is not an erasable field`;
  if (proof.salt !== null && !/^[0-9a-f]{32}$/.test(proof.salt)) {
    return 'salt is not 32 lowercase hex digits or null';
  }
  const salt = proof.salt === null ? null : Buffer.from(proof.salt, 'hex');
  const values: Record<string, unknown> = { ...proof.activity };
  for (const column of columns as ErasableField[]) {
    const value = proof.activity[column] ?? null;
    if (salt === null && value !== null) return `${column} has a value but no salt: an erased field is null`;
    if (salt !== null && fieldCommitment(salt, column, canonicalJson(value)) !== proof.commitments[column]) {
      return `the commitment of ${column} does not match its value`;
    }
    values[column] = { commitment: proof.commitments[column] };
  }
  const leaf = hashLeaf(Buffer.from(canonicalJson(values), 'utf8'));
  if (leaf.toString('hex') !== proof.leaf_hash)
    return 'the activity does not hash to the leaf: the row was changed';

  const seals = proof.seals.map(sealFromJson);
  const first = seals[0];
  if (first === undefined) return 'the proof has no seal';
  const path = proof.merkle_path.map((hash) => hexHash(hash, 'merkle_path'));
  if (!verifyInclusion(leaf, proof.leaf_index, first.row_count, path, first.root)) {
    return `the Merkle path does not lead from the leaf to the root of seal ${first.seq}`;
  }
  const chainBreak = sealChainBreak(seals);
  if (chainBreak !== null) return chainBreak;

  const head = seals.at(-1)!;
  if (proof.checkpoint === null) {
    return trustedKeyPem === undefined
      ? null
      : `not anchored: no checkpoint signed by the trusted key (${proof.unanchored_reason ?? 'none given'})`;
  }
  const body = proof.checkpoint?.body;
  if (body?.seq !== head.seq || body.seal_hash !== head.hash.toString('hex')) {
    return `the checkpoint does not sign seal ${head.seq}, the last seal of the proof`;
  }
  const key = trustedKeyPem ?? proof.public_key;
  if (key === null)
    return 'the proof carries no public key to check its checkpoint with: pass the trusted key';
  const signatureProblem = checkpointProblem(proof.checkpoint, key);
  return signatureProblem === null ? null : `checkpoint: ${signatureProblem}`;
}

function hexHash(text: string, name: string): Buffer {
  if (typeof text !== 'string' || !/^[0-9a-f]{64}$/.test(text)) {
    throw new TypeError(`${name} is not 64 lowercase hex digits`);
  }
  return Buffer.from(text, 'hex');
}
