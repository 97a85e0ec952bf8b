import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isActivityLogError } from '../../src/core/errors.js';
import { publicKeyId, signCheckpoint, verifyCheckpoint } from '../../src/integrity/checkpoint.js';
import {
  readSigningKey,
  readVerificationKey,
  writeSigningKeyPair,
} from '../../src/runtime/signing-key-files.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-keys-'));
  dirs.push(dir);
  return dir;
}

async function caught(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error as Error,
  );
}

describe('signing key files', () => {
  it('writes a pair whose private key is 0600 and whose key id is that of the public key', async () => {
    const dir = join(tempDir(), 'keys');
    const written = await writeSigningKeyPair(dir);
    expect(written.privateKeyPath).toBe(join(dir, 'activity-log-signing-key.pem'));
    expect(written.publicKeyPath).toBe(join(dir, 'activity-log-signing-key.pub.pem'));
    expect(statSync(written.privateKeyPath).mode & 0o777).toBe(0o600);
    expect(statSync(written.publicKeyPath).mode & 0o777).toBe(0o644);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const publicKeyPem = readFileSync(written.publicKeyPath, 'utf8');
    expect(written.keyId).toBe(publicKeyId(publicKeyPem));

    const privateKeyPem = await readSigningKey(written.privateKeyPath);
    const checkpoint = signCheckpoint(
      { table: 'activity_log', seq: 1, sealHash: Buffer.alloc(32, 1), totalRows: 3, issuedAt: new Date() },
      privateKeyPem,
    );
    expect(verifyCheckpoint(checkpoint, publicKeyPem)).toBe(true);
  });

  it('never overwrites a key file, and leaves nothing of its own behind when one exists', async () => {
    const dir = tempDir();
    const first = await writeSigningKeyPair(dir);
    const before = readFileSync(first.privateKeyPath, 'utf8');
    const error = await caught(writeSigningKeyPair(dir));
    expect((error as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect(error.message).toBe(`${first.publicKeyPath} already exists`);
    expect(readFileSync(first.privateKeyPath, 'utf8')).toBe(before);

    // Only the private key is in the way: the public key this call wrote is removed again.
    const other = tempDir();
    writeFileSync(join(other, 'k.pem'), 'mine');
    const blocked = await caught(writeSigningKeyPair(other, 'k'));
    expect((blocked as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect(readFileSync(join(other, 'k.pem'), 'utf8')).toBe('mine');
    expect(() => statSync(join(other, 'k.pub.pem'))).toThrow(/ENOENT/);
  });

  it('derives the verification key from the private key or reads the public key', async () => {
    const written = await writeSigningKeyPair(tempDir());
    const publicKeyPem = readFileSync(written.publicKeyPath, 'utf8');
    expect(await readVerificationKey(written.privateKeyPath, '--public-key')).toBe(publicKeyPem);
    expect(await readVerificationKey(written.publicKeyPath, '--public-key')).toBe(publicKeyPem);
  });

  it('says which file and variable is wrong: missing, a public key, not a key, not Ed25519', async () => {
    const dir = tempDir();
    const written = await writeSigningKeyPair(dir);
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a key');
    const rsa = join(dir, 'rsa.pem');
    writeFileSync(
      rsa,
      generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    // Each read starts only when its case is checked, so no rejection waits unobserved.
    const cases: [() => Promise<unknown>, string][] = [
      [
        () => readSigningKey(join(dir, 'missing.pem')),
        `ACTIVITY_LOG_SIGNING_KEY: ${join(dir, 'missing.pem')} cannot be read (ENOENT)`,
      ],
      [
        () => readSigningKey(written.publicKeyPath),
        `ACTIVITY_LOG_SIGNING_KEY: ${written.publicKeyPath} is a public key; checkpoints are signed with the private key (activity-log keygen writes both)`,
      ],
      [() => readSigningKey(garbage), `ACTIVITY_LOG_SIGNING_KEY: ${garbage} holds no PEM key`],
      [
        () => readSigningKey(rsa),
        `ACTIVITY_LOG_SIGNING_KEY: ${rsa} is an rsa key; checkpoints are signed with Ed25519 (activity-log keygen writes a pair)`,
      ],
      [() => readVerificationKey(garbage, '--public-key'), `--public-key: ${garbage} holds no PEM key`],
    ];
    for (const [read, message] of cases) {
      const error = await caught(read());
      expect(isActivityLogError(error, 'CONFIG_INVALID'), message).toBe(true);
      expect(error.message).toBe(message);
    }
  });
});
