import { EventEmitter } from 'node:events';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Activity } from '../core/activity.js';
import { activityToJson } from '../core/activity-json.js';
import { ActivityLogError } from '../core/errors.js';
import { SerialQueue } from './serial-queue.js';
import { isMissing, messageOf, spoolError } from './spool-error.js';
import type { SpoolEvents } from './spool-events.js';
import { SpoolOwnership } from './spool-ownership.js';
import { defaultSegmentMaxBytes, linesThatFit, type SpoolAppendResult, SpoolQuota } from './spool-quota.js';
import { countSegmentRecords, encodeSpoolRecord } from './spool-record.js';
import {
  SpoolReplayer,
  type SpoolReplayOptions,
  type SpoolReplayResult,
  type SpoolReplayWrite,
} from './spool-replayer.js';
import { DIRECTORY_MODE, FILE_MODE, listSegments, REJECTED_FILE } from './spool-segment-directory.js';
import { SegmentLedger } from './spool-segment-ledger.js';
import { SegmentWriter, writeFully } from './spool-segment-writer.js';
import { ThrottledWarning } from './throttled-warning.js';
import type { RefusedActivity } from './write-with-isolation.js';

export type { SpoolEvents } from './spool-events.js';
export type { SpoolAppendResult } from './spool-quota.js';
export type { SpoolReplayOptions, SpoolReplayResult, SpoolReplayWrite } from './spool-replayer.js';

export interface SpoolOptions {
  /** `ACTIVITY_LOG_SPOOL_DIR`. Created on the first append, not before. */
  readonly dir: string;
  /** `ACTIVITY_LOG_SPOOL_MAX_MB` in bytes: past this, appended activities are dropped (and counted). */
  readonly maxBytes: number;
  /** A segment is sealed and a new one started past this size (default: an eighth of `maxBytes`, 64 KiB to 16 MiB). */
  readonly segmentMaxBytes?: number;
  /** Where warnings (drops, refused and corrupt records) go; default: one line on stderr. */
  readonly warn?: (message: string) => void;
}

/** One activity kept in `rejected.ndjson`, as `activity-log spool rejected` lists it. */
export interface RejectedRecord {
  readonly rejectedAt: string;
  readonly error: { readonly code: string | null; readonly message: string };
  /** The activity as JSON (snake_case fields, as the query API returns it). */
  readonly activity: Readonly<Record<string, unknown>>;
}

/** One segment file, as `spool status` lists it. */
export interface SpoolSegmentInfo {
  readonly name: string;
  readonly bytes: number;
  readonly createdAt: Date;
  readonly activities: number;
  readonly corruptRecords: number;
  /** `pid-instance` of the process that owns it. */
  readonly owner: string;
  /** Whether that process is alive (its segments are not replayed by anyone else until it dies). */
  readonly ownerAlive: boolean;
}

export interface SpoolStatus {
  readonly dir: string;
  readonly maxBytes: number;
  readonly bytes: number;
  readonly segments: readonly SpoolSegmentInfo[];
  /** Intact records waiting in all segments. */
  readonly activities: number;
  readonly oldestAt: Date | null;
  /** Activities set aside because the destination rejected their data (see `rejected.ndjson`). */
  readonly rejected: number;
  /** Bytes of `rejected.ndjson`; they count against `maxBytes`. */
  readonly rejectedBytes: number;
  /** When the oldest activity in `rejected.ndjson` was set aside. */
  readonly rejectedOldestAt: Date | null;
}

const WARNING_INTERVAL_MS = 10_000;
const REMEMBERED_REJECTED_IDS = 10_000;

/**
 * The durable local fallback: an append-only log of activities in segment files under one
 * directory. Appends are grouped (every append that arrives while a write is in flight joins the
 * next one) and each group is written with one `writev` and one `fdatasync`; an append resolves
 * only once its records are on disk. Each record is length-prefixed and CRC-checked, so a torn
 * write at a crash is skipped and counted, never replayed as garbage.
 *
 * Segment names carry the creating process (`pid-instance`) and the owning one, so many
 * processes can share a directory: each replays its own segments, and claims those of a dead
 * process by renaming them to itself (an atomic step only one claimant wins). A segment is
 * deleted only after `write` confirmed every activity in it. The directory is bounded by
 * `maxBytes`: only what does not fit is dropped — counted, warned about, and never at the
 * expense of data already spooled.
 *
 * @example
 * const spool = new Spool({ dir: config.spoolDir, maxBytes: config.spoolMaxMb * 1024 * 1024 });
 * await spool.append(activities);                        // durable once it resolves
 * await spool.replay((batch) => store.insertMany(batch), { batchSize: 500 });
 * await spool.close();
 */
