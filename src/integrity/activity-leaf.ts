import { hash, randomFillSync } from 'node:crypto';
import type { Activity } from '../core/activity.js';
import { ACTIVITY_FIELDS, type ActivityField } from '../core/activity-fields.js';
import { CANONICAL_FIELDS, canonicalJson, propertiesJson } from '../core/canonical-encoding.js';
import { ActivityLogError } from '../core/errors.js';
import { sha256Buffer } from './merkle-tree.js';

/**
 * The leaf a stored activity contributes to its seal's Merkle tree, and the commitments that let
 * its personal data be erased without breaking the seal.
 *
 * **Commitment.** Each erasable field of a row is committed as
 *
 *     SHA-256(salt ‖ UTF-8(column) ‖ 0x00 ‖ UTF-8(canonical JSON of the value))
 *
 * written as 64 lowercase hex digits. `salt` is 16 random bytes kept with the row; `column` is the
 * snake_case column name (`causer_id`); the value is written as the canonical encoding writes it
 * (`"7"` for a string, `null` for no value, the properties' canonical JSON text). The NUL byte ends
 * the column name, which never contains one, so no two (column, value) pairs hash the same bytes.
 * Every erasable field is committed, a null one too, so an erased row and a row that never had the
 * value look alike. Erasure sets the fields and the salt to null and keeps the commitments; without
 * the salt a commitment cannot be brute-forced back to a short value such as an IP address.
 *
 * **Leaf.** leaf = SHA-256(0x00 ‖ leaf encoding), the leaf encoding being the row's canonical
 * encoding (`canonicalActivityJson`) with the value of each committed field replaced by the object
 * `{"commitment":"<64 hex>"}` (key order and every other byte unchanged). With no erasable fields
 * the leaf encoding is the canonical encoding itself. The canonical encoding is the same for a row
 * read back from MariaDB, PostgreSQL or SQLite, and so is the leaf.
 *
 * A row's stored commitments name the fields it was sealed with: its leaf is recomputed with
 * those (`sealedRowLeafHash` in `inclusion-proof.ts`), so changing `ACTIVITY_LOG_ERASABLE_FIELDS`
 * later changes the leaves of new rows only.
 *
 * Test vector: the canonical encoding's test activity (`canonical-encoding.ts`), salt
 * `000102030405060708090a0b0c0d0e0f`, the default erasable fields:
 *
 * - commitments: `causer_id` `eb86c47da78a7e5f5966a140f5bb5e4b5c0b523525858f8540fa698094ca60ef`,
 *   `ip_address` `e88f42d48654c97482f336a7b0b04956b0788bd167a8473354d1c65552c34a8c`,
 *   `user_agent` `c632ae5fc52e3c62621718e4c63f557f29d4614b54ca31087ba7f1628aea1885`,
 *   `properties` `8fe45373987dbc544109b7c80a6e6ca71d4fc6521e23058cf02945dc48ed8c55`;
 * - leaf `213c0800770ca70055cdf6ca207cd443df6d1e91712caf43681a7d937548e898`, for the row and for
 *   the same row erased;
 * - with no erasable fields, leaf `0b55c2a0f6879b621d19e4fd729a74ece83dd3d340ffa2ab8260ac1e9cc7ec37`.
 */

/** Bytes of random salt per row. */
export const SALT_BYTES = 16;

/** A field that may be erased: any nullable column (erasure writes null into it). */
export type ErasableField = Extract<ActivityField, { readonly nullable: true }>['column'];

/** A row's commitments: 64 lowercase hex digits per erasable column. */
export type FieldCommitments = Readonly<Partial<Record<ErasableField, string>>>;

/** How a row's leaf is made. */
export interface LeafOptions {
  /**
   * The row's salt. With a salt the commitments are made from the values, so a changed value
   * changes the leaf; null for an erased row, whose stored `commitments` stand in for its values.
   */
  readonly salt: Uint8Array | null;
  /** The fields committed rather than stored by value in the leaf. */
  readonly erasableFields: readonly ErasableField[];
  /** The commitments stored with the row; required when `salt` is null. */
  readonly commitments?: FieldCommitments | null | undefined;
}

const ERASABLE = new Map(
  ACTIVITY_FIELDS.filter((field) => field.nullable).map((field) => [field.column as string, field]),
);

const COMMITMENT_PATTERN = /^[0-9a-f]{64}$/;

