import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, signCheckpoint } from '../../src/integrity/checkpoint.js';
import { type ChainView, checkCheckpointAgainstChain } from '../../src/integrity/checkpoint-check.js';
import { nextSeal, type Seal } from '../../src/integrity/seal-hash.js';

const KEYS = generateSigningKeyPair();
const OTHER_KEYS = generateSigningKeyPair();

/** `count` chained seals of 3 rows each, with made-up roots. */
function sealChain(count: number): Seal[] {
  const seals: Seal[] = [];
  for (let index = 0; index < count; index++) {
    const root = createHash('sha256').update(`batch ${index}`).digest();
    seals.push(
      nextSeal(seals.at(-1) ?? null, {
        root,
        rowCount: 3,
        sealedAt: new Date(Date.UTC(2025, 10, 28, 9, 30, index)),
      }),
    );
  }
  return seals;
}

/** The chain as verify sees it after streaming `seals`. */
function viewOf(seals: readonly Seal[], table = 'activity_log'): ChainView {
  const bySeq = new Map(
    seals.map((seal, index) => [seal.seq, { hash: seal.hash, totalRows: 3 * (index + 1) }]),
  );
  return { table, headSeq: seals.at(-1)?.seq ?? 0, sealAt: (seq) => bySeq.get(seq) };
}

function checkpointAt(seals: readonly Seal[], seq: number, privateKeyPem = KEYS.privateKeyPem) {
  const seal = seals[seq - 1]!;
  return signCheckpoint(
    {
      table: 'activity_log',
      seq,
      sealHash: seal.hash,
      totalRows: 3 * seq,
      issuedAt: new Date('2025-11-28T10:00:00.000Z'),
    },
    privateKeyPem,
  );
}

