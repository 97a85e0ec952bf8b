import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ActivityEventBus } from '../core/activity-events.js';
import { ActivityLogError } from '../core/errors.js';
import type { SerialQueue } from './serial-queue.js';
import { isMissing, messageOf, spoolError } from './spool-error.js';
import { linesThatFit, type SpoolAppendResult, type SpoolQuota } from './spool-quota.js';
import { FILE_MODE, REJECTED_FILE } from './spool-segment-directory.js';
import { writeFully } from './spool-segment-writer.js';
import { ThrottledWarning } from './throttled-warning.js';
import type { RefusedActivity } from './write-with-isolation.js';

const WARNING_INTERVAL_MS = 10_000;
const REMEMBERED_REJECTED_IDS = 10_000;

/** One activity kept in `rejected.ndjson`, as `activity-log spool rejected` lists it. */
export interface RejectedRecord {
  readonly rejectedAt: string;
  readonly error: { readonly code: string | null; readonly message: string };
  /** The activity as JSON (snake_case fields, as the query API returns it). */
  readonly activity: Readonly<Record<string, unknown>>;
}

/** What `spool status` says about `rejected.ndjson`. */
export interface RejectedSummary {
  readonly rejected: number;
  readonly rejectedBytes: number;
  readonly rejectedOldestAt: Date | null;
}

export interface SpoolQuarantineOptions {
  readonly dir: string;
  readonly bus: ActivityEventBus;
  readonly warn: (message: string) => void;
  readonly quota: SpoolQuota;
  /** The spool's write side: the file is written and purged in turn with the segments. */
  readonly writes: SerialQueue;
  /** Makes sure the directory exists before the file is first written. */
  readonly prepare: () => Promise<void>;
}

/**
 * `rejected.ndjson`: activities the destination refused as bad data, one JSON line each with the
 * error, so they are neither lost nor retried forever. The file counts against the spool's size
 * limit; what does not fit is dropped and counted.
 */
export class SpoolQuarantine {
  readonly #options: SpoolQuarantineOptions;
  readonly #path: string;
  readonly #refusals: ThrottledWarning;
  /**
   * Ids this instance has set aside: a replayed segment that stopped after its refused activity
   * was found (the destination went away for the rest) comes back with it, and the file should
   * hold it once. Bounded; the oldest ids are forgotten first.
   */
  readonly #rejectedIds = new Set<string>();