/** Salts drawn from the system's random source at a time: one call per this many rows. */
const SALTS_PER_DRAW = 256;
let saltPool = Buffer.alloc(0);
let saltPoolOffset = 0;

/**
 * A fresh random salt for one row. Salts are cut from a block of random bytes drawn for
 * {@link SALTS_PER_DRAW} rows at once (one system call instead of one per row); each block is
 * new memory, never refilled, so a salt handed out never changes.
 */
export function generateSalt(): Buffer {
  if (saltPoolOffset === saltPool.length) {
    saltPool = randomFillSync(Buffer.allocUnsafe(SALT_BYTES * SALTS_PER_DRAW));
    saltPoolOffset = 0;
  }
  const salt = saltPool.subarray(saltPoolOffset, saltPoolOffset + SALT_BYTES);
  saltPoolOffset += SALT_BYTES;
  return salt;
}

/** Whether `column` names a field that may be erased. */
export function isErasableField(column: string): column is ErasableField {
  return ERASABLE.has(column);
}

/**
 * The erasable fields a list of column names (`ACTIVITY_LOG_ERASABLE_FIELDS`) names.
 *
 * @throws ActivityLogError `CONFIG_INVALID` naming a column that is unknown or not nullable.
 */
export function checkErasableFields(columns: readonly string[]): readonly ErasableField[] {
  return Object.freeze(columns.map(erasableField));
}

/** SHA-256(salt ‖ UTF-8(column) ‖ 0x00 ‖ UTF-8(valueJson)) in hex: one field's commitment. */
export function fieldCommitment(salt: Uint8Array, column: string, valueJson: string): string {
  checkSalt(salt);
  return commitmentHex(salt, column, valueJson);
}

/** Reused for every commitment and leaf: the bytes are hashed at once and never kept. */
let scratch = Buffer.allocUnsafe(16 * 1024);

function scratchOf(bytes: number): Buffer {
  if (scratch.length < bytes) scratch = Buffer.allocUnsafe(Math.max(bytes, scratch.length * 2));
  return scratch;
}

/** Most UTF-8 bytes one UTF-16 unit takes. */
const MAX_UTF8_BYTES_PER_UNIT = 3;

function commitmentHex(salt: Uint8Array, column: string, valueJson: string): string {
  const bytes = scratchOf(SALT_BYTES + column.length + 1 + valueJson.length * MAX_UTF8_BYTES_PER_UNIT);
  bytes.set(salt, 0);
  let length = SALT_BYTES + bytes.write(column, SALT_BYTES, 'utf8');
  bytes[length++] = 0x00;
  length += bytes.write(valueJson, length, 'utf8');
  return hash('sha256', bytes.subarray(0, length), 'hex');
}

/** SHA-256(0x00 ‖ UTF-8(text)), as `hashLeafText` makes it, in the reused buffer. */
function leafHashOfText(text: string): Buffer {
  const bytes = scratchOf(1 + text.length * MAX_UTF8_BYTES_PER_UNIT);
  bytes[0] = 0x00;
  const length = 1 + bytes.write(text, 1, 'utf8');
  return sha256Buffer(bytes.subarray(0, length));
}

/** The commitment of each field in `erasableFields` to its value in `activity`, under `salt`. */
export function fieldCommitments(
  activity: Activity,
  salt: Uint8Array,
  erasableFields: readonly ErasableField[],
): FieldCommitments {
  checkSalt(salt);
  const commitments: Partial<Record<ErasableField, string>> = {};
  for (const column of erasableFields) commitments[column] = commit(activity, salt, column);
  return Object.freeze(commitments);
}

/**
 * The fields whose stored commitment is not the commitment of the row's value under its salt:
 * a value or a commitment changed after the row was sealed.
 */
export function mismatchedCommitments(
  activity: Activity,
  salt: Uint8Array,
  commitments: FieldCommitments,
): ErasableField[] {
  checkSalt(salt);
  return Object.keys(commitments)
    .map((column) => erasableField(column))
    .filter((column) => commitments[column] !== commit(activity, salt, column));
}

/**
 * The bit of each canonical field (in {@link CANONICAL_FIELDS} order) committed in a leaf, and
 * the bit of each column by name.
 */
const FIELD_BIT = new Map(CANONICAL_FIELDS.map((field, index) => [field.column, 1 << index]));