export class Spool {
  readonly dir: string;
  readonly maxBytes: number;
  readonly segmentMaxBytes: number;
  readonly events = new EventEmitter<SpoolEvents>();
  readonly #ownership: SpoolOwnership;
  readonly #warn: (message: string) => void;
  /** Everything that changes the directory runs here in turn: commits, sealing before a replay, `rejected.ndjson`, releases. */
  readonly #writes = new SerialQueue();
  readonly #ledger = new SegmentLedger();
  readonly #writer: SegmentWriter;
  readonly #quota: SpoolQuota;
  #prepared: Promise<void> | null = null;
  readonly #replayer: SpoolReplayer;
  #closed = false;
  readonly #refusals: ThrottledWarning;
  /**
   * Ids this instance has set aside in `rejected.ndjson`: a replayed segment that stopped after its
   * refused activity was found (the destination went away for the rest) comes back with it, and
   * the file should hold it once. Bounded; the oldest ids are forgotten first.
   */
  readonly #rejectedIds = new Set<string>();

  constructor(options: SpoolOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.segmentMaxBytes = options.segmentMaxBytes ?? defaultSegmentMaxBytes(options.maxBytes);
    this.#warn = options.warn ?? ((message) => process.stderr.write(`${message}\n`));
    this.#quota = new SpoolQuota(this.dir, this.maxBytes, this.events, this.#warn);
    this.#refusals = new ThrottledWarning(
      this.#warn,
      WARNING_INTERVAL_MS,
      (count, total, reason) =>
        `activity-log: ${count} activities were refused by the destination as bad data and kept in ${join(this.dir, REJECTED_FILE)} (${total} in all; see activity-log spool rejected): ${reason}`,
    );
    this.#ownership = new SpoolOwnership(this.dir, () => this.#closed);
    this.#writer = new SegmentWriter({
      dir: this.dir,
      owner: this.#ownership.owner,
      segmentMaxBytes: this.segmentMaxBytes,
      events: this.events,
      ledger: this.#ledger,
      quota: this.#quota,
      writes: this.#writes,
      prepare: () => this.#prepareDirectory(),
    });
    this.#replayer = new SpoolReplayer({
      dir: this.dir,
      events: this.events,
      warn: this.#warn,
      ledger: this.#ledger,
      quota: this.#quota,
      ownership: this.#ownership,
      writer: this.#writer,
      writes: this.#writes,
      prepare: () => this.#prepareDirectory(),
    });
  }

  /**
   * Creates the directory (and this process's owner file) now rather than on the first append,
   * so a directory that cannot be written is found at start-up, not during an outage.
   *
   * @throws ActivityLogError `SPOOL_FAILED` naming the directory and what to do.
   */
  async prepare(): Promise<void> {
    try {
      await this.#prepareDirectory();
    } catch (error) {
      throw spoolError(
        `the spool directory ${this.dir} cannot be written (${messageOf(error)}): set ACTIVITY_LOG_SPOOL_DIR to a directory this process may write`,
        error,
      );
    }
  }

  /** Activities this process has spooled (or claimed) and not yet replayed. */
  pending(): number {
    return this.#ledger.pending();
  }

  /** Activities dropped because the spool was full, since this instance started. */
  get droppedTotal(): number {
    return this.#quota.droppedTotal;
  }

  /** Damaged records skipped while replaying, since this instance started. */
  get corruptRecordsTotal(): number {
    return this.#replayer.corruptRecordsTotal;
  }

  /**
   * Appends activities durably: resolves once they are fsync'd, with how many were spooled and
   * how many were dropped for lack of room. Past the size limit the newest are dropped, never
   * what is already spooled nor anything older than a dropped one; with `whole`, the activities
   * are kept all together or not at all.
   *
   * @throws ActivityLogError `SPOOL_FAILED` when the directory cannot be written (or after `close()`).
   */
  append(
    activities: readonly Activity[],
    options: { readonly whole?: boolean } = {},
  ): Promise<SpoolAppendResult> {
    if (this.#closed) return Promise.reject(spoolError(`the spool at ${this.dir} was used after close()`));
    if (activities.length === 0) return Promise.resolve({ spooled: 0, dropped: 0 });
    const records = activities.map(encodeSpoolRecord);
    return this.#writer.append(records, options.whole ?? false);
  }

  /**
   * Keeps activities the destination refused as bad data in `rejected.ndjson` (one JSON line
   * each, with the error), so they are neither lost nor retried forever. The file counts against
   * `maxBytes`: what does not fit is dropped and counted. Resolves with how many were kept (an
   * activity this instance kept before is not written twice).
   *
   * @throws ActivityLogError `SPOOL_FAILED` when the file cannot be written.
   */
  reject(refused: readonly RefusedActivity[]): Promise<SpoolAppendResult> {
    if (this.#closed) return Promise.reject(spoolError(`the spool at ${this.dir} was used after close()`));
    const fresh = refused.filter(({ activity }) => !this.#rejectedIds.has(activity.id));
    if (fresh.length === 0) return Promise.resolve({ spooled: 0, dropped: 0 });
    const rejectedAt = new Date().toISOString();
    const lines = fresh.map(({ activity, error }) =>
      Buffer.from(
        `${JSON.stringify({ rejected_at: rejectedAt, error: describeRefusal(error), activity: activityToJson(activity) })}\n`,
        'utf8',
      ),
    );
    let result: SpoolAppendResult = { spooled: 0, dropped: 0 };
    return this.#writes
      .run(async () => {
        await this.#prepareDirectory();
        const { kept, bytes } = linesThatFit(lines, this.#quota.usedBytes, this.maxBytes);
        if (kept.length > 0) {
          const handle = await open(join(this.dir, REJECTED_FILE), 'a', FILE_MODE);
          try {
            const { size } = await handle.stat();
            try {
              await writeFully(handle, kept, bytes, size);
              await handle.datasync();
            } catch (writeError) {
              // Cut a partly written line off, so the file stays one whole record per line.
              await handle.truncate(size).catch(() => undefined);
              throw writeError;
            }
            this.#quota.setRejectedBytes(size + bytes);
          } finally {
            await handle.close();
          }
        }
        for (const { activity } of fresh.slice(0, kept.length)) this.#rememberRejected(activity.id);
        result = { spooled: kept.length, dropped: fresh.length - kept.length };
        if (kept.length > 0) {
          const { error } = fresh[0]!;
          this.events.emit('rejected', { count: kept.length, error });
          this.#refusals.add(kept.length, describeRefusal(error).message);
        }
        if (result.dropped > 0) this.#quota.drop(result.dropped, 'refused activities');
      })
      .then(
        () => result,
        (cause: unknown) => {
          throw spoolError(`could not keep refused activities in ${this.dir}: ${messageOf(cause)}`, cause);
        },
      );
  }

  /** The activities kept in `rejected.ndjson`, oldest first (`activity-log spool rejected`). */
  async rejected(): Promise<RejectedRecord[]> {
    let text: string;
    try {
      text = await readFile(join(this.dir, REJECTED_FILE), 'utf8');
    } catch (error) {
      if (isMissing(error)) return [];
      throw spoolError(`could not read ${join(this.dir, REJECTED_FILE)}: ${messageOf(error)}`, error);
    }
    const records: RejectedRecord[] = [];
    for (const line of text.split('\n')) {
      const record = parseRejectedLine(line);
      if (record !== null) records.push(record);
    }
    return records;
  }

  /** Deletes `rejected.ndjson`, freeing its room in the spool; resolves with how many it held. */
  purgeRejected(): Promise<number> {
    let purged = 0;
    return this.#writes
      .run(async () => {
        purged = (await this.#rejectedSummary()).rejected;
        await unlink(join(this.dir, REJECTED_FILE)).catch((error: unknown) => {
          if (!isMissing(error)) throw error;
        });
        this.#quota.setRejectedBytes(0);
        this.#rejectedIds.clear();
      })
      .then(
        () => purged,
        (cause: unknown) => {
          throw spoolError(`could not purge ${join(this.dir, REJECTED_FILE)}: ${messageOf(cause)}`, cause);
        },
      );
  }

  /**
   * Replays spooled activities in the order they were spooled: first this process's sealed
   * segments (the one being written is sealed first), then segments of dead processes, claimed
   * one by one. Each segment is deleted once `write` has confirmed all of it. A failed `write`
   * stops the pass and keeps the rest; a later pass resumes where this one stopped (inserts are
   * idempotent, so the batch that failed may safely be written twice). One pass runs at a time:
   * a call during a pass gets that pass's result.
   */
  replay(write: SpoolReplayWrite, options: SpoolReplayOptions): Promise<SpoolReplayResult> {
    return this.#replayer.replay(write, options);
  }

  /**
   * Deletes a segment a holding replay wrote in full, now that its activities are confirmed at
   * their final destination.
   */
  release(segment: string): Promise<void> {
    return this.#replayer.release(segment);
  }

  /** Makes a held segment whose activities were lost on the way replayable again, from its start. */
  rewind(segment: string): void {
    this.#replayer.rewind(segment);
  }

  /** Segments a holding replay wrote in full and keeps until they are released or rewound. */
  held(): string[] {
    return this.#ledger.held();
  }

  /** Segments, bytes, activities waiting and the oldest of them, for `spool status` and monitoring. */
  async status(): Promise<SpoolStatus> {
    const listed = await listSegments(this.dir);
    const segments: SpoolSegmentInfo[] = [];
    for (const segment of listed) {
      let counted = { records: 0, corruptRecords: 0 };
      try {
        counted = countSegmentRecords(await readFile(join(this.dir, segment.name)));
      } catch (error) {
        if (!isMissing(error)) throw spoolError(`could not read ${segment.name}: ${messageOf(error)}`, error);
      }
      segments.push({
        name: segment.name,
        bytes: segment.bytes,
        createdAt: segment.createdAt,
        activities: counted.records,
        corruptRecords: counted.corruptRecords,
        owner: segment.owner,
        ownerAlive: await this.#ownership.isAlive(segment.owner),
      });
    }
    const withActivities = segments.filter((segment) => segment.activities > 0);
    return {
      dir: this.dir,
      maxBytes: this.maxBytes,
      bytes: segments.reduce((sum, segment) => sum + segment.bytes, 0),
      segments,
      activities: segments.reduce((sum, segment) => sum + segment.activities, 0),
      oldestAt: withActivities[0]?.createdAt ?? null,
      ...(await this.#rejectedSummary()),
    };
  }

  /**
   * Waits for pending appends, closes the segment being written and gives up ownership: what is
   * still spooled is replayed by the next process to start (or by `activity-log spool replay`).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes.idle();
    await this.#replayer.idle();
    this.#ownership.stopHeartbeat();
    this.#quota.flush();
    this.#refusals.flush();
    await this.#writer.close().catch(() => undefined);
    await this.#ownership.close();
  }

  /** Creates the directory and this process's owner file (once), and learns how full the directory is. */
  #prepareDirectory(): Promise<void> {
    // Shared by concurrent callers (a commit and a claim), so there is one owner file and one heartbeat.
    this.#prepared ??= this.#createDirectory().catch((error: unknown) => {
      this.#prepared = null;
      throw error;
    });
    return this.#prepared;
  }

  async #createDirectory(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: DIRECTORY_MODE });
    await this.#ownership.start();
    await this.#quota.rescan();
  }

  #rememberRejected(id: string): void {
    this.#rejectedIds.add(id);
    if (this.#rejectedIds.size > REMEMBERED_REJECTED_IDS) {
      const oldest = this.#rejectedIds.values().next().value;
      if (oldest !== undefined) this.#rejectedIds.delete(oldest);
    }
  }

  async #rejectedSummary(): Promise<Pick<SpoolStatus, 'rejected' | 'rejectedBytes' | 'rejectedOldestAt'>> {
    let text: string;
    try {
      text = await readFile(join(this.dir, REJECTED_FILE), 'utf8');
    } catch (error) {
      if (isMissing(error)) return { rejected: 0, rejectedBytes: 0, rejectedOldestAt: null };
      throw spoolError(`could not read ${join(this.dir, REJECTED_FILE)}: ${messageOf(error)}`, error);
    }
    const lines = text.split('\n').filter((line) => line !== '');
    const oldest = lines.length === 0 ? null : parseRejectedLine(lines[0]!);
    return {
      rejected: lines.length,
      rejectedBytes: Buffer.byteLength(text, 'utf8'),
      rejectedOldestAt: oldest === null ? null : new Date(oldest.rejectedAt),
    };
  }
}

function describeRefusal(error: unknown): RejectedRecord['error'] {
  return error instanceof ActivityLogError
    ? { code: error.code, message: error.message }
    : { code: null, message: messageOf(error) };
}

function parseRejectedLine(line: string): RejectedRecord | null {
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
