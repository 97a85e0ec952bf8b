import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ChainHead,
  checkpointFileName,
  generateSigningKeyPair,
  verifyCheckpoint,
} from '../../src/integrity/checkpoint.js';
import { CheckpointScheduler, publishCheckpoint } from '../../src/runtime/checkpoint-publisher.js';

const KEYS = generateSigningKeyPair();
const HEAD: ChainHead = { table: 'activity_log', seq: 4, sealHash: Buffer.alloc(32, 4), totalRows: 40 };
const NOW = () => new Date('2025-11-28T10:00:00.000Z');

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-publish-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Receiver {
  url: string;
  readonly bodies: { readonly contentType: string | undefined; readonly body: string }[];
  status: number;
  /** Milliseconds before answering. */
  delayMs: number;
}

async function receiver(): Promise<Receiver> {
  const state: Receiver = { url: '', bodies: [], status: 200, delayMs: 0 };
  const server: Server = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      state.bodies.push({ contentType: request.headers['content-type'], body });
      setTimeout(() => response.writeHead(state.status).end(), state.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/checkpoints?token=secret`;
  return state;
}

/** A port nothing listens on. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/hook`;
}

describe('publishCheckpoint', () => {
  it('writes the signed head to the directory and POSTs the same JSON to the webhook', async () => {
    const dir = tempDir();
    const hook = await receiver();
    const published = await publishCheckpoint(HEAD, {
      privateKeyPem: KEYS.privateKeyPem,
      dir,
      webhookUrl: hook.url,
      now: NOW,
    });
    expect(published.failures).toEqual([]);
    expect(published.checkpoint.body).toMatchObject({
      table: 'activity_log',
      seq: 4,
      seal_hash: '04'.repeat(32),
      total_rows: 40,
      issued_at: '2025-11-28T10:00:00.000Z',
    });
    expect(verifyCheckpoint(published.checkpoint, KEYS.publicKeyPem)).toBe(true);
    expect(published.file).toBe(join(dir, checkpointFileName(published.checkpoint)));
    const text = readFileSync(published.file!, 'utf8');
    expect(JSON.parse(text)).toEqual(published.checkpoint);
    expect(published.postedTo).toBe(new URL(hook.url).origin);
    expect(hook.bodies).toEqual([{ contentType: 'application/json', body: text }]);
  });

  it('keeps the file when the webhook fails, with one line naming only its origin', async () => {
    const dir = tempDir();
    const hook = await receiver();
    hook.status = 503;
    const origin = new URL(hook.url).origin;
    const published = await publishCheckpoint(HEAD, {
      privateKeyPem: KEYS.privateKeyPem,
      dir,
      webhookUrl: hook.url,
      now: NOW,
    });
    expect(published.failures).toEqual([`checkpoint not posted to ${origin}: it answered HTTP 503`]);
    expect(published.postedTo).toBeNull();
    expect(readdirSync(dir)).toEqual([checkpointFileName(published.checkpoint)]);
    expect(published.failures.join('')).not.toContain('secret');
  });

  it('says when the webhook does not answer in time or refuses the connection', async () => {
    const hook = await receiver();
    hook.delayMs = 2000;
    const slow = await publishCheckpoint(HEAD, {
      privateKeyPem: KEYS.privateKeyPem,
      dir: null,
      webhookUrl: hook.url,
      webhookTimeoutMs: 200,
    });
    expect(slow.failures).toEqual([
      `checkpoint not posted to ${new URL(hook.url).origin}: no answer within 0.2 s`,
    ]);
    const refused = await publishCheckpoint(HEAD, {
      privateKeyPem: KEYS.privateKeyPem,
      dir: null,
      webhookUrl: await closedPortUrl(),
    });
    expect(refused.failures).toHaveLength(1);
    expect(refused.failures[0]).toMatch(
      /^checkpoint not posted to http:\/\/127\.0\.0\.1:\d+: fetch failed: .*ECONNREFUSED/,
    );
  });

  it('reports a directory it cannot write to and still posts', async () => {
    const blocker = join(tempDir(), 'a-file');
    writeFileSync(blocker, '');
    const hook = await receiver();
    const published = await publishCheckpoint(HEAD, {
      privateKeyPem: KEYS.privateKeyPem,
      dir: join(blocker, 'checkpoints'),
      webhookUrl: hook.url,
    });
    expect(published.file).toBeNull();
    expect(published.failures).toHaveLength(1);
    expect(published.failures[0]).toMatch(/^checkpoint not written to .*a-file\/checkpoints: .*ENOTDIR/);
    expect(published.postedTo).not.toBeNull();
    expect(hook.bodies).toHaveLength(1);
  });
});

describe('CheckpointScheduler', () => {
  function scheduler(options: {
    dir: string | null;
    webhookUrl: string | null;
    heads: (ChainHead | null | Error)[];
  }) {
    const warnings: string[] = [];
    let index = 0;
    const instance = new CheckpointScheduler({
      readHead: async () => {
        const head = options.heads[Math.min(index++, options.heads.length - 1)]!;
        if (head instanceof Error) throw head;
        return head;
      },
      publish: { privateKeyPem: KEYS.privateKeyPem, dir: options.dir, webhookUrl: options.webhookUrl },
      intervalMs: 3_600_000,
      onWarning: (line) => warnings.push(line),
    });
    cleanups.push(() => instance.stop());
    return { instance, warnings };
  }

  it('publishes only when the head moved, and not again what the directory already holds', async () => {
    const dir = tempDir();
    const moved: ChainHead = { ...HEAD, seq: 5, sealHash: Buffer.alloc(32, 5), totalRows: 50 };
    const { instance, warnings } = scheduler({ dir, webhookUrl: null, heads: [null, HEAD, HEAD, moved] });
    expect(await instance.runOnce()).toBeNull();
    expect((await instance.runOnce())?.checkpoint.body.seq).toBe(4);
    expect(await instance.runOnce()).toBeNull();
    expect((await instance.runOnce())?.checkpoint.body.seq).toBe(5);
    expect(readdirSync(dir)).toHaveLength(2);
    expect(warnings).toEqual([]);

    // A restart finds seal 5 in the directory and writes nothing for it.
    const restarted = scheduler({ dir, webhookUrl: null, heads: [moved] });
    expect(await restarted.instance.runOnce()).toBeNull();
    expect(readdirSync(dir)).toHaveLength(2);
  });

  it('retries a failed destination at the next pass while the other keeps what it took', async () => {
    const dir = tempDir();
    const hook = await receiver();
    hook.status = 500;
    const { instance, warnings } = scheduler({ dir, webhookUrl: hook.url, heads: [HEAD] });
    await instance.runOnce();
    expect(warnings).toEqual([
      `checkpoint not posted to ${new URL(hook.url).origin}: it answered HTTP 500; trying again in 3600 s`,
    ]);
    hook.status = 200;
    const retried = await instance.runOnce();
    expect(retried?.file).toBeNull();
    expect(retried?.postedTo).toBe(new URL(hook.url).origin);
    expect(readdirSync(dir)).toHaveLength(1);
    expect(hook.bodies).toHaveLength(2);
    expect(await instance.runOnce()).toBeNull();
  });

  it('turns a head that cannot be signed into one warning', async () => {
    const { instance, warnings } = scheduler({
      dir: tempDir(),
      webhookUrl: null,
      heads: [{ ...HEAD, seq: 0 }],
    });
    expect(await instance.runOnce()).toBeNull();
    expect(warnings).toEqual([
      'checkpoint not published: cannot sign this checkpoint: seq is not a seal number (1 or more); trying again in 3600 s',
    ]);
  });

  it('turns a failed read of the head into one warning', async () => {
    const { instance, warnings } = scheduler({
      dir: tempDir(),
      webhookUrl: null,
      heads: [
        new Error(
          'no seals yet: activity_log_seals is missing; set ACTIVITY_LOG_SEAL=on so that writes are sealed',
        ),
      ],
    });
    expect(await instance.runOnce()).toBeNull();
    expect(warnings).toEqual([
      'checkpoint skipped: no seals yet: activity_log_seals is missing; set ACTIVITY_LOG_SEAL=on so that writes are sealed; trying again in 3600 s',
    ]);
  });
});