/** The canonical fields' bits of `erasableFields` (each checked to be erasable). */
function committedMask(erasableFields: readonly string[]): number {
  let mask = 0;
  for (const column of erasableFields) mask |= FIELD_BIT.get(erasableField(column))!;
  return mask;
}

/**
 * One JSON text per canonical field: for a committed field what its commitment hashes (the
 * canonical JSON of its value), for every other field what the encoding writes.
 */
function activityTexts(activity: Activity, mask: number): string[] {
  const values = activity as unknown as Readonly<Record<string, unknown>>;
  const texts: string[] = new Array(CANONICAL_FIELDS.length);
  for (let index = 0; index < CANONICAL_FIELDS.length; index++) {
    const field = CANONICAL_FIELDS[index]!;
    const value = values[field.property];
    if (field.kind === 'json') texts[index] = propertiesJson(activity);
    else if (field.kind === 'timestamp') texts[index] = `"${(value as Date).toISOString()}"`;
    else if (value === null || value === undefined) texts[index] = 'null';
    else if (typeof value === 'string' || (mask & (1 << index)) === 0) texts[index] = JSON.stringify(value);
    else texts[index] = canonicalJson(value);
  }
  return texts;
}

/**
 * The leaf encoding of a row given its fields' JSON texts ({@link activityTexts}): the canonical
 * encoding with each committed field written as `{"commitment":"…"}`, made from `salt` or,
 * without one, taken from `stored`.
 */
function leafTextOf(
  texts: readonly string[],
  mask: number,
  salt: Uint8Array | null,
  stored: FieldCommitments | null | undefined,
): string {
  if (salt !== null && mask !== 0) putSalt(salt, texts, mask);
  let text = '';
  for (let index = 0; index < CANONICAL_FIELDS.length; index++) {
    const field = CANONICAL_FIELDS[index]!;
    const value = texts[index]!;
    const committed = (mask & (1 << index)) !== 0;
    if (!committed && field.omittedWhenNull && value === 'null') continue;
    text += text === '' ? `{${field.key}` : `,${field.key}`;
    if (!committed) text += value;
    else {
      const commitment =
        salt !== null
          ? saltedCommitmentHex(index, value)
          : (stored as Readonly<Record<string, string>>)[field.column]!;
      text += `{"commitment":"${commitment}"}`;
    }
  }
  return `${text}}`;
}

/** `column` ‖ 0x00 of each canonical field: what a commitment hashes between the salt and the value. */
const COLUMN_PREFIXES = CANONICAL_FIELDS.map((field) => Buffer.from(`${field.column}\u0000`, 'utf8'));
const LONGEST_PREFIX = Math.max(...COLUMN_PREFIXES.map((prefix) => prefix.length));

/**
 * Writes `salt` at the start of the reused buffer, grown first to hold every committed value,
 * for {@link saltedCommitmentHex} to hash each field after it.
 */
function putSalt(salt: Uint8Array, texts: readonly string[], mask: number): void {
  let longest = 0;
  for (let index = 0; index < texts.length; index++) {
    if ((mask & (1 << index)) !== 0) longest = Math.max(longest, texts[index]!.length);
  }
  scratchOf(SALT_BYTES + LONGEST_PREFIX + longest * MAX_UTF8_BYTES_PER_UNIT).set(salt, 0);
}

/** The commitment of canonical field `index` to `valueJson` under the salt {@link putSalt} wrote. */
function saltedCommitmentHex(index: number, valueJson: string): string {
  const prefix = COLUMN_PREFIXES[index]!;
  prefix.copy(scratch, SALT_BYTES);
  const length = SALT_BYTES + prefix.length + scratch.write(valueJson, SALT_BYTES + prefix.length, 'utf8');
  return hash('sha256', scratch.subarray(0, length), 'hex');
}

/** The bytes a row's leaf hashes (after the 0x00 prefix); see the module comment. */
export function leafEncoding(activity: Activity, options: LeafOptions): Buffer {
  const mask = leafMask(options);
  return Buffer.from(
    leafTextOf(activityTexts(activity, mask), mask, options.salt, options.commitments),
    'utf8',
  );
}

/** SHA-256(0x00 ‖ leaf encoding): the row's leaf in its seal's Merkle tree. */
export function activityLeafHash(activity: Activity, options: LeafOptions): Buffer {
  const mask = leafMask(options);
  return leafHashOfText(leafTextOf(activityTexts(activity, mask), mask, options.salt, options.commitments));
}

