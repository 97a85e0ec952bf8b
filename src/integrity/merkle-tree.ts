import { createHash, hash } from 'node:crypto';

/**
 * The Merkle Tree Hash of RFC 6962 §2.1 (RFC 9162 §2.1.1), over SHA-256, so that a seal's root and
 * an inclusion path mean what they mean in Certificate Transparency and any RFC 6962 verifier
 * agrees with them:
 *
 * - a leaf hash is SHA-256(0x00 ‖ data), made by {@link hashLeaf}; the functions below take leaf
 *   hashes, never raw data, so the caller hashes each leaf exactly once;
 * - an interior node is SHA-256(0x01 ‖ left ‖ right) ({@link hashChildren});
 * - a tree of n > 1 leaves splits at k, the largest power of two smaller than n: the left subtree
 *   holds leaves [0, k), the right one [k, n); an odd node is carried up, never duplicated;
 * - the tree of no leaves hashes to SHA-256 of the empty string.
 *
 * Every hash is 32 bytes.
 */

export const HASH_BYTES = 32;

/**
 * SHA-256 of `bytes` as a Buffer. Node 20's one-shot `hash()` returns hex text several times
 * faster than a Buffer, and decoding 64 hex digits costs less than the difference.
 */
export function sha256Buffer(bytes: Uint8Array): Buffer {
  return Buffer.from(hash('sha256', bytes, 'hex'), 'hex');
}

/** SHA-256(0x00 ‖ data): the hash of one leaf. */
export function hashLeaf(data: Uint8Array): Buffer {
  const bytes = Buffer.allocUnsafe(1 + data.length);
  bytes[0] = 0x00;
  bytes.set(data, 1);
  return sha256Buffer(bytes);
}

/** SHA-256(0x00 ‖ UTF-8(text)): the hash of one leaf given as text, encoded straight after the prefix. */
export function hashLeafText(text: string): Buffer {
  const bytes = Buffer.allocUnsafe(1 + Buffer.byteLength(text, 'utf8'));
  bytes[0] = 0x00;
  bytes.write(text, 1, 'utf8');
  return sha256Buffer(bytes);
}

/** SHA-256(0x01 ‖ left ‖ right): the hash of an interior node. */
export function hashChildren(left: Uint8Array, right: Uint8Array): Buffer {
  const bytes = Buffer.allocUnsafe(1 + left.length + right.length);
  bytes[0] = 0x01;
  bytes.set(left, 1);
  bytes.set(right, 1 + left.length);
  return sha256Buffer(bytes);
}

/** The root of the tree of no leaves: SHA-256 of the empty string. */
export const EMPTY_TREE_ROOT: Buffer = createHash('sha256').digest();

/** The largest power of two smaller than `n` (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The Merkle Tree Hash of the leaves whose hashes are given, in order. */
export function merkleRoot(leafHashes: readonly Uint8Array[]): Buffer {
  checkHashes(leafHashes);
  if (leafHashes.length === 0) return EMPTY_TREE_ROOT;
  return subtreeRoot(leafHashes, 0, leafHashes.length);
}

/**
 * The audit path of leaf `index` (RFC 6962 §2.1.1 PATH): the sibling hashes from the leaf up to the
 * root, lowest first. Empty for a tree of one leaf.
 */
export function inclusionPath(leafHashes: readonly Uint8Array[], index: number): Buffer[] {
  checkHashes(leafHashes);
  if (!Number.isSafeInteger(index) || index < 0 || index >= leafHashes.length) {
    throw new RangeError(`leaf index ${index} is not in a tree of ${leafHashes.length} leaves`);
  }
  const path: Buffer[] = [];
  let start = 0;
  let end = leafHashes.length;
  let m = index;
  // Walks down from the root, noting the sibling subtree at each level; the path lists them upwards.
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (m < k) {
      path.push(subtreeRoot(leafHashes, start + k, end));
      end = start + k;
    } else {
      path.push(subtreeRoot(leafHashes, start, start + k));
      start += k;
      m -= k;
    }
  }
  return path.reverse();
}

/**
 * Whether `path` proves that `leafHash` is leaf `index` of the tree of `treeSize` leaves whose root
 * is `root`: the algorithm of RFC 9162 §2.1.3.2. Any malformed input (an index outside the tree, a
 * hash not 32 bytes long, a path too long or too short) is `false`, never an exception.
 */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  path: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(treeSize)) return false;
  if (index < 0 || index >= treeSize) return false;
  if (leafHash.length !== HASH_BYTES || root.length !== HASH_BYTES) return false;
  let fn = index;
  let sn = treeSize - 1;
  let r: Uint8Array = leafHash;
  for (const p of path) {
    if (p.length !== HASH_BYTES || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = hashChildren(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && Buffer.from(r).equals(root);
}

function subtreeRoot(leafHashes: readonly Uint8Array[], start: number, end: number): Buffer {
  if (end - start === 1) return Buffer.from(leafHashes[start]!);
  const k = splitPoint(end - start);
  return hashChildren(subtreeRoot(leafHashes, start, start + k), subtreeRoot(leafHashes, start + k, end));
}

function checkHashes(leafHashes: readonly Uint8Array[]): void {
  for (const [index, hash] of leafHashes.entries()) {
    if (hash.length !== HASH_BYTES) {
      throw new RangeError(`leaf hash ${index} is ${hash.length} bytes long, not ${HASH_BYTES}`);
    }
  }
}
