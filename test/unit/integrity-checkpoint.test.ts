import { createPrivateKey, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type Checkpoint,
  checkpointFileName,
  checkpointFormatProblem,
  checkpointProblem,
  checkpointSignedBytes,
  generateSigningKeyPair,
  publicKeyId,
  signCheckpoint,
  verifyCheckpoint,
} from '../../src/integrity/checkpoint.js';

/** RFC 8032 §7.1 TEST 1: secret key 9d61b1…7f60, public key d75a98…511a. */
const RFC8032_PRIVATE_KEY =
  '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n';
const RFC8032_PUBLIC_KEY =
  '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n';
const RFC8032_KEY_ID = '06e3fd8fda29bb60ab59557de61edb0aecdb231134be30e75b455f8e1b792fa9';

/** The seal-hash test vector, signed as the head of table `activity_log`. */
const HEAD = {
  table: 'activity_log',
  seq: 1,
  sealHash: Buffer.from('40219b65033067139a2cb8c6f9e35ede1235899383d1b3f7a2f25afbf5a609bc', 'hex'),
  totalRows: 8,
  issuedAt: new Date('2025-11-28T10:00:00.000Z'),
};

const SIGNED_TEXT =
  '{"format":"activity-log/checkpoint/v1","issued_at":"2025-11-28T10:00:00.000Z",' +
  `"key_id":"${RFC8032_KEY_ID}",` +
  '"seal_hash":"40219b65033067139a2cb8c6f9e35ede1235899383d1b3f7a2f25afbf5a609bc",' +
  '"seq":1,"table":"activity_log","total_rows":8}';
const SIGNATURE = 'GPi8zz3utDU4Il/YZo7Qr7vKo0UiUGpH9UWwXq1songphqFP7IX34+PhJwV8nuR3clJj2KPcMbOUw+krC2ipCw==';

function tamper(checkpoint: Checkpoint, change: Record<string, unknown>): unknown {
  return { ...checkpoint, body: { ...checkpoint.body, ...change } };
}

