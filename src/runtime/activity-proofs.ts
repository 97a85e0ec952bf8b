import type { DatabaseConfig } from '../config/config.js';
import type { Activity } from '../core/activity.js';
import { ActivityLogError } from '../core/errors.js';
import {
  checkErasableFields,
  type ErasableField,
  type FieldCommitments,
  fieldCommitments,
  SALT_BYTES,
} from '../integrity/activity-leaf.js';
import {
  buildInclusionProof,
  type InclusionProof,
  type InclusionProofResult,
  type SealedRow,
  type UnreadableRow,
  verifyInclusionProof,
} from '../integrity/inclusion-proof.js';
import type { StoredSealedRow } from '../integrity/verify-chain.js';
import { DIALECT_REGISTRY } from '../store/dialect-registry.js';
import { SealReader } from '../store/seal-reader.js';
import { findAnchoringCheckpoint } from './checkpoint-files.js';
import { readVerificationKey } from './signing-key-files.js';

/**
 * Most seals one proof carries. A proof anchored by the first checkpoint after its row's seal
 * carries the seals of about one checkpoint interval; past this it is not anchored (and an
 * unanchored proof ends here), so no request reads an unbounded part of the chain.
 */
export const MAX_PROOF_SEALS = 50_000;

export interface ActivityProofsOptions {
  readonly database: DatabaseConfig;
  /** Where `activity-log checkpoint` writes checkpoints (`ACTIVITY_LOG_CHECKPOINT_DIR`). */
  readonly checkpointDir: string | null;
  /** The signing key (`ACTIVITY_LOG_SIGNING_KEY`), whose public half goes into each proof. */
  readonly signingKeyPath: string | null;
}

/** One stored activity, and whether its personal data was erased. */
export interface StoredActivity {
  readonly activity: Activity;
  readonly erased: boolean;
}

/**
 * Which checkpoint anchors a proof: `first`, the first one signing the row's seal or a later one
 * (the shortest chain); `latest`, the newest one of the table.
 */
export type ProofAnchor = 'first' | 'latest';

/** A proof, and the server's own check of it (signature included). */
export interface CheckedProof {
  readonly proof: InclusionProof;
  readonly check: InclusionProofResult;
}

/**
 * Reads single activities and makes their inclusion proofs (`integrity/inclusion-proof.ts`) from
 * the database and the checkpoint directory, for the backoffice API. The proof is made from what
 * is stored, tampered or not: checking it is the verifier's work. It runs from the row's seal to
 * the first checkpoint that signs that seal or a later one (every signed checkpoint at or after the
 * seal anchors the row as well as the newest, and the first keeps the proof short) or, when asked,
 * to the newest checkpoint; without one, to the chain's head, not anchored. Opens its connections on first use; `close()` them.
 */
export class ActivityProofs {
  readonly #options: ActivityProofsOptions;
  readonly #erasableFields: readonly ErasableField[];
  #reader: SealReader | null = null;
  #publicKey: Promise<string | null> | null = null;

  constructor(options: ActivityProofsOptions) {
    this.#options = options;
    this.#erasableFields = checkErasableFields(options.database.erasableFields);
  }

  /**
   * Activity `id`, or null when there is none.
   *
   * @throws ActivityLogError `PROOF_UNAVAILABLE` when its values cannot be read.
   */
  async activity(id: string): Promise<StoredActivity | null> {
    const row = await this.#openReader().row(id);
    if (row === null) return null;
    if (row.activity === null) throw unreadable(id, 'its values cannot be read (altered?)');
    return { activity: row.activity, erased: row.commitments !== null };
  }

