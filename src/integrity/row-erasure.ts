import type { Activity } from '../core/activity.js';
import { ACTIVITY_FIELDS } from '../core/activity-fields.js';
import {
  checkErasableFields,
  type ErasableField,
  type FieldCommitments,
  fieldCommitments,
  SALT_BYTES,
} from './activity-leaf.js';

/**
 * What erasing one stored row's personal data writes, decided from the row alone, so the store
 * only carries it out (`store/erase.ts`).
 *
 * A sealed row with a salt keeps, in `seal_commitments`, the commitment of each field it was
 * sealed with (made from its current values and salt, as `activity-leaf.ts` defines them), and
 * those fields and its salt become null: its leaf is then made from the commitments and is the
 * leaf it was sealed with, so `verify` still passes, while the values cannot be recovered (without
 * the salt a commitment cannot be brute-forced back to a short value). Were a value altered before
 * the erasure, its commitment is of the altered value and the row still fails `verify`: erasure
 * neither hides tampering nor repairs it. Fields outside the row's sealed list are kept: its leaf
 * holds them by value, so nulling them would break the seal.
 *
 * A row no seal covers has nothing to keep: the configured erasable fields become null.
 */

/** A stored row as erasure reads it. */
export interface ErasableRow {
  readonly activity: Activity;
  /** `seal_seq`; null for a row no seal covers. */
  readonly sealSeq: number | null;
  /** `seal_salt` as stored (32 hex digits), null once erased. */
  readonly salt: string | null;
  /** `seal_commitments` as stored (JSON text), null until erased. */
  readonly commitments: string | null;
}

export type RowErasure =
  /** Nothing left to erase: the row was erased before (or, unsealed, holds no erasable value). */
  | { readonly kind: 'already-erased' }
  /** The row's leaf holds no field by commitment, so none can be erased without breaking its seal. */
  | { readonly kind: 'not-erasable' }
  /** Null `fields` (and, for a sealed row, the salt), keeping `commitments` when not null. */
  | {
      readonly kind: 'erase';
      readonly fields: readonly ErasableField[];
      readonly commitments: FieldCommitments | null;
    };

const PROPERTY_OF = new Map(ACTIVITY_FIELDS.map((field) => [field.column as string, field.property]));
const SALT_PATTERN = new RegExp(`^[0-9a-f]{${SALT_BYTES * 2}}$`);

/**
 * How to erase `row`. `sealedFields` is the list its seal records (null when the seal records
 * none, for seals written before the list was kept); `configuredFields` is
 * `ACTIVITY_LOG_ERASABLE_FIELDS`, used for rows no seal covers and for seals without a list.
 *
 * @throws RangeError when the row's salt or stored commitments are not what the store writes
 *   (altered by hand): no commitment can be made that its seal would accept.
 */
export function planRowErasure(
  row: ErasableRow,
  sealedFields: readonly ErasableField[] | null,
  configuredFields: readonly ErasableField[],
): RowErasure {
  if (row.sealSeq === null) {
    if (configuredFields.length === 0) return { kind: 'not-erasable' };
    const values = row.activity as unknown as Readonly<Record<string, unknown>>;
    const held = configuredFields.some((column) => !isEmpty(values[PROPERTY_OF.get(column)!]));
    return held ? { kind: 'erase', fields: configuredFields, commitments: null } : { kind: 'already-erased' };
  }
  if (row.salt === null) {
    // Commitments and no salt: erased before. Neither: altered by hand, and no value is kept.
    if (row.commitments !== null) return { kind: 'already-erased' };
    const fields = sealedFields ?? configuredFields;
    return fields.length === 0 ? { kind: 'not-erasable' } : { kind: 'erase', fields, commitments: null };
  }
  if (!SALT_PATTERN.test(row.salt)) throw altered(row, 'its seal_salt is not 32 hex digits');
  const fields = row.commitments === null ? (sealedFields ?? configuredFields) : storedCommitmentFields(row);
  if (fields.length === 0) return { kind: 'not-erasable' };
  return {
    kind: 'erase',
    fields,
    commitments: fieldCommitments(row.activity, Buffer.from(row.salt, 'hex'), fields),
  };
}

/** A stored commitment's fields: a row sealed with commitments stored names its own fields. */
function storedCommitmentFields(row: ErasableRow): readonly ErasableField[] {
  try {
    return checkErasableFields(Object.keys(JSON.parse(row.commitments!) as object));
  } catch {
    throw altered(row, 'its seal_commitments are not commitments of erasable fields');
  }
}

function isEmpty(value: unknown): boolean {
  return (
    value === null ||
    value === undefined ||
    (typeof value === 'object' && Object.keys(value as object).length === 0)
  );
}

function altered(row: ErasableRow, problem: string): Error {
  return new RangeError(`row ${row.activity.id} cannot be erased: ${problem} (altered; run verify)`);
}
