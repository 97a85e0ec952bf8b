import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { canonicalJson } from '../core/canonical-encoding.js';
import { ActivityLogError } from '../core/errors.js';

/**
 * A checkpoint: the head of a table's seal chain (its last seal's `seq` and hash, and how many rows
 * the chain seals), signed with Ed25519 and kept outside the database, one JSON file per checkpoint
 * that is never overwritten. Whoever can rewrite the table cannot rewrite a checkpoint already
 * handed out, so truncating the newest seals or rebuilding the whole chain shows against it.
 *
 * The file is `{"body":{…},"signature":"<base64>"}`. The body:
 *
 * - `format`: `activity-log/checkpoint/v1`, so that the signature says what was signed;
 * - `table`, `seq`, `seal_hash` (64 lowercase hex digits), `total_rows` (the sum of `row_count`
 *   of seals 1…`seq`), `issued_at` (ISO-8601 UTC with milliseconds);
 * - `key_id`: SHA-256 of the public key's DER SubjectPublicKeyInfo, 64 lowercase hex digits.
 *
 * The signed bytes are the UTF-8 of the body's canonical JSON: keys sorted, no whitespace, as
 * `JSON.stringify` writes strings and numbers. The signature is Ed25519 (RFC 8032, pure, no
 * pre-hash) over those bytes, in base64.
 *
 * Test vector (Ed25519 signatures are deterministic): the key of RFC 8032 §7.1 TEST 1 (secret
 * `9d61b19d…1cae7f60`, key id `06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9`)
 * signing table `activity_log`, seq 1, seal hash
 * `40219b65033067139a2cb8c6f9e35ede1235899383d1b3f7a2f25afbf5a609bc` (the seal-hash vector),
 * 8 rows, issued at `2025-11-28T10:00:00.000Z` signs
 *
 * ```
 * {"format":"activity-log/checkpoint/v1","issued_at":"2025-11-28T10:00:00.000Z","key_id":"06e3…2fa9",
 * "seal_hash":"4021…09bc","seq":1,"table":"activity_log","total_rows":8}
 * ```
 *
 * (one line, hashes in full) to `GPi8zz3utDU4Il/YZo7Qr7vKo0UiUGpH9UWwXq1songphqFP7IX34+PhJwV8nuR3clJj2KPcMbOUw+krC2ipCw==`.
 */

export const CHECKPOINT_FORMAT = 'activity-log/checkpoint/v1';

export interface CheckpointBody {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly table: string;
  readonly seq: number;
  readonly seal_hash: string;
  readonly total_rows: number;
  readonly issued_at: string;
  readonly key_id: string;
}

export interface Checkpoint {
  readonly body: CheckpointBody;
  readonly signature: string;
}

/**
 * The head of a table's seal chain: its newest seal's `seq` and hash, and how many rows seals
 * 1…`seq` seal together (the sum of their `row_count`).
 */
export interface ChainHead {
  readonly table: string;
  readonly seq: number;
  readonly sealHash: Uint8Array;
  readonly totalRows: number;
}

/** What a checkpoint states: a chain head, and when it was signed. */
export interface CheckpointHead extends ChainHead {
  readonly issuedAt: Date;
}

export interface SigningKeyPair {
  /** SubjectPublicKeyInfo, PEM. */
  readonly publicKeyPem: string;
  /** PKCS #8, PEM, unencrypted: keep it where only the signer reads it. */
  readonly privateKeyPem: string;
}

const HEX_HASH = /^[0-9a-f]{64}$/;
const ISO_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ED25519_SIGNATURE_BYTES = 64;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A new Ed25519 key pair for signing checkpoints. */
export function generateSigningKeyPair(): SigningKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return Object.freeze({
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  });
}

/** The key id of a public key: SHA-256 of its DER SubjectPublicKeyInfo, in hex. */
export function publicKeyId(publicKey: string | KeyObject): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** The bytes a checkpoint's signature covers: the UTF-8 of its body's canonical JSON. */
export function checkpointSignedBytes(body: CheckpointBody): Buffer {
  return Buffer.from(canonicalJson(body), 'utf8');
}

/**
 * Signs the head of a seal chain.
 *
 * @throws ActivityLogError `CONFIG_INVALID` when the key is not an Ed25519 private key.
 */
export function signCheckpoint(head: CheckpointHead, privateKeyPem: string): Checkpoint {
  const privateKey = ed25519PrivateKey(privateKeyPem);
  const body: CheckpointBody = Object.freeze({
    format: CHECKPOINT_FORMAT,
    table: head.table,
    seq: head.seq,
    seal_hash: Buffer.from(head.sealHash).toString('hex'),
    total_rows: head.totalRows,
    issued_at: head.issuedAt.toISOString(),
    key_id: publicKeyId(createPublicKey(privateKey)),
  });
  const problem = bodyProblem(body);
  if (problem !== null) throw new RangeError(`cannot sign this checkpoint: ${problem}`);
  const signature = sign(null, checkpointSignedBytes(body), privateKey).toString('base64');
  return Object.freeze({ body, signature });
}

