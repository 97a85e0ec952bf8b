import type { Config } from '../config/config.js';
import { type ChainHead, type Checkpoint, signCheckpoint } from '../integrity/checkpoint.js';
import { ChainHeadReader } from '../store/seal-head.js';
import { checkpointJson, loadCheckpoints, writeCheckpointFile } from './checkpoint-files.js';
import { readSigningKey } from './signing-key-files.js';

/** Where checkpoints go: a directory, a webhook, or both. */
export interface CheckpointDestinations {
  /** `ACTIVITY_LOG_CHECKPOINT_DIR`: one JSON file per checkpoint, never overwritten. */
  readonly dir: string | null;
  /** `ACTIVITY_LOG_CHECKPOINT_WEBHOOK`: the checkpoint is POSTed there as JSON. */
  readonly webhookUrl: string | null;
}

export interface PublishCheckpointOptions extends CheckpointDestinations {
  /** The Ed25519 private key, PEM (see `readSigningKey`). */
  readonly privateKeyPem: string;
  /** Longest wait for the webhook's answer (default 10 s). */
  readonly webhookTimeoutMs?: number;
  /** The signing time (default now). */
  readonly now?: () => Date;
}

/** What became of one checkpoint. */
export interface PublishedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The file written, or null when there is no directory or writing failed. */
  readonly file: string | null;
  /** The webhook's origin once it answered 2xx, or null. */
  readonly postedTo: string | null;
  /** One line per destination that did not take it. */
  readonly failures: readonly string[];
}

export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;

/**
 * Signs `head` and hands the checkpoint to every destination: written to the directory first,
 * then POSTed to the webhook, so a webhook that fails never costs the file. Never rejects for a
 * destination's failure; each one is a line in `failures`.
 *
 * The webhook receives the file's text with `Content-Type: application/json` and must answer 2xx
 * (redirects are not followed). Lines name only its origin: a URL's path or query may hold a token.
 *
 * @example
 * const published = await publishCheckpoint(head, { privateKeyPem, dir: './checkpoints', webhookUrl: null });
 * for (const line of published.failures) console.error(line);
 */
export async function publishCheckpoint(
  head: ChainHead,
  options: PublishCheckpointOptions,
): Promise<PublishedCheckpoint> {
  const checkpoint = signCheckpoint(
    { ...head, issuedAt: (options.now ?? (() => new Date()))() },
    options.privateKeyPem,
  );
  const failures: string[] = [];
  let file: string | null = null;
  if (options.dir !== null) {
    try {
      file = await writeCheckpointFile(options.dir, checkpoint);
    } catch (error) {
      failures.push(`checkpoint not written to ${options.dir}: ${reasonOf(error)}`);
    }
  }
  let postedTo: string | null = null;
  if (options.webhookUrl !== null) {
    const failure = await postCheckpoint(
      options.webhookUrl,
      checkpoint,
      options.webhookTimeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS,
    );
    if (failure === null) postedTo = new URL(options.webhookUrl).origin;
    else failures.push(failure);
  }
  return Object.freeze({ checkpoint, file, postedTo, failures: Object.freeze(failures) });
}

/** POSTs the checkpoint; null when the webhook answered 2xx, else the line saying why not. */
async function postCheckpoint(
  url: string,
  checkpoint: Checkpoint,
  timeoutMs: number,
): Promise<string | null> {
  const where = `checkpoint not posted to ${new URL(url).origin}`;
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: checkpointJson(checkpoint),
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel();
    return response.ok ? null : `${where}: it answered HTTP ${response.status}`;
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') return `${where}: no answer within ${timeoutMs / 1000} s`;
    return `${where}: ${reasonOf(error)}`;
  }
}

function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // fetch reports "fetch failed" and puts the socket's error (ECONNREFUSED…) in its cause.
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

export interface CheckpointSchedulerOptions {
  /** The chain head now; null while nothing is sealed. */
  readonly readHead: () => Promise<ChainHead | null>;
  readonly publish: PublishCheckpointOptions;
  /** Time between passes (`ACTIVITY_LOG_CHECKPOINT_INTERVAL_S`). */
  readonly intervalMs: number;
  /** Time from `start()` to the first pass (default the interval, at most a minute). */
  readonly firstRunDelayMs?: number;
  /** After each checkpoint some destination took. */
  readonly onPublished?: (published: PublishedCheckpoint) => void;
  /** A destination or the head's read failed; tried again at the next interval. */
  readonly onWarning: (line: string) => void;
}

type Destination = 'dir' | 'webhook';

/**
 * Publishes a checkpoint once per interval when the chain head moved since the last one each
 * destination took: a destination that failed gets the head of the next pass, and one that took
 * the current head gets nothing until the head moves. At the first pass, the newest checkpoint
 * already in the directory counts as taken there, so a restart does not write the same head again.
 * Passes never overlap.
 *
 * @example
 * const scheduler = new CheckpointScheduler({ readHead, publish, intervalMs: 3_600_000, onWarning });
 * scheduler.start();
 * // …
 * await scheduler.stop();
 */