describe('checkpoint', () => {
  it('signs the canonical JSON of its body with Ed25519, to the documented vector', () => {
    const checkpoint = signCheckpoint(HEAD, RFC8032_PRIVATE_KEY);
    expect(checkpoint.body).toEqual({
      format: 'activity-log/checkpoint/v1',
      table: 'activity_log',
      seq: 1,
      seal_hash: '40219b65033067139a2cb8c6f9e35ede1235899383d1b3f7a2f25afbf5a609bc',
      total_rows: 8,
      issued_at: '2025-11-28T10:00:00.000Z',
      key_id: RFC8032_KEY_ID,
    });
    expect(checkpointSignedBytes(checkpoint.body).toString('utf8')).toBe(SIGNED_TEXT);
    expect(checkpoint.signature).toBe(SIGNATURE);
    const direct = sign(null, Buffer.from(SIGNED_TEXT), createPrivateKey(RFC8032_PRIVATE_KEY));
    expect(direct.toString('base64')).toBe(SIGNATURE);
    expect(publicKeyId(RFC8032_PUBLIC_KEY)).toBe(RFC8032_KEY_ID);
  });

  it("verifies with the signer's public key, also after a round trip through a JSON file", () => {
    const checkpoint = signCheckpoint(HEAD, RFC8032_PRIVATE_KEY);
    expect(verifyCheckpoint(checkpoint, RFC8032_PUBLIC_KEY)).toBe(true);
    expect(verifyCheckpoint(JSON.parse(JSON.stringify(checkpoint, null, 2)), RFC8032_PUBLIC_KEY)).toBe(true);
    const reordered = {
      signature: checkpoint.signature,
      body: { ...checkpoint.body, table: 'activity_log' },
    };
    expect(checkpointProblem(reordered, RFC8032_PUBLIC_KEY)).toBeNull();
  });

  it('makes key pairs whose checkpoints verify with their own key and no other', () => {
    const pair = generateSigningKeyPair();
    expect(pair.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(pair.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const checkpoint = signCheckpoint(HEAD, pair.privateKeyPem);
    expect(checkpoint.body.key_id).toBe(publicKeyId(pair.publicKeyPem));
    expect(verifyCheckpoint(checkpoint, pair.publicKeyPem)).toBe(true);
    expect(checkpointProblem(checkpoint, RFC8032_PUBLIC_KEY)).toBe(
      `the checkpoint is signed by key ${checkpoint.body.key_id}, not this one`,
    );
  });

  it('refuses a checkpoint whose body, key id or signature was changed', () => {
    const checkpoint = signCheckpoint(HEAD, RFC8032_PRIVATE_KEY);
    const mismatch = 'the signature does not match the body';
    for (const change of [
      { seq: 2 },
      { total_rows: 9 },
      { table: 'other_log' },
      { seal_hash: '50219b65033067139a2cb8c6f9e35ede1235899383d1b3f7a2f25afbf5a609bc' },
      { issued_at: '2025-11-28T10:00:00.001Z' },
    ]) {
      expect(checkpointProblem(tamper(checkpoint, change), RFC8032_PUBLIC_KEY), JSON.stringify(change)).toBe(
        mismatch,
      );
    }
    const signature = Buffer.from(checkpoint.signature, 'base64');
    signature[10]! ^= 1;
    expect(
      checkpointProblem({ ...checkpoint, signature: signature.toString('base64') }, RFC8032_PUBLIC_KEY),
    ).toBe(mismatch);
    const other = signCheckpoint(HEAD, generateSigningKeyPair().privateKeyPem);
    expect(checkpointProblem({ ...checkpoint, signature: other.signature }, RFC8032_PUBLIC_KEY)).toBe(
      mismatch,
    );
    expect(checkpointProblem(tamper(checkpoint, { key_id: '0'.repeat(64) }), RFC8032_PUBLIC_KEY)).toMatch(
      /signed by key 0{64}, not this one/,
    );
  });

  it('says what is malformed in a checkpoint read from a file', () => {
    const checkpoint = signCheckpoint(HEAD, RFC8032_PRIVATE_KEY);
    const problemOf = (value: unknown) => checkpointProblem(value, RFC8032_PUBLIC_KEY);
    expect(problemOf(null)).toBe('a checkpoint is an object with a body');
    expect(problemOf(tamper(checkpoint, { format: 'v0' }))).toMatch(
      /format is not activity-log\/checkpoint\/v1/,
    );
    expect(problemOf(tamper(checkpoint, { seq: '1' }))).toMatch(/^seq/);
    expect(problemOf(tamper(checkpoint, { seal_hash: 'AB' }))).toMatch(/^seal_hash/);
    expect(problemOf(tamper(checkpoint, { issued_at: '2025-11-28T10:00:00Z' }))).toMatch(/^issued_at/);
    expect(problemOf(tamper(checkpoint, { note: 'x' }))).toMatch(/other fields/);
    expect(problemOf({ ...checkpoint, signature: 'abc' })).toBe('the signature is not 64 bytes of base64');
    expect(checkpointProblem(checkpoint, 'not a key')).toBe('the public key is not a PEM public key');
  });

  it('checks the form of a checkpoint without a key', () => {
    const checkpoint = signCheckpoint(HEAD, RFC8032_PRIVATE_KEY);
    expect(checkpointFormatProblem(JSON.parse(JSON.stringify(checkpoint)))).toBeNull();
    expect(checkpointFormatProblem({ ...checkpoint, signature: 'not base64!' })).toBe(
      'the signature is not 64 bytes of base64',
    );
    expect(checkpointFormatProblem({ ...checkpoint, signature: Buffer.alloc(63).toString('base64') })).toBe(
      'the signature is not 64 bytes of base64',
    );
    expect(checkpointFormatProblem({ ...checkpoint, note: 'x' })).toBe(
      'the checkpoint has other fields (body,note,signature)',
    );
    expect(checkpointFormatProblem([])).toBe('a checkpoint is an object with a body');
  });

  it('refuses to sign with a key that is not Ed25519', () => {
    expect(() => signCheckpoint(HEAD, 'nonsense')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'ACTIVITY_LOG_SIGNING_KEY' }),
    );
  });

  it('names the file after the table, the seq and the time, in an order a listing keeps', () => {
    const checkpoint = signCheckpoint({ ...HEAD, seq: 42 }, RFC8032_PRIVATE_KEY);
    expect(checkpointFileName(checkpoint)).toBe('activity_log-000000000042-20251128T100000000Z.json');
    const later = signCheckpoint({ ...HEAD, seq: 1000 }, RFC8032_PRIVATE_KEY);
    expect([checkpointFileName(later), checkpointFileName(checkpoint)].sort()[0]).toBe(
      checkpointFileName(checkpoint),
    );
  });
});
