import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashLeaf, merkleRoot } from '../../src/integrity/merkle-tree.js';
import {
  GENESIS_PREV_HASH,
  nextSeal,
  type Seal,
  sealChainBreak,
  sealHash,
  sealHashInput,
} from '../../src/integrity/seal-hash.js';

const ROOT = Buffer.from('5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328', 'hex');
const SEALED_AT = new Date('2025-11-28T09:30:00.123Z');
const VECTOR_HASH = '40219b65033067139a2cb8c6f9e35ede1235899383d1b3f7a2f25afbf5a609bc';

function chain(length: number): Seal[] {
  const seals: Seal[] = [];
  for (let i = 0; i < length; i++) {
    const leaves = Array.from({ length: i + 1 }, (_, j) => hashLeaf(Buffer.from(`${i}:${j}`)));
    seals.push(
      nextSeal(seals.at(-1) ?? null, {
        root: merkleRoot(leaves),
        rowCount: leaves.length,
        sealedAt: new Date(SEALED_AT.getTime() + i * 1000),
      }),
    );
  }
  return seals;
}

describe('seal hash', () => {
  it('hashes the documented 89-byte layout to the documented vector', () => {
    const input = { seq: 1, prevHash: GENESIS_PREV_HASH, root: ROOT, rowCount: 8, sealedAt: SEALED_AT };
    const bytes = sealHashInput(input);
    expect(bytes.toString('hex')).toBe(
      `02${'0000000000000001'}${'00'.repeat(32)}${ROOT.toString('hex')}${'0000000000000008'}${(1764322200123).toString(16).padStart(16, '0')}`,
    );
    expect(bytes).toHaveLength(89);
    expect(sealHash(input).toString('hex')).toBe(VECTOR_HASH);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(VECTOR_HASH);
  });

  it('starts the chain from 32 zero bytes and links each seal to the hash before it', () => {
    const [first, second] = chain(2) as [Seal, Seal];
    expect(GENESIS_PREV_HASH).toEqual(Buffer.alloc(32));
    expect(first.seq).toBe(1);
    expect(first.prev_hash).toEqual(GENESIS_PREV_HASH);
    expect(second.seq).toBe(2);
    expect(second.prev_hash).toEqual(first.hash);
    const sealed = nextSeal(null, { root: ROOT, rowCount: 8, sealedAt: SEALED_AT });
    expect(sealed.hash.toString('hex')).toBe(VECTOR_HASH);
  });

  it('changes with every field it covers', () => {
    const base = { seq: 1, prevHash: GENESIS_PREV_HASH, root: ROOT, rowCount: 8, sealedAt: SEALED_AT };
    const variants = [
      { ...base, seq: 2 },
      { ...base, prevHash: Buffer.alloc(32, 1) },
      { ...base, root: Buffer.alloc(32, 1) },
      { ...base, rowCount: 7 },
      { ...base, sealedAt: new Date(SEALED_AT.getTime() + 1) },
    ];
    for (const variant of variants) expect(sealHash(variant).toString('hex')).not.toBe(VECTOR_HASH);
  });

  it('finds nothing wrong with an intact chain, or with a run of it that does not start at seal 1', () => {
    const seals = chain(6);
    expect(sealChainBreak(seals)).toBeNull();
    expect(sealChainBreak(seals.slice(2))).toBeNull();
    expect(sealChainBreak([])).toBeNull();
  });

  it('names the seal whose field, hash, link or sequence was tampered with', () => {
    const seals = chain(5);
    const replace = (index: number, change: Partial<Seal>) =>
      seals.map((seal, i) => (i === index ? { ...seal, ...change } : seal));
    expect(sealChainBreak(replace(2, { row_count: 4 }))).toBe(
      'seal 3: its hash is not the hash of its fields',
    );
    expect(sealChainBreak(replace(2, { root: Buffer.alloc(32) }))).toMatch(/^seal 3: its hash/);
    expect(sealChainBreak(replace(2, { sealed_at: new Date(0) }))).toMatch(/^seal 3: its hash/);
    expect(sealChainBreak(replace(2, { hash: Buffer.alloc(32) }))).toMatch(/^seal 3: its hash/);
    // A seal rewritten with a consistent hash of its own still breaks the link after it.
    const rewritten = nextSeal(seals[1]!, { root: Buffer.alloc(32, 7), rowCount: 3, sealedAt: SEALED_AT });
    expect(sealChainBreak(replace(2, rewritten))).toBe('seal 4: prev_hash is not the hash of seal 3');
    expect(sealChainBreak([seals[0]!, seals[1]!, seals[3]!])).toBe(
      'seal 4 follows seal 2: a seal is missing',
    );
    expect(sealChainBreak([seals[1]!, seals[0]!])).toBe('seal 1 follows seal 2: a seal is missing');
    const forgedGenesis = nextSeal(
      { ...seals[0]!, seq: 0, hash: Buffer.alloc(32, 9) },
      { root: ROOT, rowCount: 8, sealedAt: SEALED_AT },
    );
    expect(sealChainBreak([forgedGenesis])).toBe('seal 1: prev_hash is not the genesis hash (32 zero bytes)');
  });

  it('refuses fields it cannot write in the layout', () => {
    const base = { seq: 1, prevHash: GENESIS_PREV_HASH, root: ROOT, rowCount: 8, sealedAt: SEALED_AT };
    expect(() => sealHash({ ...base, seq: -1 })).toThrow(RangeError);
    expect(() => sealHash({ ...base, rowCount: 1.5 })).toThrow(RangeError);
    expect(() => sealHash({ ...base, root: Buffer.alloc(31) })).toThrow(/root must be 32 bytes/);
    expect(() => sealHash({ ...base, sealedAt: new Date(Number.NaN) })).toThrow(RangeError);
  });
});
