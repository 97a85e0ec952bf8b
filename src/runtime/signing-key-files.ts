import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ActivityLogError } from '../core/errors.js';
import { generateSigningKeyPair, publicKeyId } from '../integrity/checkpoint.js';

/** Where `activity-log keygen` put a new key pair. */
export interface WrittenKeyPair {
  /** PKCS #8 PEM, mode 0600. */
  readonly privateKeyPath: string;
  /** SubjectPublicKeyInfo PEM, mode 0644: hand it to whoever verifies. */
  readonly publicKeyPath: string;
  /** SHA-256 of the public key's DER, as checkpoints name it in `key_id`. */
  readonly keyId: string;
}

export const DEFAULT_KEY_FILE_NAME = 'activity-log-signing-key';

/**
 * Writes a new Ed25519 key pair to `dir` (created, mode 0700, when missing) as
 * `<name>.pem` (the private key, mode 0600) and `<name>.pub.pem`. Never replaces a file: when
 * either exists it rejects with the `EEXIST` error of the one found and leaves both untouched.
 * Both files and the directory are flushed to disk before it resolves.
 */
export async function writeSigningKeyPair(
  dir: string,
  name = DEFAULT_KEY_FILE_NAME,
): Promise<WrittenKeyPair> {
  const directory = resolve(dir);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const privateKeyPath = join(directory, `${name}.pem`);
  const publicKeyPath = join(directory, `${name}.pub.pem`);
  const pair = generateSigningKeyPair();
  const created: string[] = [];
  try {
    await writeNewFile(publicKeyPath, pair.publicKeyPem, 0o644, created);
    await writeNewFile(privateKeyPath, pair.privateKeyPem, 0o600, created);
  } catch (error) {
    // Only what this call created goes: never a file that was there before.
    await Promise.all(created.map((path) => unlink(path).catch(() => undefined)));
    throw error;
  }
  await syncDirectory(directory);
  return Object.freeze({ privateKeyPath, publicKeyPath, keyId: publicKeyId(pair.publicKeyPem) });
}

/**
 * The Ed25519 private key that signs checkpoints, read from `path` (`ACTIVITY_LOG_SIGNING_KEY`).
 *
 * @throws ActivityLogError `CONFIG_INVALID` when the file cannot be read or holds no Ed25519 private key.
 */
export async function readSigningKey(path: string): Promise<string> {
  const pem = await readKeyFile(path, 'ACTIVITY_LOG_SIGNING_KEY');
  const key = parseKey(pem, path, 'ACTIVITY_LOG_SIGNING_KEY', (text) =>
    text.includes('PUBLIC KEY') ? createPublicKey(text) : createPrivateKey(text),
  );
  if (key.type !== 'private') {
    throw keyError(
      'ACTIVITY_LOG_SIGNING_KEY',
      path,
      'is a public key; checkpoints are signed with the private key (activity-log keygen writes both)',
    );
  }
  checkEd25519(key, path, 'ACTIVITY_LOG_SIGNING_KEY');
  return pem;
}

/**
 * The public key that checks checkpoints, as SubjectPublicKeyInfo PEM, read from a public key
 * file or derived from a private key file (`ACTIVITY_LOG_SIGNING_KEY` or `--public-key`).
 * `source` names the variable or flag in errors.
 *
 * @throws ActivityLogError `CONFIG_INVALID` when the file cannot be read or holds no Ed25519 key.
 */
export async function readVerificationKey(path: string, source: string): Promise<string> {
  const pem = await readKeyFile(path, source);
  const key = parseKey(pem, path, source, (text) =>
    text.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(text)) : createPublicKey(text),
  );
  checkEd25519(key, path, source);
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

async function writeNewFile(path: string, text: string, mode: number, created: string[]): Promise<void> {
  let file: FileHandle;
  try {
    file = await open(path, 'wx', mode);
  } catch (error) {
    throw (error as NodeJS.ErrnoException).code === 'EEXIST'
      ? Object.assign(new Error(`${path} already exists`, { cause: error }), { code: 'EEXIST', path })
      : error;
  }
  created.push(path);
  try {
    // The umask may only have taken bits away; say exactly what the file allows.
    await file.chmod(mode);
    await file.writeFile(text, 'utf8');
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Flushes a directory's entries, so a file just created there survives a crash. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function readKeyFile(path: string, source: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw keyError(source, path, `cannot be read (${reason})`, error);
  }
}

function parseKey(pem: string, path: string, source: string, parse: (pem: string) => KeyObject): KeyObject {
  try {
    return parse(pem);
  } catch (error) {
    throw keyError(source, path, 'holds no PEM key', error);
  }
}

function checkEd25519(key: KeyObject, path: string, source: string): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw keyError(
      source,
      path,
      `is an ${key.asymmetricKeyType ?? 'unknown'} key; checkpoints are signed with Ed25519 (activity-log keygen writes a pair)`,
    );
  }
}

function keyError(source: string, path: string, what: string, cause?: unknown): ActivityLogError {
  return new ActivityLogError('CONFIG_INVALID', `${source}: ${path} ${what}`, {
    field: source,
    ...(cause === undefined ? {} : { cause }),
  });
}
