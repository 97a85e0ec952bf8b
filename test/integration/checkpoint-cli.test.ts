import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect } from 'vitest';
import { checkCheckpointAgainstChain } from '../../src/integrity/checkpoint-check.js';
import { nextSeal, type Seal } from '../../src/integrity/seal-hash.js';
import { loadCheckpoints } from '../../src/runtime/checkpoint-files.js';
import { readVerificationKey } from '../../src/runtime/signing-key-files.js';
import { toSqlTimestamp } from '../../src/store/sql-timestamp.js';
import { runCli, spawnCli } from '../helpers/queue-cli.js';
import { test } from '../helpers/test-context.js';

type Defer = (cleanup: () => unknown) => void;

function tempDir(defer: Defer): string {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-checkpoint-cli-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/** A SQLite database whose `activity_log_seals` holds `count` seals of 2 rows each. */
function sealedDatabase(dir: string, count: number): { url: string; seals: Seal[] } {
  const file = join(dir, 'activity.sqlite');
  const db = new Database(file);
  db.exec(`CREATE TABLE activity_log_seals (
    seq BIGINT NOT NULL PRIMARY KEY, root CHAR(64) NOT NULL, row_count INTEGER NOT NULL,
    prev_hash CHAR(64) NOT NULL, hash CHAR(64) NOT NULL, sealed_at TEXT NOT NULL)`);
  const insert = db.prepare('INSERT INTO activity_log_seals VALUES (?, ?, ?, ?, ?, ?)');
  const seals: Seal[] = [];
  for (let index = 0; index < count; index++) {
    const seal = nextSeal(seals.at(-1) ?? null, {
      root: createHash('sha256').update(`batch ${index}`).digest(),
      rowCount: 2,
      sealedAt: new Date(Date.UTC(2025, 10, 28, 9, index)),
    });
    seals.push(seal);
    insert.run(
      seal.seq,
      seal.root.toString('hex'),
      seal.row_count,
      seal.prev_hash.toString('hex'),
      seal.hash.toString('hex'),
      toSqlTimestamp(seal.sealed_at),
    );
  }
  db.close();
  return { url: `sqlite:${file}`, seals };
}

async function keygen(dir: string): Promise<string> {
  const { code } = await runCli(['keygen', `--out=${dir}`], {});
  expect(code).toBe(0);
  return join(dir, 'activity-log-signing-key.pem');
}

/** A webhook answering `status` and keeping what it was sent. */
async function webhook(defer: Defer, status: number): Promise<{ url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server: Server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      bodies.push(body);
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/checkpoints`, bodies };
}

describe('activity-log keygen', () => {
  test('writes a key pair, the private key 0600, and prints the paths and the key id', async ({ defer }) => {
    const dir = join(tempDir(defer), 'keys');
    const { code, stdout, stderr } = await runCli(['keygen', `--out=${dir}`], {});
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const privateKey = join(dir, 'activity-log-signing-key.pem');
    const publicKey = join(dir, 'activity-log-signing-key.pub.pem');
    expect(statSync(privateKey).mode & 0o777).toBe(0o600);
    expect(readFileSync(publicKey, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(stdout).toContain(`private key: ${privateKey}`);
    expect(stdout).toContain(`public key:  ${publicKey}`);
    expect(stdout).toMatch(/key id: {6}[0-9a-f]{64}\n/);
    expect(stdout).toContain(`Set ACTIVITY_LOG_SIGNING_KEY=${privateKey}`);
  });

  test('refuses to overwrite a key with one line (exit 2)', async ({ defer }) => {
    const dir = tempDir(defer);
    const privateKey = await keygen(dir);
    const before = readFileSync(privateKey, 'utf8');
    const { code, stderr } = await runCli(['keygen', `--out=${dir}`], {});
    expect(code).toBe(2);
    expect(lines(stderr)).toEqual([
      `activity-log: ${join(dir, 'activity-log-signing-key.pub.pem')} already exists; keygen never overwrites a key: move it away, or choose another --out or --name`,
    ]);
    expect(readFileSync(privateKey, 'utf8')).toBe(before);
    expect((await runCli(['keygen', `--out=${dir}`, '--name=second'], {})).code).toBe(0);
  });
});

describe('activity-log checkpoint', () => {
  test('needs a key and a destination (exit 2)', async ({ defer }) => {
    const dir = tempDir(defer);
    const noKey = await runCli(['checkpoint'], { ACTIVITY_LOG_CHECKPOINT_DIR: dir });
    expect(noKey.code).toBe(2);
    expect(lines(noKey.stderr)).toEqual([
      'activity-log: no signing key: set ACTIVITY_LOG_SIGNING_KEY to the path of an Ed25519 private key (activity-log keygen writes one)',
    ]);
    const nowhere = await runCli(['checkpoint'], { ACTIVITY_LOG_SIGNING_KEY: join(dir, 'key.pem') });
    expect(nowhere.code).toBe(2);
    expect(lines(nowhere.stderr)).toEqual([
      'activity-log: nowhere to publish: set ACTIVITY_LOG_CHECKPOINT_DIR, ACTIVITY_LOG_CHECKPOINT_WEBHOOK or both',
    ]);
  });

  test('says sealing is off when there is no seals table (exit 1)', async ({ defer }) => {
    const dir = tempDir(defer);
    const { code, stderr } = await runCli(['checkpoint'], {
      DATABASE_URL: `sqlite:${join(dir, 'unsealed.sqlite')}`,
      ACTIVITY_LOG_SIGNING_KEY: await keygen(dir),
      ACTIVITY_LOG_CHECKPOINT_DIR: join(dir, 'checkpoints'),
    });
    expect(code).toBe(1);
    expect(lines(stderr)).toEqual([
      'activity-log: no seals yet: activity_log_seals is missing; set ACTIVITY_LOG_SEAL=on so that writes are sealed',
    ]);
  });

  test('writes and posts a checkpoint of the head that verifies against the chain', async ({ defer }) => {
    const dir = tempDir(defer);
    const { url, seals } = sealedDatabase(dir, 3);
    const signingKey = await keygen(dir);
    const hook = await webhook(defer, 200);
    const checkpoints = join(dir, 'checkpoints');
    const { code, stdout, stderr } = await runCli(['checkpoint'], {
      DATABASE_URL: url,
      ACTIVITY_LOG_SIGNING_KEY: signingKey,
      ACTIVITY_LOG_CHECKPOINT_DIR: checkpoints,
      ACTIVITY_LOG_CHECKPOINT_WEBHOOK: hook.url,
    });
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const [file] = readdirSync(checkpoints);
    expect(lines(stdout)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^signed activity_log at seal 3 \\(6 rows, seal hash ${seals[2]!.hash.toString('hex')}\\) with key [0-9a-f]{64}$`,
        ),
      ),
      `wrote ${join(checkpoints, file!)}`,
      `posted to ${new URL(hook.url).origin}`,
    ]);
    expect(hook.bodies).toEqual([readFileSync(join(checkpoints, file!), 'utf8')]);

    const [loaded] = await loadCheckpoints(checkpoints);
    const publicKey = await readVerificationKey(signingKey, 'ACTIVITY_LOG_SIGNING_KEY');
    const chain = (kept: readonly Seal[]) => ({
      table: 'activity_log',
      headSeq: kept.at(-1)?.seq ?? 0,
      sealAt: (seq: number) => kept.find((seal) => seal.seq === seq),
    });
    expect(checkCheckpointAgainstChain(loaded!.checkpoint, chain(seals), publicKey)).toBeNull();
    expect(checkCheckpointAgainstChain(loaded!.checkpoint, chain(seals.slice(0, 2)), publicKey)?.kind).toBe(
      'head-behind',
    );
  });

  test('keeps the file when the webhook fails (exit 0, one line), and exits 1 when nothing took it', async ({
    defer,
  }) => {
    const dir = tempDir(defer);
    const { url } = sealedDatabase(dir, 1);
    const signingKey = await keygen(dir);
    const hook = await webhook(defer, 500);
    const checkpoints = join(dir, 'checkpoints');
    const origin = new URL(hook.url).origin;
    const both = await runCli(['checkpoint'], {
      DATABASE_URL: url,
      ACTIVITY_LOG_SIGNING_KEY: signingKey,
      ACTIVITY_LOG_CHECKPOINT_DIR: checkpoints,
      ACTIVITY_LOG_CHECKPOINT_WEBHOOK: hook.url,
    });
    expect(both.code).toBe(0);
    expect(lines(both.stderr)).toEqual([
      `activity-log: checkpoint not posted to ${origin}: it answered HTTP 500`,
    ]);
    expect(readdirSync(checkpoints)).toHaveLength(1);

    const webhookOnly = await runCli(['checkpoint'], {
      DATABASE_URL: url,
      ACTIVITY_LOG_SIGNING_KEY: signingKey,
      ACTIVITY_LOG_CHECKPOINT_WEBHOOK: hook.url,
    });
    expect(webhookOnly.code).toBe(1);
    expect(lines(webhookOnly.stderr)).toEqual([
      `activity-log: checkpoint not posted to ${origin}: it answered HTTP 500`,
    ]);
  });

  test('serve publishes a checkpoint once the interval passes, and not again for the same head', async ({
    defer,
  }) => {
    const dir = tempDir(defer);
    const { url } = sealedDatabase(dir, 2);
    const checkpoints = join(dir, 'checkpoints');
    const serve = spawnCli(['serve', '--port=0'], {
      DATABASE_URL: url,
      ACTIVITY_LOG_SPOOL_DIR: join(dir, 'spool'),
      ACTIVITY_LOG_SIGNING_KEY: await keygen(dir),
      ACTIVITY_LOG_CHECKPOINT_DIR: checkpoints,
      ACTIVITY_LOG_CHECKPOINT_INTERVAL_S: '1',
    });
    defer(async () => {
      if (serve.child.exitCode === null) serve.child.kill('SIGTERM');
      await serve.exited;
    });
    const deadline = Date.now() + 20_000;
    while (!serve.stdout().includes('checkpoint of activity_log at seal 2')) {
      if (Date.now() > deadline || serve.child.exitCode !== null) {
        throw new Error(`no checkpoint published: ${serve.stdout()} ${serve.stderr()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(serve.stdout()).toMatch(
      /checkpoint of activity_log at seal 2 \(4 rows\) published to .*checkpoints\//,
    );
    // Two more intervals with the head where it was: still one file.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(readdirSync(checkpoints)).toHaveLength(1);
    expect(serve.stderr()).not.toMatch(/warning: checkpoint/);
  });
});