/**
 * What is wrong with a checkpoint (read from a file, so of any shape) checked against the public
 * key it should be signed with, or null when its body is well formed, names that key and carries
 * that key's signature.
 */
export function checkpointProblem(checkpoint: unknown, publicKeyPem: string): string | null {
  const problem = checkpointFormatProblem(checkpoint);
  if (problem !== null) return problem;
  const { body, signature } = checkpoint as Checkpoint;
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(publicKeyPem);
  } catch {
    return 'the public key is not a PEM public key';
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') return 'the public key is not an Ed25519 key';
  if (body.key_id !== publicKeyId(publicKey))
    return `the checkpoint is signed by key ${body.key_id}, not this one`;
  return verify(null, checkpointSignedBytes(body), publicKey, Buffer.from(signature, 'base64'))
    ? null
    : 'the signature does not match the body';
}

/**
 * What keeps a value (read from a file, so of any shape) from being a checkpoint, signature
 * unchecked, or null when it has a well-formed body and 64 bytes of base64 as its signature.
 */
export function checkpointFormatProblem(checkpoint: unknown): string | null {
  if (!isRecord(checkpoint) || !isRecord(checkpoint.body)) return 'a checkpoint is an object with a body';
  const problem = bodyProblem(checkpoint.body as unknown as CheckpointBody);
  if (problem !== null) return problem;
  const { signature } = checkpoint;
  if (
    typeof signature !== 'string' ||
    !BASE64.test(signature) ||
    Buffer.from(signature, 'base64').length !== ED25519_SIGNATURE_BYTES
  ) {
    return 'the signature is not 64 bytes of base64';
  }
  const keys = Object.keys(checkpoint).sort().join(',');
  return keys === 'body,signature' ? null : `the checkpoint has other fields (${keys})`;
}

/** Whether a checkpoint is well formed and signed by the key `publicKeyPem` (see {@link checkpointProblem}). */
export function verifyCheckpoint(checkpoint: unknown, publicKeyPem: string): boolean {
  return checkpointProblem(checkpoint, publicKeyPem) === null;
}

/**
 * The file a checkpoint is written to: `<table>-<seq, 12 digits>-<issued_at, compact>.json`, e.g.
 * `activity_log-000000000042-20251128T093000123Z.json`, so a directory lists each table's
 * checkpoints in order. Written with exclusive create, a checkpoint never replaces another.
 */
export function checkpointFileName(checkpoint: Checkpoint): string {
  const { table, seq, issued_at } = checkpoint.body;
  const safeTable = table.replace(/[^A-Za-z0-9_]/g, '_');
  const compactTime = issued_at.replace(/[-:.]/g, '');
  return `${safeTable}-${String(seq).padStart(12, '0')}-${compactTime}.json`;
}

function bodyProblem(body: CheckpointBody): string | null {
  if (body.format !== CHECKPOINT_FORMAT) return `the checkpoint's format is not ${CHECKPOINT_FORMAT}`;
  if (typeof body.table !== 'string' || body.table === '') return 'table is not a table name';
  if (!isCount(body.seq) || body.seq < 1) return 'seq is not a seal number (1 or more)';
  if (typeof body.seal_hash !== 'string' || !HEX_HASH.test(body.seal_hash)) {
    return 'seal_hash is not 64 lowercase hex digits';
  }
  if (!isCount(body.total_rows)) return 'total_rows is not a whole number';
  if (typeof body.issued_at !== 'string' || !ISO_MS_UTC.test(body.issued_at)) {
    return 'issued_at is not an ISO-8601 UTC time with milliseconds';
  }
  if (typeof body.key_id !== 'string' || !HEX_HASH.test(body.key_id))
    return 'key_id is not 64 lowercase hex digits';
  const keys = Object.keys(body).sort().join(',');
  if (keys !== 'format,issued_at,key_id,seal_hash,seq,table,total_rows')
    return `the body has other fields (${keys})`;
  return null;
}

function ed25519PrivateKey(privateKeyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (cause) {
    throw new ActivityLogError('CONFIG_INVALID', 'ACTIVITY_LOG_SIGNING_KEY is not a PEM private key', {
      field: 'ACTIVITY_LOG_SIGNING_KEY',
      cause,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      `ACTIVITY_LOG_SIGNING_KEY is an ${key.asymmetricKeyType ?? 'unknown'} key; checkpoints are signed with Ed25519 (activity-log keygen writes one)`,
      { field: 'ACTIVITY_LOG_SIGNING_KEY' },
    );
  }
  return key;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
