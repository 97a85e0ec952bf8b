import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_TREE_ROOT,
  hashChildren,
  hashLeaf,
  inclusionPath,
  merkleRoot,
  verifyInclusion,
} from '../../src/integrity/merkle-tree.js';

/**
 * The RFC 6962 reference data of Certificate Transparency (transparency-dev/merkle,
 * testonly/constants.go and proof/verify_test.go): eight leaf inputs, the root of the tree of the
 * first n of them for n = 0…8, and audit paths.
 */
const LEAF_INPUTS = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map((hex) => Buffer.from(hex, 'hex'));

const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

/** Zero-based leaf index, tree size, audit path. */
const PATHS: readonly [number, number, readonly string[]][] = [
  [0, 1, []],
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
];

const LEAVES = LEAF_INPUTS.map(hashLeaf);
const hex = (hashes: readonly Uint8Array[]) => hashes.map((hash) => Buffer.from(hash).toString('hex'));

function flipBit(hash: Uint8Array, bit: number): Buffer {
  const copy = Buffer.from(hash);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

function syntheticLeaves(n: number, seed: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => hashLeaf(Buffer.from(`${seed}:${i}`)));
}

describe('merkle tree (RFC 6962)', () => {
  it('hashes leaves with 0x00 and nodes with 0x01 in front', () => {
    const sha256 = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
    expect(hashLeaf(Buffer.from('ab'))).toEqual(sha256(Buffer.from([0]), Buffer.from('ab')));
    expect(hashChildren(LEAVES[0]!, LEAVES[1]!)).toEqual(sha256(Buffer.from([1]), LEAVES[0]!, LEAVES[1]!));
    expect(hashLeaf(Buffer.alloc(0)).toString('hex')).toBe(ROOTS[1]);
  });

  it('gives the reference root for every tree size 0…8, the empty tree being SHA-256 of nothing', () => {
    expect(EMPTY_TREE_ROOT.toString('hex')).toBe(ROOTS[0]);
    for (let size = 0; size <= LEAVES.length; size++) {
      expect(merkleRoot(LEAVES.slice(0, size)).toString('hex'), `size ${size}`).toBe(ROOTS[size]);
    }
  });

  it('makes the reference audit paths, and they verify against the reference roots', () => {
    for (const [index, size, path] of PATHS) {
      const leaves = LEAVES.slice(0, size);
      expect(hex(inclusionPath(leaves, index)), `leaf ${index} of ${size}`).toEqual(path);
      const root = Buffer.from(ROOTS[size]!, 'hex');
      const proof = path.map((hash) => Buffer.from(hash, 'hex'));
      expect(verifyInclusion(LEAVES[index]!, index, size, proof, root)).toBe(true);
    }
  });

  it('refuses the reference paths once the index, size, leaf, root or path is wrong', () => {
    const root = Buffer.from(ROOTS[8]!, 'hex');
    const path = inclusionPath(LEAVES, 5);
    const leaf = LEAVES[5]!;
    expect(verifyInclusion(leaf, 4, 8, path, root)).toBe(false);
    expect(verifyInclusion(leaf, 6, 8, path, root)).toBe(false);
    expect(verifyInclusion(leaf, 5, 16, path, root)).toBe(false);
    expect(verifyInclusion(leaf, 5, 4, path, root)).toBe(false);
    expect(verifyInclusion(LEAVES[4]!, 5, 8, path, root)).toBe(false);
    expect(verifyInclusion(leaf, 5, 8, path, EMPTY_TREE_ROOT)).toBe(false);
    expect(verifyInclusion(leaf, 5, 8, [...path, root], root)).toBe(false);
    expect(verifyInclusion(leaf, 5, 8, [root, ...path], root)).toBe(false);
    expect(verifyInclusion(leaf, 5, 8, path.slice(0, -1), root)).toBe(false);
    expect(verifyInclusion(leaf, 5, 8, [...path.slice(0, -1), Buffer.alloc(0)], root)).toBe(false);
    expect(verifyInclusion(leaf, 8, 8, path, root)).toBe(false);
    expect(verifyInclusion(leaf, -1, 8, path, root)).toBe(false);
    expect(verifyInclusion(leaf, 0, 0, [], EMPTY_TREE_ROOT)).toBe(false);
  });

  it('proves every leaf of every tree of 1…70 leaves, and nothing once a bit or the index changes', () => {
    for (let size = 1; size <= 70; size++) {
      const leaves = syntheticLeaves(size, size);
      const root = merkleRoot(leaves);
      for (let index = 0; index < size; index++) {
        const path = inclusionPath(leaves, index);
        expect(verifyInclusion(leaves[index]!, index, size, path, root), `leaf ${index} of ${size}`).toBe(
          true,
        );
        if (size > 1) {
          expect(verifyInclusion(leaves[index]!, (index + 1) % size, size, path, root)).toBe(false);
          expect(verifyInclusion(leaves[(index + 1) % size]!, index, size, path, root)).toBe(false);
        }
      }
    }
  });

  it('refuses a proof with any one bit flipped in the leaf, a path hash or the root', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 70 }).chain((size) =>
          fc.record({
            size: fc.constant(size),
            index: fc.integer({ min: 0, max: size - 1 }),
            seed: fc.nat(),
            bit: fc.integer({ min: 0, max: 255 }),
            target: fc.nat(),
          }),
        ),
        ({ size, index, seed, bit, target }) => {
          const leaves = syntheticLeaves(size, seed);
          const root = merkleRoot(leaves);
          const path = inclusionPath(leaves, index);
          const leaf = leaves[index]!;
          expect(verifyInclusion(leaf, index, size, path, root)).toBe(true);
          expect(verifyInclusion(flipBit(leaf, bit), index, size, path, root)).toBe(false);
          expect(verifyInclusion(leaf, index, size, path, flipBit(root, bit))).toBe(false);
          if (path.length > 0) {
            const at = target % path.length;
            const tampered = path.map((hash, i) => (i === at ? flipBit(hash, bit) : hash));
            expect(verifyInclusion(leaf, index, size, tampered, root)).toBe(false);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('matches a root computed by pairing nodes level by level, odd nodes carried up', () => {
    const levelwise = (hashes: Buffer[]): Buffer => {
      let level = hashes;
      while (level.length > 1) {
        const next: Buffer[] = [];
        for (let i = 0; i < level.length; i += 2) {
          next.push(i + 1 < level.length ? hashChildren(level[i]!, level[i + 1]!) : level[i]!);
        }
        level = next;
      }
      return level[0]!;
    };
    for (let size = 1; size <= 70; size++) {
      const leaves = syntheticLeaves(size, 7);
      expect(merkleRoot(leaves).equals(levelwise(leaves)), `size ${size}`).toBe(true);
    }
  });

  it('refuses leaf hashes that are not 32 bytes and an index outside the tree', () => {
    expect(() => merkleRoot([Buffer.alloc(31)])).toThrow(/32/);
    expect(() => inclusionPath(LEAVES, 8)).toThrow(RangeError);
  });
});