describe('checkCheckpointAgainstChain', () => {
  const seals = sealChain(5);

  it('passes a checkpoint at the head and one further back', () => {
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 5), viewOf(seals), KEYS.publicKeyPem)).toBeNull();
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 2), viewOf(seals), KEYS.publicKeyPem)).toBeNull();
  });

  it('detects truncation: the head is behind the checkpoint', () => {
    const checkpoint = checkpointAt(seals, 5);
    expect(checkCheckpointAgainstChain(checkpoint, viewOf(seals.slice(0, 3)), KEYS.publicKeyPem)).toEqual({
      kind: 'head-behind',
      seq: 5,
      message:
        'the chain ends at seal 3, behind the checkpoint signed at seal 5 (2025-11-28T10:00:00.000Z): the newest seals and their rows were removed',
    });
    expect(checkCheckpointAgainstChain(checkpoint, viewOf([]), KEYS.publicKeyPem)?.message).toMatch(
      /^the chain has no seal, behind/,
    );
  });

  it('detects a rewritten chain: the seal at the checkpoint has another hash', () => {
    // Rebuilt from a first batch of other rows: every hash from seal 1 on differs.
    const forged = [nextSeal(null, { root: Buffer.alloc(32, 7), rowCount: 3, sealedAt: new Date(0) })];
    const mismatch = checkCheckpointAgainstChain(checkpointAt(seals, 1), viewOf(forged), KEYS.publicKeyPem);
    expect(mismatch?.kind).toBe('seal-hash');
    expect(mismatch?.message).toContain(`seal 1 has hash ${forged[0]!.hash.toString('hex')}`);
    expect(mismatch?.message).toContain(`signed ${seals[0]!.hash.toString('hex')}`);
  });

  it('detects a missing seal and a wrong row count', () => {
    const view = viewOf(seals);
    const gap: ChainView = { ...view, sealAt: (seq) => (seq === 4 ? undefined : view.sealAt(seq)) };
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 4), gap, KEYS.publicKeyPem)?.kind).toBe(
      'seal-missing',
    );
    const fewer: ChainView = {
      ...view,
      sealAt: (seq) => ({ hash: seals[seq - 1]!.hash, totalRows: 3 * seq - 1 }),
    };
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 4), fewer, KEYS.publicKeyPem)).toMatchObject({
      kind: 'total-rows',
      message: 'seals 1…4 seal 11 rows, the checkpoint of 2025-11-28T10:00:00.000Z signed 12',
    });
    const uncounted: ChainView = { ...view, sealAt: (seq) => ({ hash: seals[seq - 1]!.hash }) };
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 4), uncounted, KEYS.publicKeyPem)).toBeNull();
  });

  it('refuses a tampered signature, a changed body and the wrong key', () => {
    const checkpoint = checkpointAt(seals, 3);
    const signature = Buffer.from(checkpoint.signature, 'base64');
    signature[0]! ^= 1;
    const tampered = { ...checkpoint, signature: signature.toString('base64') };
    expect(checkCheckpointAgainstChain(tampered, viewOf(seals), KEYS.publicKeyPem)).toEqual({
      kind: 'signature',
      seq: 3,
      message: 'checkpoint at seal 3: the signature does not match the body',
    });
    const moved = { ...checkpoint, body: { ...checkpoint.body, total_rows: 1 } };
    expect(checkCheckpointAgainstChain(moved, viewOf(seals), KEYS.publicKeyPem)?.message).toBe(
      'checkpoint at seal 3: the signature does not match the body',
    );
    expect(checkCheckpointAgainstChain(checkpoint, viewOf(seals), OTHER_KEYS.publicKeyPem)?.message).toMatch(
      /^checkpoint at seal 3: the checkpoint is signed by key [0-9a-f]{64}, not this one$/,
    );
    expect(checkCheckpointAgainstChain({ body: {} }, viewOf(seals), KEYS.publicKeyPem)).toMatchObject({
      kind: 'signature',
      seq: null,
    });
  });

  it('checks against the trusted key the checkpoint names, so keys can be rotated', () => {
    const old = checkpointAt(seals, 2, OTHER_KEYS.privateKeyPem);
    const current = checkpointAt(seals, 5);
    const keys = [KEYS.publicKeyPem, OTHER_KEYS.publicKeyPem];
    expect(checkCheckpointAgainstChain(old, viewOf(seals), keys)).toBeNull();
    expect(checkCheckpointAgainstChain(current, viewOf(seals), keys)).toBeNull();
    expect(
      checkCheckpointAgainstChain(old, viewOf(seals), [KEYS.publicKeyPem, KEYS.publicKeyPem]),
    ).toMatchObject({
      kind: 'signature',
      message: expect.stringMatching(/which is none of the 2 keys given$/),
    });
    expect(checkCheckpointAgainstChain(old, viewOf(seals), [])?.kind).toBe('signature');
  });

  it("refuses another table's checkpoint", () => {
    expect(
      checkCheckpointAgainstChain(checkpointAt(seals, 2), viewOf(seals, 'audit'), KEYS.publicKeyPem),
    ).toEqual({ kind: 'table', seq: 2, message: 'checkpoint at seal 2 signs table activity_log, not audit' });
  });
});

describe('checkCheckpointAgainstChain after retention', () => {
  const seals = sealChain(5);
  /** Seals 1…3 pruned: seal 3 known by its recorded hash and total, 1 and 2 gone. */
  const pruned: ChainView = {
    ...viewOf(seals.slice(3)),
    headSeq: 5,
    prunedToSeq: 3,
    sealAt: (seq) =>
      seq === 3
        ? { hash: seals[2]!.hash, totalRows: 9 }
        : seq > 3
          ? { hash: seals[seq - 1]!.hash, totalRows: 3 * seq }
          : undefined,
  };

  it('checks a checkpoint older than the pruned range for its signature only, one at it against the record', () => {
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 1), pruned, KEYS.publicKeyPem)).toBeNull();
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 3), pruned, KEYS.publicKeyPem)).toBeNull();
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 5), pruned, KEYS.publicKeyPem)).toBeNull();
    expect(checkCheckpointAgainstChain(checkpointAt(seals, 1), pruned, OTHER_KEYS.publicKeyPem)?.kind).toBe(
      'signature',
    );
    const rewritten = sealChain(3);
    const atWatermark = {
      ...pruned,
      sealAt: (seq: number) => (seq === 3 ? { hash: Buffer.alloc(32, 1) } : undefined),
    };
    expect(
      checkCheckpointAgainstChain(checkpointAt(rewritten, 3), atWatermark, KEYS.publicKeyPem)?.kind,
    ).toBe('seal-hash');
  });
});
