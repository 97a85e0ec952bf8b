import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { CheckpointBody } from '../integrity/checkpoint.js';
import type { IntegritySource } from '../metrics/monitoring.js';
import type { CheckpointJson, IntegrityJson, VerifyJson } from '../metrics/snapshot.js';
import { type SealFigures, SealFiguresReader } from '../store/seal-figures.js';
import { loadCheckpoints } from './checkpoint-files.js';
import type { VerifyScheduler } from './verify-scheduler.js';

export interface IntegrityWatchOptions {
  readonly config: Config;
  /** The scheduled verification, when `ACTIVITY_LOG_VERIFY_INTERVAL_S` is set. */
  readonly verify: VerifyScheduler | null;
  /** This process publishes checkpoints (a signing key and a destination are configured). */
  readonly publishing: boolean;
  readonly nowMs?: () => number;
}

interface KnownCheckpoint {
  readonly seq: number;
  readonly issuedAtMs: number;
  readonly issuedAt: string;
  readonly source: CheckpointJson['source'];
}

/** The longest a snapshot waits for the seal figures. */
const READ_WAIT_MS = 1000;

const NO_VERIFY: VerifyJson = Object.freeze({
  status: 'never',
  at: null,
  duration_ms: null,
  seals: 0,
  rows: 0,
  problems: 0,
  first_problem: null,
  interval_seconds: null,
  running: false,
  error: null,
});

/**
 * What `serve` shows of its table's tamper evidence (the snapshot's `integrity`): seals written
 * and rows sealed (read from `<table>_seals` over a connection of its own), the newest checkpoint
 * (the newest file of this table in `ACTIVITY_LOG_CHECKPOINT_DIR`, or the last this process
 * published), how long the newest seals have gone without one, and the last scheduled verification.
 *
 * @example
 * const watch = new IntegrityWatch({ config, verify: scheduler, publishing: true });
 * const monitoring = startMonitoring({ config, collector, integrity: watch });
 * watch.recordCheckpoint(published.checkpoint.body);
 * await watch.close();
 */
export class IntegrityWatch implements IntegritySource {
  readonly #config: Config;
  readonly #verify: VerifyScheduler | null;
  readonly #publishing: boolean;
  readonly #reader: SealFiguresReader;
  readonly #startedAtMs: number;
  #figures: SealFigures = { seals: 0, rows: 0 };
  #published: KnownCheckpoint | null = null;
  #newestFile: { readonly name: string; readonly checkpoint: KnownCheckpoint | null } | null = null;
  #sealedAt: { readonly seq: number; readonly ms: number | null } | null = null;
  #reading: Promise<string | null> | null = null;

  constructor(options: IntegrityWatchOptions) {
    this.#config = options.config;
    this.#verify = options.verify;
    this.#publishing = options.publishing;
    this.#reader = new SealFiguresReader(options.config.database);
    this.#startedAtMs = (options.nowMs ?? Date.now)();
  }

