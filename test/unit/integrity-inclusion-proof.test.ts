import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_ERASABLE_FIELDS } from '../../src/config/default-erasable-fields.js';
import { type Activity, defaultModelResolver } from '../../src/core/activity.js';
import { buildActivity } from '../../src/core/build-activity.js';
import { checkErasableFields, fieldCommitments, generateSalt } from '../../src/integrity/activity-leaf.js';
import { generateSigningKeyPair, signCheckpoint } from '../../src/integrity/checkpoint.js';
import {
  buildInclusionProof,
  type InclusionProof,
  type SealedRow,
  type SealJson,
  sealedRowLeafHash,
  verifyInclusionProof,
} from '../../src/integrity/inclusion-proof.js';
import { merkleRoot } from '../../src/integrity/merkle-tree.js';
import { nextSeal, type Seal } from '../../src/integrity/seal-hash.js';
import { activityInputs } from '../helpers/activity-factory.js';

const VERIFIER = fileURLToPath(new URL('../../examples/verify-proof.js', import.meta.url));
const ERASABLE = checkErasableFields(DEFAULT_ERASABLE_FIELDS);
const KEYS = generateSigningKeyPair();
const dir = mkdtempSync(join(tmpdir(), 'inclusion-proof-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sealedRows(count: number, offset: number): SealedRow[] {
  return activityInputs(count, offset)
    .map((input) =>
      buildActivity(input, undefined, { resolveModel: defaultModelResolver, isSecretKey: () => false }),
    )
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((activity) => {
      const salt = generateSalt();
      return { activity, salt, commitments: fieldCommitments(activity, salt, ERASABLE) };
    });
}

/** Three seals of 3, 7 and 2 rows, the last one signed; the proofs are of rows of seal 2. */
function sealedLog() {
  const batches = [sealedRows(3, 0), sealedRows(7, 3), sealedRows(2, 10)];
  const seals: Seal[] = [];
  for (const [i, rows] of batches.entries()) {
    seals.push(
      nextSeal(seals.at(-1) ?? null, {
        root: merkleRoot(rows.map(sealedRowLeafHash)),
        rowCount: rows.length,
        sealedAt: new Date(Date.UTC(2025, 10, 28, 9, 30, i)),
      }),
    );
  }
  const head = seals.at(-1)!;
  const checkpoint = signCheckpoint(
    { table: 'activity_log', seq: head.seq, sealHash: head.hash, totalRows: 12, issuedAt: new Date() },
    KEYS.privateKeyPem,
  );
  return { rows: batches[1]!, seals: seals.slice(1), checkpoint };
}

function proofOf(
  log: ReturnType<typeof sealedLog>,
  rows: readonly SealedRow[],
  index: number,
): InclusionProof {
  return buildInclusionProof({
    rows,
    activityId: rows[index]!.activity.id,
    seals: log.seals,
    checkpoint: log.checkpoint,
    publicKeyPem: KEYS.publicKeyPem,
  });
}

let files = 0;
function runVerifier(proof: unknown, ...args: string[]): { status: number | null; output: string } {
  const file = join(dir, `proof-${files++}.json`);
  writeFileSync(file, JSON.stringify(proof, null, 2));
  const run = spawnSync(process.execPath, [VERIFIER, file, ...args], { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

/** A copy of `proof` with the value at `path` (keys and indexes) replaced. */
function altered(proof: InclusionProof, path: readonly (string | number)[], value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(proof));
  let target = copy;
  for (const key of path.slice(0, -1)) target = target[key];
  target[path.at(-1)!] = value;
  return copy;
}

const flip = (hex: string) => hex.replace(/^./, (c) => (c === '0' ? '1' : '0'));

function erased(row: SealedRow): SealedRow {
  const activity: Activity = Object.freeze({
    ...row.activity,
    causerId: null,
    ipAddress: null,
    userAgent: null,
    properties: {},
  });
  return { activity, salt: null, commitments: row.commitments };
}

describe('inclusion proof', () => {
  const log = sealedLog();
  const proof = proofOf(log, log.rows, 4);

  it('carries the row, its path in its seal, the chain to the checkpoint and the checkpoint', () => {
    expect(proof.leaf_index).toBe(4);
    expect(proof.activity.id).toBe(log.rows[4]!.activity.id);
    expect(proof.merkle_path).toHaveLength(3);
    expect(proof.seals.map((seal) => seal.seq)).toEqual([2, 3]);
    expect(proof.seals[0]!.row_count).toBe(7);
    expect(proof.checkpoint?.body.seq).toBe(3);
    expect(Object.keys(proof.commitments)).toEqual(ERASABLE);
  });

  it('verifies, in the library and with the standalone example', () => {
    expect(verifyInclusionProof(proof)).toEqual({ verified: true, anchored: true });
    expect(verifyInclusionProof(JSON.parse(JSON.stringify(proof)))).toEqual({
      verified: true,
      anchored: true,
    });
    expect(runVerifier(proof)).toEqual({ status: 0, output: 'verified' });
    expect(runVerifier({ success: true, data: proof, server_check: { verified: true } })).toEqual({
      status: 0,
      output: 'verified',
    });
  });

  it('without a checkpoint verifies as not anchored, and fails when a trusted key is asked for', () => {
    const unanchored = buildInclusionProof({
      rows: log.rows,
      activityId: log.rows[2]!.activity.id,
      seals: log.seals,
      checkpoint: null,
      publicKeyPem: null,
      unanchoredReason: 'no checkpoint yet',
    });
    expect(unanchored).toMatchObject({
      anchored: false,
      unanchored_reason: 'no checkpoint yet',
      public_key: null,
    });
    expect(verifyInclusionProof(unanchored)).toEqual({ verified: true, anchored: false });
    expect(verifyInclusionProof(unanchored, { publicKeyPem: KEYS.publicKeyPem })).toEqual({
      verified: false,
      problem: 'not anchored: no checkpoint signed by the trusted key (no checkpoint yet)',
    });
    expect(runVerifier(unanchored)).toEqual({
      status: 0,
      output: 'verified, NOT ANCHORED: no checkpoint yet',
    });
    const keyFile = join(dir, 'trusted.pem');
    writeFileSync(keyFile, KEYS.publicKeyPem);
    expect(runVerifier(unanchored, keyFile)).toEqual({
      status: 1,
      output: 'not anchored: no checkpoint yet',
    });
    // Still every hash is checked.
    const changed = altered(unanchored, ['activity', 'description'], 'something else');
    expect(verifyInclusionProof(changed)).toMatchObject({ verified: false });
    expect(runVerifier(changed).status).toBe(1);
  });

  it('a seal-mate that cannot be read stands in as zero bytes, so the path through it fails', () => {
    const rows = [...log.rows];
    const unreadable = { id: rows[5]!.activity.id, activity: null };
    const withHole = buildInclusionProof({
      rows: [...rows.slice(0, 5), unreadable, ...rows.slice(6)],
      activityId: rows[4]!.activity.id,
      seals: log.seals,
      checkpoint: log.checkpoint,
      publicKeyPem: KEYS.publicKeyPem,
    });
    expect(verifyInclusionProof(withHole)).toEqual({
      verified: false,
      problem: 'the Merkle path does not lead from the leaf to the root of seal 2',
    });
    expect(() =>
      buildInclusionProof({
        rows: [unreadable],
        activityId: unreadable.id,
        seals: log.seals,
        checkpoint: log.checkpoint,
        publicKeyPem: KEYS.publicKeyPem,
      }),
    ).toThrow(RangeError);
  });

  it('verifies every row of the seal, the first and last included', () => {
    for (let index = 0; index < log.rows.length; index++) {
      expect(verifyInclusionProof(proofOf(log, log.rows, index)), `row ${index}`).toEqual({
        verified: true,
        anchored: true,
      });
    }
  });

  it('fails in both verifiers for a modified row, saying so', () => {
    const changed = altered(proof, ['activity', 'description'], 'deleted order 7');
    const problem = 'the activity does not hash to the leaf: the row was changed';
    expect(verifyInclusionProof(changed)).toEqual({ verified: false, problem });
    expect(runVerifier(changed)).toEqual({ status: 1, output: problem });
  });

  it('fails in both verifiers for a changed personal field while the salt is still there', () => {
    const changed = altered(proof, ['activity', 'ip_address'], '198.51.100.1');
    const problem = 'the commitment of ip_address does not match its value';
    expect(verifyInclusionProof(changed)).toEqual({ verified: false, problem });
    expect(runVerifier(changed)).toEqual({ status: 1, output: problem });
  });

  it('still verifies once the row was erased, and not once an erased row’s commitment is changed', () => {
    const rows = log.rows.map((row, index) => (index === 4 ? erased(row) : row));
    const erasedProof = proofOf(log, rows, 4);
    expect(erasedProof.salt).toBeNull();
    expect(erasedProof.activity.causer_id).toBeNull();
    expect(erasedProof.activity.ip_address).toBeNull();
    expect(erasedProof.activity.properties).toBeNull();
    expect(erasedProof.leaf_hash).toBe(proof.leaf_hash);
    expect(verifyInclusionProof(erasedProof)).toEqual({ verified: true, anchored: true });
    expect(runVerifier(erasedProof)).toEqual({ status: 0, output: 'verified' });

    // Without the salt nothing vouches for a value shown in an erased field.
    const shown = altered(erasedProof, ['activity', 'causer_id'], '8');
    const problem = 'causer_id has a value but no salt: an erased field is null';
    expect(verifyInclusionProof(shown)).toEqual({ verified: false, problem });
    expect(runVerifier(shown)).toEqual({ status: 1, output: problem });

    const forged = altered(
      erasedProof,
      ['commitments', 'causer_id'],
      flip(erasedProof.commitments.causer_id!),
    );
    expect(verifyInclusionProof(forged)).toMatchObject({ verified: false, problem: /row was changed/ });
    expect(runVerifier(forged).status).toBe(1);
  });

  it('fails in both verifiers once the path, a seal or the checkpoint is tampered with', () => {
    const otherSignature = signCheckpoint(
      { table: 'x', seq: 1, sealHash: Buffer.alloc(32), totalRows: 0, issuedAt: new Date() },
      KEYS.privateKeyPem,
    ).signature;
    const [seal2, seal3] = proof.seals as [SealJson, SealJson];
    const tamperings: [string, (string | number)[], unknown, RegExp][] = [
      ['path', ['merkle_path', 1], flip(proof.merkle_path[1]!), /Merkle path/],
      ['index', ['leaf_index'], 5, /Merkle path/],
      ['negative index', ['leaf_index'], -1, /Merkle path|outside the seal/],
      ['row count', ['seals', 0, 'row_count'], 8, /Merkle path|seal 2/],
      ['seal root', ['seals', 0, 'root'], flip(seal2.root), /Merkle path|seal 2/],
      ['seal time', ['seals', 0, 'sealed_at'], '2025-11-28T09:30:01.001Z', /seal 2/],
      ['seal link', ['seals', 1, 'prev_hash'], flip(seal3.prev_hash), /seal 3/],
      ['missing seal', ['seals'], [seal2], /checkpoint does not sign seal 2/],
      ['checkpoint', ['checkpoint', 'body', 'total_rows'], 13, /signature does not match/],
      ['signature', ['checkpoint', 'signature'], otherSignature, /signature does not match/],
      ['other key', ['public_key'], generateSigningKeyPair().publicKeyPem, /another key|not this one/],
      ['garbage', ['merkle_path'], 'x', /malformed/],
      ['uncommitted field', ['commitments', 'description'], '0'.repeat(64), /description/],
    ];
    for (const [name, path, value, problem] of tamperings) {
      const tampered = altered(proof, path, value);
      const result = verifyInclusionProof(tampered);
      expect(result.verified, name).toBe(false);
      expect(result.verified === false && result.problem, name).toMatch(problem);
      const run = runVerifier(tampered);
      expect(run.status, `${name}: ${run.output}`).toBe(1);
      expect(run.output, name).toMatch(problem);
    }
  });

  it('checks the checkpoint against a trusted key when given one', () => {
    const other = generateSigningKeyPair();
    const keyFile = join(dir, 'trusted.pem');
    writeFileSync(keyFile, other.publicKeyPem);
    expect(verifyInclusionProof(proof, { publicKeyPem: other.publicKeyPem })).toMatchObject({
      verified: false,
    });
    expect(runVerifier(proof, keyFile)).toEqual({
      status: 1,
      output: 'the checkpoint is signed by another key',
    });
    writeFileSync(keyFile, KEYS.publicKeyPem);
    expect(runVerifier(proof, keyFile)).toEqual({ status: 0, output: 'verified' });
  });

  it('refuses to build a proof for an activity not in the seal', () => {
    expect(() =>
      buildInclusionProof({ ...log, activityId: 'missing', publicKeyPem: KEYS.publicKeyPem }),
    ).toThrow(/not among the seal's rows/);
  });
});