  constructor(options: SpoolQuarantineOptions) {
    this.#options = options;
    this.#path = join(options.dir, REJECTED_FILE);
    this.#refusals = new ThrottledWarning(
      options.warn,
      WARNING_INTERVAL_MS,
      (count, total, reason) =>
        `activity-log: ${count} activities were refused by the destination as bad data and kept in ${this.#path} (${total} in all; see activity-log spool rejected): ${reason}`,
    );
  }

  /** The refused activities this instance has not kept before. */
  unseen(refused: readonly RefusedActivity[]): RefusedActivity[] {
    return refused.filter(({ activity }) => !this.#rejectedIds.has(activity.id));
  }

  /**
   * Appends `lines` (one per activity of `refused`, in order) as far as they fit; resolves with
   * how many were kept.
   *
   * @throws ActivityLogError `SPOOL_FAILED` when the file cannot be written.
   */
  keep(refused: readonly RefusedActivity[], lines: readonly Buffer[]): Promise<SpoolAppendResult> {
    const { quota, bus } = this.#options;
    let result: SpoolAppendResult = { spooled: 0, dropped: 0 };
    return this.#options.writes
      .run(async () => {
        await this.#options.prepare();
        const { kept, bytes } = linesThatFit(lines, quota.usedBytes, quota.maxBytes);
        if (kept.length > 0) await this.#appendLines(kept, bytes);
        for (const { activity } of refused.slice(0, kept.length)) this.#remember(activity.id);
        result = { spooled: kept.length, dropped: refused.length - kept.length };
        if (kept.length > 0) {
          const { error } = refused[0]!;
          bus.emit('rejected', { count: kept.length, error });
          this.#refusals.add(kept.length, describeRefusal(error).message);
        }
        if (result.dropped > 0) quota.drop(result.dropped, 'refused activities');
      })
      .then(
        () => result,
        (cause: unknown) => {
          throw spoolError(
            `could not keep refused activities in ${this.#options.dir}: ${messageOf(cause)}`,
            cause,
          );
        },
      );
  }

  /** The activities kept, oldest first. */
  async read(): Promise<RejectedRecord[]> {
    const text = await this.#readText();
    const records: RejectedRecord[] = [];
    for (const line of text?.split('\n') ?? []) {
      const record = parseRejectedLine(line);
      if (record !== null) records.push(record);
    }
    return records;
  }

  /** Deletes the file, freeing its room in the spool; resolves with how many activities it held. */
  purge(): Promise<number> {
    let purged = 0;
    return this.#options.writes
      .run(async () => {
        purged = (await this.summary()).rejected;
        await unlink(this.#path).catch((error: unknown) => {
          if (!isMissing(error)) throw error;
        });
        this.#options.quota.setRejectedBytes(0);
        this.#rejectedIds.clear();
      })
      .then(
        () => purged,
        (cause: unknown) => {
          throw spoolError(`could not purge ${this.#path}: ${messageOf(cause)}`, cause);
        },
      );
  }

  /** How many activities the file holds, its size and when the oldest was set aside. */
  async summary(): Promise<RejectedSummary> {
    const text = await this.#readText();
    if (text === null) return { rejected: 0, rejectedBytes: 0, rejectedOldestAt: null };
    const lines = text.split('\n').filter((line) => line !== '');
    const oldest = lines.length === 0 ? null : parseRejectedLine(lines[0]!);
    return {
      rejected: lines.length,
      rejectedBytes: Buffer.byteLength(text, 'utf8'),
      rejectedOldestAt: oldest === null ? null : new Date(oldest.rejectedAt),
    };
  }

  /** Says the refusals not yet warned about. */
  flush(): void {
    this.#refusals.flush();
  }

  async #appendLines(lines: readonly Buffer[], bytes: number): Promise<void> {
    const handle = await open(this.#path, 'a', FILE_MODE);
    try {
      const { size } = await handle.stat();
      try {
        await writeFully(handle, lines, bytes, size);
        await handle.datasync();
      } catch (writeError) {
        // Cut a partly written line off, so the file stays one whole record per line.
        await handle.truncate(size).catch(() => undefined);
        throw writeError;
      }
      this.#options.quota.setRejectedBytes(size + bytes);
    } finally {
      await handle.close();
    }
  }

  /** The file's text, or null when there is none. */
  async #readText(): Promise<string | null> {
    try {
      return await readFile(this.#path, 'utf8');
    } catch (error) {
      if (isMissing(error)) return null;
      throw spoolError(`could not read ${this.#path}: ${messageOf(error)}`, error);
    }
  }

  #remember(id: string): void {
    this.#rejectedIds.add(id);
    if (this.#rejectedIds.size > REMEMBERED_REJECTED_IDS) {
      const oldest = this.#rejectedIds.values().next().value;
      if (oldest !== undefined) this.#rejectedIds.delete(oldest);
    }
  }
}

/** The `error` a `rejected.ndjson` line carries. */
export function describeRefusal(error: unknown): RejectedRecord['error'] {
  return error instanceof ActivityLogError
    ? { code: error.code, message: error.message }
    : { code: null, message: messageOf(error) };
}

/** One line of `rejected.ndjson`, or null when it is blank or was cut by a crash mid-append. */
export function parseRejectedLine(line: string): RejectedRecord | null {
  if (line.trim() === '') return null;
  try {
    const parsed = JSON.parse(line) as {
      rejected_at?: unknown;
      error?: { code?: unknown; message?: unknown };
      activity?: unknown;
    };
    if (typeof parsed.rejected_at !== 'string' || typeof parsed.activity !== 'object') return null;
    return {
      rejectedAt: parsed.rejected_at,
      error: {
        code: typeof parsed.error?.code === 'string' ? parsed.error.code : null,
        message: typeof parsed.error?.message === 'string' ? parsed.error.message : '',
      },
      activity: parsed.activity as Record<string, unknown>,
    };
  } catch {
    // A line cut by a crash mid-append.
    return null;
  }
}