  /**
   * The inclusion proof of activity `id`, anchored by the `anchor` checkpoint, with the server's
   * check of it.
   *
   * @throws ActivityLogError `NOT_FOUND` when there is no such activity, `ACTIVITY_NOT_SEALED` when
   *   no seal covers it, `PROOF_UNAVAILABLE` when its seal is missing or its row cannot be read.
   */
  async proof(id: string, anchorChoice: ProofAnchor = 'first'): Promise<CheckedProof> {
    const reader = this.#openReader();
    const row = await reader.row(id);
    if (row === null) throw new ActivityLogError('NOT_FOUND', `no activity ${id}`, { field: 'id' });
    if (row.sealSeq === null) {
      throw new ActivityLogError(
        'ACTIVITY_NOT_SEALED',
        `activity ${id} is not sealed (stored while ACTIVITY_LOG_SEAL was off): there is no proof to give; activity-log seal --backfill seals it`,
        { field: 'id', details: { sealed: false } },
      );
    }
    const seq = row.sealSeq;
    const group = await reader.sealGroup(seq);
    if (group === null || group.seal === null) {
      throw unreadable(id, `it claims seal ${seq}, which does not exist (deleted, or a forged seal_seq)`);
    }
    const erasable = group.erasableFields ?? this.#erasableFields;
    const rows = group.rows.map((stored) => proofRow(stored, erasable));
    const own = rows.find((candidate) => candidate.activity !== null && candidate.activity.id === id);
    if (own === undefined) {
      throw unreadable(id, 'its values or its seal_salt / seal_commitments cannot be read (altered?)');
    }

    let anchor = await this.#anchor(seq, anchorChoice);
    let seals = await reader.seals(
      seq,
      anchor.checkpoint?.body.seq ?? Number.MAX_SAFE_INTEGER,
      MAX_PROOF_SEALS,
    );
    if (anchor.checkpoint !== null && anchor.checkpoint.body.seq - seq >= MAX_PROOF_SEALS) {
      anchor = {
        checkpoint: null,
        reason: `the first checkpoint after seal ${seq} signs seal ${anchor.checkpoint.body.seq}, more than ${MAX_PROOF_SEALS} seals later, more than a proof carries`,
      };
    }
    if (anchor.checkpoint === null && seals.length === MAX_PROOF_SEALS) {
      anchor = { ...anchor, reason: `${anchor.reason}; the proof stops after ${MAX_PROOF_SEALS} seals` };
    }
    if (seals[0]?.seq !== seq) seals = [group.seal, ...seals.filter((seal) => seal.seq > seq)];
    const proof = buildInclusionProof({
      rows,
      activityId: id,
      seals,
      checkpoint: anchor.checkpoint,
      publicKeyPem: await this.#publicKeyPem(),
      unanchoredReason: anchor.checkpoint === null ? anchor.reason : undefined,
    });
    // The proof carries the server's own key, so this checks the signature with it.
    return { proof, check: verifyInclusionProof(proof) };
  }

  async close(): Promise<void> {
    const reader = this.#reader;
    this.#reader = null;
    await reader?.close();
  }

  async #anchor(
    seq: number,
    choice: ProofAnchor,
  ): Promise<{ checkpoint: InclusionProof['checkpoint']; reason: string }> {
    const { checkpointDir, database } = this.#options;
    if (checkpointDir === null) {
      return { checkpoint: null, reason: 'ACTIVITY_LOG_CHECKPOINT_DIR is not set: no checkpoint is kept' };
    }
    const found = await findAnchoringCheckpoint(checkpointDir, database.table, seq);
    const chosen = choice === 'latest' ? found.newest : found.checkpoint;
    if (chosen !== null && chosen.checkpoint.body.seq >= seq)
      return { checkpoint: chosen.checkpoint, reason: '' };
    return {
      checkpoint: null,
      reason:
        found.newest === null
          ? `no checkpoint of ${database.table} in ${checkpointDir} yet (activity-log checkpoint writes one)`
          : `the newest checkpoint signs seal ${found.newest.checkpoint.body.seq}, before this activity's seal ${seq}; the next checkpoint covers it`,
    };
  }

  #publicKeyPem(): Promise<string | null> {
    const path = this.#options.signingKeyPath;
    // A key that could not be read is read again next time, not remembered as missing.
    this.#publicKey ??=
      path === null
        ? Promise.resolve(null)
        : readVerificationKey(path, 'ACTIVITY_LOG_SIGNING_KEY').catch((error: unknown) => {
            this.#publicKey = null;
            throw error;
          });
    return this.#publicKey;
  }

  #openReader(): SealReader {
    const { database } = this.#options;
    this.#reader ??= new SealReader(
      DIALECT_REGISTRY[database.connection].create({ ...database, poolMax: Math.min(database.poolMax, 2) }),
      database.table,
    );
    return this.#reader;
  }
}

/**
 * A stored row as a proof needs it: its commitments (recomputed from its values and salt with the
 * seal's erasable fields, or as stored once it was erased), or null when they cannot be had.
 */
function proofRow(stored: StoredSealedRow, erasable: readonly ErasableField[]): SealedRow | UnreadableRow {
  const { id, activity } = stored;
  const unreadable: UnreadableRow = { id, activity: null };
  if (activity === null) return unreadable;
  try {
    const kept = stored.commitments === null ? null : (JSON.parse(stored.commitments) as FieldCommitments);
    if (kept !== null) checkErasableFields(Object.keys(kept));
    if (stored.salt === null) return kept === null ? unreadable : { activity, salt: null, commitments: kept };
    if (!SALT_PATTERN.test(stored.salt)) return unreadable;
    const salt = Buffer.from(stored.salt, 'hex');
    const fields = kept === null ? erasable : (Object.keys(kept) as ErasableField[]);
    return { activity, salt, commitments: fieldCommitments(activity, salt, fields) };
  } catch {
    return unreadable;
  }
}

const SALT_PATTERN = new RegExp(`^[0-9a-f]{${SALT_BYTES * 2}}$`);

function unreadable(id: string, why: string): ActivityLogError {
  return new ActivityLogError(
    'PROOF_UNAVAILABLE',
    `no proof of activity ${id} can be made: ${why}; activity-log verify names the damage`,
    { field: 'id' },
  );
}
