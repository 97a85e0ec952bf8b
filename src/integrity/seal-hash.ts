import { createHash } from 'node:crypto';
import { HASH_BYTES } from './merkle-tree.js';

/**
 * A seal: one row of `<table>_seals`, closing one INSERT statement's rows under the Merkle root of
 * their leaves (in `id` order) and chaining to the seal before it, so that removing, reordering or
 * rewriting a seal breaks every hash after it.
 *
 * The seal hash is SHA-256 over 89 bytes, every integer unsigned big-endian:
 *
 * | bytes | field                                                                          |
 * | ----- | ------------------------------------------------------------------------------ |
 * | 1     | 0x02, keeping seal hashes apart from RFC 6962 leaf (0x00) and node (0x01) hashes |
 * | 8     | `seq`                                                                          |
 * | 32    | `prev_hash`: the previous seal's hash; 32 zero bytes for seal 1 (genesis)       |
 * | 32    | `root`: the Merkle root of the seal's leaves                                   |
 * | 8     | `row_count`                                                                    |
 * | 8     | `sealed_at` in milliseconds since 1970-01-01T00:00:00Z                          |
 *
 * Test vector: seq 1, the genesis `prev_hash`, root
 * `5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328` (the RFC 6962 reference
 * tree of 8 leaves), row count 8, sealed at `2025-11-28T09:30:00.123Z` (1764322200123 ms) hash to
 * `40219b65033067139a2cb8c6f9e35ede1235899383d1b3f7a2f25afbf5a609bc`.
 */
export interface Seal {
  readonly seq: number;
  readonly root: Buffer;
  readonly row_count: number;
  readonly prev_hash: Buffer;
  readonly hash: Buffer;
  readonly sealed_at: Date;
}

/** What a seal's hash covers. */
export interface SealHashInput {
  readonly seq: number;
  readonly prevHash: Uint8Array;
  readonly root: Uint8Array;
  readonly rowCount: number;
  readonly sealedAt: Date;
}

/** The `prev_hash` of seal 1: 32 zero bytes. */
export const GENESIS_PREV_HASH: Buffer = Buffer.alloc(HASH_BYTES);

const SEAL_DOMAIN = 0x02;
const SEAL_HASH_INPUT_BYTES = 1 + 8 + HASH_BYTES + HASH_BYTES + 8 + 8;

/** The hash of a seal (see {@link Seal} for the bytes). */
export function sealHash(input: SealHashInput): Buffer {
  return createHash('sha256').update(sealHashInput(input)).digest();
}

/** The 89 bytes {@link sealHash} hashes. */
export function sealHashInput({ seq, prevHash, root, rowCount, sealedAt }: SealHashInput): Buffer {
  checkCount('seq', seq);
  checkCount('row_count', rowCount);
  checkHash('prev_hash', prevHash);
  checkHash('root', root);
  const sealedAtMs = sealedAt.getTime();
  if (!Number.isSafeInteger(sealedAtMs) || sealedAtMs < 0) {
    throw new RangeError(`sealed_at must be a time after 1970-01-01 (got ${sealedAt.toString()})`);
  }
  const bytes = Buffer.alloc(SEAL_HASH_INPUT_BYTES);
  let offset = bytes.writeUInt8(SEAL_DOMAIN, 0);
  offset = bytes.writeBigUInt64BE(BigInt(seq), offset);
  offset += Buffer.from(prevHash).copy(bytes, offset);
  offset += Buffer.from(root).copy(bytes, offset);
  offset = bytes.writeBigUInt64BE(BigInt(rowCount), offset);
  bytes.writeBigUInt64BE(BigInt(sealedAtMs), offset);
  return bytes;
}

/** The seal after `previous` (seal 1 after none), closing `rowCount` rows under `root`. */
export function nextSeal(
  previous: Seal | null,
  { root, rowCount, sealedAt }: { readonly root: Buffer; readonly rowCount: number; readonly sealedAt: Date },
): Seal {
  const seq = previous === null ? 1 : previous.seq + 1;
  const prevHash = previous === null ? GENESIS_PREV_HASH : previous.hash;
  const at = new Date(sealedAt.getTime());
  return Object.freeze({
    seq,
    root,
    row_count: rowCount,
    prev_hash: prevHash,
    hash: sealHash({ seq, prevHash, root, rowCount, sealedAt: at }),
    sealed_at: at,
  });
}

/**
 * The first thing wrong with a run of consecutive seals, lowest `seq` first, or null when each
 * seal's hash is the hash of its fields, each `seq` follows the one before, each `prev_hash` is the
 * hash before it and seal 1 starts from the genesis hash.
 */
export function sealChainBreak(seals: readonly Seal[]): string | null {
  for (const [index, seal] of seals.entries()) {
    const recomputed = sealHash({
      seq: seal.seq,
      prevHash: seal.prev_hash,
      root: seal.root,
      rowCount: seal.row_count,
      sealedAt: seal.sealed_at,
    });
    if (!recomputed.equals(seal.hash)) return `seal ${seal.seq}: its hash is not the hash of its fields`;
    if (seal.seq === 1 && !GENESIS_PREV_HASH.equals(seal.prev_hash)) {
      return 'seal 1: prev_hash is not the genesis hash (32 zero bytes)';
    }
    const previous = seals[index - 1];
    if (previous === undefined) continue;
    if (seal.seq !== previous.seq + 1)
      return `seal ${seal.seq} follows seal ${previous.seq}: a seal is missing`;
    if (!seal.prev_hash.equals(previous.hash)) {
      return `seal ${seal.seq}: prev_hash is not the hash of seal ${previous.seq}`;
    }
  }
  return null;
}

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a whole number of at least 0 (got ${value})`);
  }
}

function checkHash(name: string, hash: Uint8Array): void {
  if (hash.length !== HASH_BYTES)
    throw new RangeError(`${name} must be ${HASH_BYTES} bytes (got ${hash.length})`);
}