export class CheckpointScheduler {
  readonly #options: CheckpointSchedulerOptions;
  readonly #published = new Map<Destination, string>();
  #seeded = false;
  #stopped = false;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<PublishedCheckpoint | null> | null = null;

  constructor(options: CheckpointSchedulerOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#schedule(this.#options.firstRunDelayMs ?? Math.min(this.#options.intervalMs, 60_000));
  }

  /**
   * One pass now (or the one running): resolves with the checkpoint published, or null when the
   * head did not move for any destination. Failures are reported to `onWarning`, not thrown.
   */
  runOnce(): Promise<PublishedCheckpoint | null> {
    if (this.#running === null) {
      this.#running = this.#pass().finally(() => {
        this.#running = null;
      });
    }
    return this.#running;
  }

  /** Stops scheduling and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  async #pass(): Promise<PublishedCheckpoint | null> {
    const retry = `; trying again in ${formatSeconds(this.#options.intervalMs)}`;
    const { publish } = this.#options;
    let head: ChainHead | null;
    try {
      head = await this.#options.readHead();
    } catch (error) {
      this.#options.onWarning(
        `checkpoint skipped: ${error instanceof Error ? error.message : String(error)}${retry}`,
      );
      return null;
    }
    if (head === null) return null;
    if (!this.#seeded) await this.#seedFromDirectory(head.table);
    const key = headKey(head.seq, Buffer.from(head.sealHash).toString('hex'));
    const behind = (destination: Destination) => this.#published.get(destination) !== key;
    const dir = publish.dir !== null && behind('dir') ? publish.dir : null;
    const webhookUrl = publish.webhookUrl !== null && behind('webhook') ? publish.webhookUrl : null;
    if (dir === null && webhookUrl === null) return null;
    let published: PublishedCheckpoint;
    try {
      published = await publishCheckpoint(head, { ...publish, dir, webhookUrl });
    } catch (error) {
      // Signing refused the head (a seals table holding what no seal can be).
      this.#options.onWarning(
        `checkpoint not published: ${error instanceof Error ? error.message : String(error)}${retry}`,
      );
      return null;
    }
    if (published.file !== null) this.#published.set('dir', key);
    if (published.postedTo !== null) this.#published.set('webhook', key);
    for (const failure of published.failures) this.#options.onWarning(`${failure}${retry}`);
    if (published.file !== null || published.postedTo !== null) this.#options.onPublished?.(published);
    return published;
  }

  async #seedFromDirectory(table: string): Promise<void> {
    this.#seeded = true;
    if (this.#options.publish.dir === null) return;
    try {
      const newest = (await loadCheckpoints(this.#options.publish.dir))
        .filter(({ checkpoint }) => checkpoint.body.table === table)
        .at(-1);
      if (newest !== undefined) {
        this.#published.set('dir', headKey(newest.checkpoint.body.seq, newest.checkpoint.body.seal_hash));
      }
    } catch {
      // A directory not made yet, or holding a file that is no checkpoint: write the head anyway.
    }
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      void this.runOnce().finally(() => {
        if (!this.#stopped) this.#schedule(this.#options.intervalMs);
      });
    }, delayMs);
    // A pending checkpoint never keeps the process alive on its own.
    this.#timer.unref();
  }
}

function headKey(seq: number, sealHashHex: string): string {
  return `${seq}:${sealHashHex}`;
}

function formatSeconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/** A running {@link CheckpointScheduler} with the connections it reads the head over. */
export interface CheckpointPublishing {
  readonly scheduler: CheckpointScheduler;
  close(): Promise<void>;
}

/**
 * What `serve` runs: with a signing key and a destination configured, a {@link CheckpointScheduler}
 * every `ACTIVITY_LOG_CHECKPOINT_INTERVAL_S`, reading the head over a small pool of its own;
 * otherwise null. The key is read first, so a key that cannot be used stops start-up.
 *
 * @throws ActivityLogError `CONFIG_INVALID` when the key file cannot be read or is not Ed25519.
 */
export async function startCheckpointPublishing(
  config: Config,
  handlers: Pick<CheckpointSchedulerOptions, 'onPublished' | 'onWarning'>,
): Promise<CheckpointPublishing | null> {
  const destinations: CheckpointDestinations = {
    dir: config.checkpointDir,
    webhookUrl: config.checkpointWebhook,
  };
  if (config.signingKeyPath === null || (destinations.dir === null && destinations.webhookUrl === null)) {
    return null;
  }
  const privateKeyPem = await readSigningKey(config.signingKeyPath);
  const reader = new ChainHeadReader({ ...config.database, poolMax: 1 });
  const scheduler = new CheckpointScheduler({
    readHead: () => reader.read(),
    publish: { ...destinations, privateKeyPem },
    intervalMs: config.checkpointIntervalSeconds * 1000,
    ...handlers,
  });
  scheduler.start();
  return {
    scheduler,
    async close() {
      try {
        await scheduler.stop();
      } finally {
        await reader.close();
      }
    },
  };
}