  /** A checkpoint this process published. */
  recordCheckpoint(body: Pick<CheckpointBody, 'seq' | 'issued_at'>): void {
    this.#published = {
      seq: body.seq,
      issuedAt: body.issued_at,
      issuedAtMs: Date.parse(body.issued_at),
      source: 'published',
    };
  }

  async figures(nowMs: number): Promise<IntegrityJson> {
    const checkpoint = newer(this.#published, await this.#newestInDirectory());
    const readError = await this.#refresh(checkpoint);
    const behind = this.#behindSeconds(checkpoint, nowMs);
    return {
      seals_written: this.#figures.seals,
      rows_sealed: this.#figures.rows,
      read_error: readError,
      checkpoint:
        checkpoint === null
          ? null
          : {
              seq: checkpoint.seq,
              issued_at: checkpoint.issuedAt,
              age_seconds: Math.max(0, Math.round((nowMs - checkpoint.issuedAtMs) / 1000)),
              source: checkpoint.source,
            },
      checkpoint_behind_seconds: behind,
      verify: this.#verify?.json() ?? NO_VERIFY,
    };
  }

  async close(): Promise<void> {
    await this.#reading;
    await this.#reader.close();
  }

  /**
   * Reads the seal figures (and when the first seal no checkpoint covers was written), waiting
   * {@link READ_WAIT_MS} at most: a database that does not answer must not hold up the snapshot
   * it is part of, least of all during an outage. A read still running is joined, never doubled.
   * Resolves with why the figures are not fresh, or null.
   */
  async #refresh(checkpoint: KnownCheckpoint | null): Promise<string | null> {
    this.#reading ??= this.#read(checkpoint).finally(() => {
      this.#reading = null;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`the database did not answer within ${READ_WAIT_MS / 1000} s`),
        READ_WAIT_MS,
      );
    });
    try {
      return await Promise.race([this.#reading, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #read(checkpoint: KnownCheckpoint | null): Promise<string | null> {
    try {
      this.#figures = await this.#reader.read();
      const firstUncovered = (checkpoint?.seq ?? 0) + 1;
      if (this.#figures.seals >= firstUncovered && this.#sealedAt?.seq !== firstUncovered) {
        const sealedAt = await this.#reader.sealedAt(firstUncovered);
        this.#sealedAt = { seq: firstUncovered, ms: sealedAt?.getTime() ?? null };
      }
      return null;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  /**
   * Seconds since the first seal after the newest checkpoint was written (this process's start at
   * the earliest, so checkpoints not published yet at start-up are not late); null when no
   * checkpoints are kept.
   */
  #behindSeconds(checkpoint: KnownCheckpoint | null, nowMs: number): number | null {
    if (this.#config.checkpointDir === null && !this.#publishing) return null;
    const covered = checkpoint?.seq ?? 0;
    if (this.#figures.seals <= covered) return 0;
    const sealedAtMs = this.#sealedAt?.seq === covered + 1 ? this.#sealedAt.ms : null;
    const since = Math.max(sealedAtMs ?? this.#startedAtMs, this.#startedAtMs);
    return Math.max(0, Math.round((nowMs - since) / 1000));
  }

  /**
   * The newest checkpoint of this table in the directory: file names begin with the table and the
   * zero-padded `seq`, so the last name is the newest, and only that file is read (once).
   */
  async #newestInDirectory(): Promise<KnownCheckpoint | null> {
    const dir = this.#config.checkpointDir;
    if (dir === null) return null;
    const table = this.#config.database.table;
    const prefix = `${table.replace(/[^A-Za-z0-9_]/g, '_')}-`;
    let names: string[];
    try {
      names = (await readdir(dir)).filter(
        (name) =>
          name.startsWith(prefix) && name.endsWith('.json') && /^\d{12}-/.test(name.slice(prefix.length)),
      );
    } catch {
      return null;
    }
    const name = names.sort().at(-1);
    if (name === undefined) return null;
    if (this.#newestFile?.name !== name) {
      let checkpoint: KnownCheckpoint | null = null;
      try {
        const body = (await loadCheckpoints(join(dir, name)))[0]?.checkpoint.body;
        if (body !== undefined && body.table === table) {
          checkpoint = {
            seq: body.seq,
            issuedAt: body.issued_at,
            issuedAtMs: Date.parse(body.issued_at),
            source: 'dir',
          };
        }
      } catch {
        // Not a checkpoint: `verify` names it; here it is only not counted.
      }
      this.#newestFile = { name, checkpoint };
    }
    return this.#newestFile.checkpoint;
  }
}

function newer(a: KnownCheckpoint | null, b: KnownCheckpoint | null): KnownCheckpoint | null {
  if (a === null) return b;
  if (b === null) return a;
  if (a.seq !== b.seq) return a.seq > b.seq ? a : b;
  return a.issuedAtMs >= b.issuedAtMs ? a : b;
}
