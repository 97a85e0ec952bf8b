import { EventEmitter } from 'node:events';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Activity } from '../core/activity.js';
import { type ActivityEventBus, createActivityEventBus } from '../core/activity-events.js';
import { canonicalActivityJson } from '../core/canonical-encoding.js';
import { SerialQueue } from './serial-queue.js';
import { isMissing, messageOf, spoolError } from './spool-error.js';
import type { SpoolEvents } from './spool-events.js';
import { SpoolOwnership } from './spool-ownership.js';
import { describeRefusal, type RejectedRecord, SpoolQuarantine } from './spool-quarantine.js';
import { defaultSegmentMaxBytes, type SpoolAppendResult, SpoolQuota } from './spool-quota.js';
import { countSegmentRecords, encodeSpoolRecord } from './spool-record.js';
import {
  SpoolReplayer,
  type SpoolReplayOptions,
  type SpoolReplayResult,
  type SpoolReplayWrite,
} from './spool-replayer.js';
import { DIRECTORY_MODE, listSegments } from './spool-segment-directory.js';
import { SpoolSegmentLedger } from './spool-segment-ledger.js';
import { SpoolSegmentWriter } from './spool-segment-writer.js';
import type { RefusedActivity } from './write-with-isolation.js';

export type { SpoolEvents } from './spool-events.js';
export type { RejectedRecord } from './spool-quarantine.js';
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
  /** Where `dropped` and `rejected` are reported (default: a bus of its own). */
  readonly bus?: ActivityEventBus;
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
  readonly bus: ActivityEventBus;
  /** Everything that changes the directory runs here in turn: commits, sealing before a replay, `rejected.ndjson`, releases. */
  readonly #writes = new SerialQueue();
  readonly #ledger = new SpoolSegmentLedger();
  readonly #ownership: SpoolOwnership;
  readonly #quota: SpoolQuota;
  readonly #writer: SpoolSegmentWriter;
  readonly #replayer: SpoolReplayer;
  readonly #quarantine: SpoolQuarantine;
  #prepared: Promise<void> | null = null;
  #closed = false;

  constructor(options: SpoolOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.bus = options.bus ?? createActivityEventBus();
    this.segmentMaxBytes = options.segmentMaxBytes ?? defaultSegmentMaxBytes(options.maxBytes);
    const warn = options.warn ?? ((message: string) => process.stderr.write(`${message}\n`));
    const shared = {
      dir: this.dir,
      events: this.events,
      writes: this.#writes,
      prepare: () => this.#prepareDirectory(),
    };
    this.#ownership = new SpoolOwnership(this.dir, () => this.#closed);
    this.#quota = new SpoolQuota(this.dir, this.maxBytes, this.bus, warn);
    this.#writer = new SpoolSegmentWriter({
      ...shared,
      owner: this.#ownership.owner,
      segmentMaxBytes: this.segmentMaxBytes,
      ledger: this.#ledger,
      quota: this.#quota,
    });
    this.#replayer = new SpoolReplayer({
      ...shared,
      warn,
      ledger: this.#ledger,
      quota: this.#quota,
      ownership: this.#ownership,
      writer: this.#writer,
    });
    this.#quarantine = new SpoolQuarantine({ ...shared, bus: this.bus, warn, quota: this.#quota });
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
    const fresh = this.#quarantine.unseen(refused);
    if (fresh.length === 0) return Promise.resolve({ spooled: 0, dropped: 0 });
    const rejectedAt = new Date().toISOString();
    const lines = fresh.map(({ activity, error }) =>
      Buffer.from(
        `{"rejected_at":${JSON.stringify(rejectedAt)},"error":${JSON.stringify(describeRefusal(error))},"activity":${canonicalActivityJson(activity)}}\n`,
        'utf8',
      ),
    );
    return this.#quarantine.keep(fresh, lines);
  }

  /** The activities kept in `rejected.ndjson`, oldest first (`activity-log spool rejected`). */
  rejected(): Promise<RejectedRecord[]> {
    return this.#quarantine.read();
  }

  /** Deletes `rejected.ndjson`, freeing its room in the spool; resolves with how many it held. */
  purgeRejected(): Promise<number> {
    return this.#quarantine.purge();
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
      ...(await this.#quarantine.summary()),
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
    this.#quarantine.flush();
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
}