/**
 * The committed fields of a leaf made with `options`, once the salt or the stored commitments
 * they are made from are checked.
 */
function leafMask(options: LeafOptions): number {
  const mask = committedMask(options.erasableFields);
  if (mask === 0) return 0;
  if (options.salt !== null) checkSalt(options.salt);
  else for (const column of options.erasableFields) storedCommitment(options.commitments, column);
  return mask;
}

function storedCommitment(commitments: FieldCommitments | null | undefined, column: ErasableField): string {
  const stored = commitments?.[column];
  if (stored === undefined || !COMMITMENT_PATTERN.test(stored)) {
    throw new ActivityLogError(
      'VALIDATION_FAILED',
      `${column} has no salt to commit its value with and no stored commitment (64 lowercase hex digits)`,
      { field: column, details: { commitment: stored } },
    );
  }
  return stored;
}

function commit(activity: Activity, salt: Uint8Array, column: ErasableField): string {
  const field = ERASABLE.get(column) as ActivityField;
  const value = (activity as unknown as Readonly<Record<string, unknown>>)[field.property];
  return commitmentHex(
    salt,
    column,
    field.kind === 'json' ? propertiesJson(activity) : canonicalJson(value ?? null),
  );
}

function erasableField(column: string): ErasableField {
  if (!isErasableField(column)) {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      `ACTIVITY_LOG_ERASABLE_FIELDS names ${JSON.stringify(column)}, which is not a nullable column; erasable are ${[...ERASABLE.keys()].join(', ')}`,
      { field: 'ACTIVITY_LOG_ERASABLE_FIELDS', details: { column } },
    );
  }
  return column;
}

function checkSalt(salt: Uint8Array): void {
  if (salt.length !== SALT_BYTES) {
    throw new RangeError(`a row's salt is ${SALT_BYTES} bytes long (got ${salt.length})`);
  }
}

/**
 * A stored row's values as its reader got them from the driver, one per canonical field in
 * {@link CANONICAL_FIELDS} order: a text column's string or null; `properties` as the JSON text
 * stored (taken as it is), as the value a driver parsed, or null for none; `created_at` as its
 * ISO-8601 text (the reader's to make, null when it cannot).
 */
export type StoredLeafValues = readonly unknown[];

/**
 * The leaf of a stored row with a salt, made straight from its stored values: no activity is
 * rebuilt, and the stored properties text is hashed as it is rather than parsed and encoded
 * again. Null when a value is not of a form this takes.
 *
 * This leaf equals {@link activityLeafHash} of the decoded row whenever it equals the leaf the
 * row was sealed with, so a seal whose root these leaves make is intact; any other outcome says
 * nothing and the decoded rows must be checked. (A stored properties text can differ from its
 * canonical text only where its leaf then differs from the sealed one: committed, its hash
 * does; in place, it is the one value of the encoding that is not a single JSON token, the keys
 * around it are fixed, and no token can hold a key, so the encoding holds it unchanged.)
 */
export function storedRowLeafHash(
  values: StoredLeafValues,
  salt: Uint8Array,
  erasableFields: readonly ErasableField[],
): Buffer | null {
  const mask = committedMask(erasableFields);
  if (mask !== 0) checkSalt(salt);
  const texts: string[] = new Array(CANONICAL_FIELDS.length);
  for (let index = 0; index < CANONICAL_FIELDS.length; index++) {
    const kind = CANONICAL_FIELDS[index]!.kind;
    const value = values[index];
    if (kind === 'json') {
      if (value === null || value === undefined) texts[index] = '{}';
      else if (typeof value === 'string') {
        // A lone surrogate would be written as U+FFFD, which the canonical text escapes.
        if (!value.isWellFormed()) return null;
        texts[index] = value;
      } else if (typeof value === 'object') texts[index] = canonicalJson(value);
      else return null;
    } else if (kind === 'timestamp') {
      if (typeof value !== 'string') return null;
      texts[index] = `"${value}"`;
    } else if (value === null) texts[index] = 'null';
    else if (typeof value === 'string') texts[index] = JSON.stringify(value);
    else return null;
  }
  return leafHashOfText(leafTextOf(texts, mask, salt, null));
}
