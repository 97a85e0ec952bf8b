import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { Activity } from '../core/activity.js';
import { canonicalActivityJson } from '../core/canonical-encoding.js';
import { ActivityLogError } from '../core/errors.js';
import { countSegmentRecords, decodeSegment, encodeSpoolRecord, SEGMENT_MAGIC } from './spool-record.js';
import { ThrottledWarning } from './throttled-warning.js';
import type { RefusedActivity } from './write-with-isolation.js';

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

/** How many of the appended activities were made durable and how many did not fit. */
export interface SpoolAppendResult {
  readonly spooled: number;
  readonly dropped: number;
}

export interface SpoolReplayOptions {
  /** Activities per `write` call. */
  readonly batchSize: number;
  /** Checked between batches: once aborted, replay stops and keeps what it has not written. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: { readonly replayed: number; readonly segment: string }) => void;
  /**
   * Keep each segment once it is written, instead of deleting it, until {@link Spool.release}
   * (its activities reached their final destination) or {@link Spool.rewind} (they were lost on
   * the way and are written again by the next pass). For a destination that stores later, the queue.
   */
  readonly hold?: boolean;
}

/** What a replay write is given besides the activities: the segment they come from. */
export type SpoolReplayWrite = (activities: readonly Activity[], segment: string) => Promise<void>;

export interface SpoolReplayResult {
  /** Activities confirmed written in this pass. */
  readonly replayed: number;
  /** Segments fully replayed and deleted. */
  readonly segments: number;
  readonly corruptRecords: number;
  /** False when a write failed or replay was aborted; the rest stays spooled. */
  readonly complete: boolean;
  /** The write failure that stopped the pass. */
  readonly error?: unknown;
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

/** Typed events for metrics and alerts. */
export interface SpoolEvents {
  spooled: [event: { readonly count: number; readonly bytes: number }];
  /** Activities that did not fit under `maxBytes`; the data already spooled is untouched. */
  dropped: [event: { readonly count: number; readonly totalBytes: number; readonly maxBytes: number }];
  replayed: [event: { readonly count: number; readonly segment: string }];
  corruptRecordSkipped: [event: { readonly segment: string; readonly count: number }];
  /** A segment of a dead process was taken over for replay. */
  claimed: [event: { readonly segment: string; readonly from: string }];
  /** Activities the destination refused as bad data, kept in `rejected.ndjson` instead of replayed forever. */
  rejected: [event: { readonly count: number; readonly error: unknown }];
}

interface ActiveSegment {
  readonly name: string;
  readonly path: string;
  readonly handle: FileHandle;
  readonly ino: number;
  bytes: number;
  records: number;
}

interface SegmentProgress {
  /** Records written to it (own segments) or found in it (claimed ones). */
  records: number;
  /** Records confirmed written by replay, so a retried pass resumes after them. */
  replayed: number;
  corruptReported: boolean;
  /**
   * A write to it failed part-way (a full disk) and its tail could not be cut off again: replay
   * finds a damaged record there whose activities were never reported as spooled.
   */
  failedWriteTail: boolean;
  /** Written in full by a holding replay, kept until it is released or rewound. */
  held: boolean;
}

interface PendingAppend {
  readonly records: readonly Buffer[];
  /** All or none of the records: if they do not all fit, every one is dropped. */
  readonly whole: boolean;
  readonly resolve: (result: SpoolAppendResult) => void;
  readonly reject: (error: unknown) => void;
}

interface ListedSegment {
  readonly name: string;
  readonly bytes: number;
  /** Name without the owner part: creation time, sequence and the writing process. Sorts in write order. */
  readonly base: string;
  readonly owner: string;
  readonly createdAt: Date;
}

const SEGMENT_PATTERN = /^(\d{13}-\d{6}-\d+-[0-9a-f]+)@(\d+-[0-9a-f]+)\.seg$/;
const REJECTED_FILE = 'rejected.ndjson';
const OWNER_HEARTBEAT_MS = 10_000;
/** An owner file untouched this long belongs to a process that is gone (or hung) even if its pid is reused. */
const OWNER_STALE_MS = 60_000;
const WARNING_INTERVAL_MS = 10_000;
/** Spool files hold activity data (IPs, user agents, properties): readable by their owner only. */
const FILE_MODE = 0o600;
const DIRECTORY_MODE = 0o700;
const REMEMBERED_REJECTED_IDS = 10_000;

/** Instances alive in this process: a segment with our pid and another instance id is from an earlier run. */
const LIVE_INSTANCES = new Set<string>();

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
  readonly #instance = randomBytes(4).toString('hex');
  readonly #owner = `${process.pid}-${this.#instance}`;
  readonly #warn: (message: string) => void;
  readonly #segments = new Map<string, SegmentProgress>();
  #pendingAppends: PendingAppend[] = [];
  #commitQueued = false;
  #chain: Promise<void> = Promise.resolve();
  #active: ActiveSegment | null = null;
  #sequence = 0;
  #totalBytes = -1;
  /**
   * The spool's size when it last had to drop: until replay brings it below that, nothing new is
   * kept, so a smaller, newer record never takes the place of an older one that was dropped.
   */
  #fullAtBytes: number | null = null;
  #ownerFile: string | null = null;
  #prepared: Promise<void> | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #replaying: Promise<SpoolReplayResult> | null = null;
  #closed = false;
  /** Bytes of `rejected.ndjson`, counted against `maxBytes` with the segments. */
  #rejectedBytes = 0;
  readonly #drops: ThrottledWarning;
  readonly #refusals: ThrottledWarning;
  #corruptTotal = 0;
  /**
   * Ids this instance has set aside in `rejected.ndjson`: a replayed segment that stopped after its
   * refused activity was found (the destination went away for the rest) comes back with it, and
   * the file should hold it once. Bounded; the oldest ids are forgotten first.
   */
  readonly #rejectedIds = new Set<string>();

  constructor(options: SpoolOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.segmentMaxBytes =
      options.segmentMaxBytes ??
      Math.min(16 * 1024 * 1024, Math.max(64 * 1024, Math.floor(options.maxBytes / 8)));
    this.#warn = options.warn ?? ((message) => process.stderr.write(`${message}\n`));
    this.#drops = new ThrottledWarning(
      this.#warn,
      WARNING_INTERVAL_MS,
      (count, total, what) =>
        `activity-log: the spool at ${this.dir} is full (ACTIVITY_LOG_SPOOL_MAX_MB=${Math.round(this.maxBytes / 1024 / 1024)}); dropped ${count} ${what} (${total} in all). Bring the destination back, purge refused activities (activity-log spool rejected --purge) or raise the limit`,
    );
    this.#refusals = new ThrottledWarning(
      this.#warn,
      WARNING_INTERVAL_MS,
      (count, total, reason) =>
        `activity-log: ${count} activities were refused by the destination as bad data and kept in ${join(this.dir, REJECTED_FILE)} (${total} in all; see activity-log spool rejected): ${reason}`,
    );
    LIVE_INSTANCES.add(this.#instance);
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
    let pending = 0;
    for (const progress of this.#segments.values())
      pending += Math.max(0, progress.records - progress.replayed);
    return pending;
  }

  /** Activities dropped because the spool was full, since this instance started. */
  get droppedTotal(): number {
    return this.#drops.total;
  }

  /** Damaged records skipped while replaying, since this instance started. */
  get corruptRecordsTotal(): number {
    return this.#corruptTotal;
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
    return new Promise<SpoolAppendResult>((resolve, reject) => {
      this.#pendingAppends.push({ records, whole: options.whole ?? false, resolve, reject });
      if (!this.#commitQueued) {
        this.#commitQueued = true;
        void this.#serialized(() => this.#commit());
      }
    });
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
        `{"rejected_at":${JSON.stringify(rejectedAt)},"error":${JSON.stringify(describeRefusal(error))},"activity":${canonicalActivityJson(activity)}}\n`,
        'utf8',
      ),
    );
    let result: SpoolAppendResult = { spooled: 0, dropped: 0 };
    return this.#serialized(async () => {
      await this.#prepareDirectory();
      const kept: Buffer[] = [];
      let bytes = 0;
      for (const line of lines) {
        if (this.#totalBytes + this.#rejectedBytes + bytes + line.length > this.maxBytes) break;
        kept.push(line);
        bytes += line.length;
      }
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
          this.#rejectedBytes = size + bytes;
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
      if (result.dropped > 0) this.#onDropped(result.dropped, 'refused activities');
    }).then(
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
    return this.#serialized(async () => {
      purged = (await this.#rejectedSummary()).rejected;
      await unlink(join(this.dir, REJECTED_FILE)).catch((error: unknown) => {
        if (!isMissing(error)) throw error;
      });
      this.#rejectedBytes = 0;
      this.#rejectedIds.clear();
    }).then(
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
    this.#replaying ??= this.#replayPass(write, options).finally(() => {
      this.#replaying = null;
    });
    return this.#replaying;
  }

  /**
   * Deletes a segment a holding replay wrote in full, now that its activities are confirmed at
   * their final destination.
   */
  release(segment: string): Promise<void> {
    return this.#serialized(async () => {
      const path = join(this.dir, segment);
      const bytes = await stat(path).then(
        ({ size }) => size,
        () => 0,
      );
      await unlink(path).catch((error: unknown) => {
        if (!isMissing(error)) throw spoolError(`could not delete ${path}: ${messageOf(error)}`, error);
      });
      this.#segments.delete(segment);
      this.#totalBytes = Math.max(0, this.#totalBytes - bytes);
    });
  }

  /** Makes a held segment whose activities were lost on the way replayable again, from its start. */
  rewind(segment: string): void {
    const progress = this.#segments.get(segment);
    if (progress === undefined) return;
    progress.held = false;
    progress.replayed = 0;
  }

  /** Segments a holding replay wrote in full and keeps until they are released or rewound. */
  held(): string[] {
    return [...this.#segments].filter(([, progress]) => progress.held).map(([name]) => name);
  }

  /** Segments, bytes, activities waiting and the oldest of them, for `spool status` and monitoring. */
  async status(): Promise<SpoolStatus> {
    const listed = await this.#list();
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
        ownerAlive: await this.#ownerAlive(segment.owner),
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
    await this.#chain;
    if (this.#replaying !== null) await this.#replaying.catch(() => undefined);
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    this.#drops.flush();
    this.#refusals.flush();
    await this.#closeActive().catch(() => undefined);
    if (this.#ownerFile !== null) await unlink(this.#ownerFile).catch(() => undefined);
    LIVE_INSTANCES.delete(this.#instance);
  }

  /** Runs `operation` after every earlier write-side operation, without one failure blocking the next. */
  #serialized(operation: () => Promise<void>): Promise<void> {
    const result = this.#chain.then(operation);
    this.#chain = result.catch(() => undefined);
    return result;
  }

  async #commit(): Promise<void> {
    this.#commitQueued = false;
    const group = this.#pendingAppends;
    this.#pendingAppends = [];
    try {
      await this.#prepareDirectory();
      const buffers: Buffer[] = [];
      const results: SpoolAppendResult[] = [];
      let bytes = 0;
      let dropped = 0;
      // Once one record does not fit, none after it is kept: a smaller, newer record must not
      // take the place of an older one.
      const usedBytes = this.#totalBytes + this.#rejectedBytes;
      if (this.#fullAtBytes !== null && usedBytes < this.#fullAtBytes) this.#fullAtBytes = null;
      let full = this.#fullAtBytes !== null;
      const fits = (extra: number) =>
        usedBytes + bytes + extra + (this.#active === null ? SEGMENT_MAGIC.length : 0) <= this.maxBytes;
      for (const append of group) {
        let spooled = 0;
        if (append.whole && !full && !fits(append.records.reduce((sum, record) => sum + record.length, 0))) {
          full = true;
        }
        for (const record of append.records) {
          if (full || !fits(record.length)) {
            full = true;
            continue;
          }
          buffers.push(record);
          bytes += record.length;
          spooled++;
        }
        results.push({ spooled, dropped: append.records.length - spooled });
        dropped += append.records.length - spooled;
      }
      if (buffers.length > 0) await this.#writeRecords(buffers, bytes);
      if (full) this.#fullAtBytes = this.#totalBytes + this.#rejectedBytes;
      if (buffers.length > 0 && this.events.listenerCount('spooled') > 0) {
        this.events.emit('spooled', { count: buffers.length, bytes });
      }
      if (dropped > 0) this.#onDropped(dropped);
      group.forEach((append, i) => {
        append.resolve(results[i]!);
      });
    } catch (error) {
      const failure = spoolError(`could not write to the spool at ${this.dir}: ${messageOf(error)}`, error);
      for (const append of group) append.reject(failure);
    }
  }

  async #writeRecords(buffers: Buffer[], bytes: number): Promise<void> {
    if (
      this.#active !== null &&
      this.#active.records > 0 &&
      this.#active.bytes + bytes > this.segmentMaxBytes
    ) {
      await this.#closeActive();
      await this.#rescanBytes();
    }
    const active = this.#active ?? (await this.#openSegment());
    try {
      await writeFully(active.handle, buffers, bytes, active.bytes);
      await active.handle.datasync();
    } catch (error) {
      await this.#cutFailedWrite(active);
      throw error;
    }
    active.bytes += bytes;
    active.records += buffers.length;
    this.#totalBytes += bytes;
    const progress = this.#segments.get(active.name);
    if (progress !== undefined) progress.records += buffers.length;
    if (!(await this.#stillOwned(active))) {
      // Another process took this segment while this one was stalled past the owner timeout and may
      // already have replayed and deleted it: write the group again into a segment of our own.
      this.#active = null;
      await active.handle.close().catch(() => undefined);
      this.#segments.delete(active.name);
      await this.#writeRecords(buffers, bytes);
    }
  }

  /**
   * A group that was not all written (the disk is full, an I/O error) was reported to its callers
   * as not spooled: cut it off the segment, so replay never finds it. If even that fails, the
   * segment is closed and replay reports its damaged tail as a failed write, not as a crash.
   */
  async #cutFailedWrite(active: ActiveSegment): Promise<void> {
    try {
      await active.handle.truncate(active.bytes);
      await active.handle.datasync();
      return;
    } catch {
      const progress = this.#segments.get(active.name);
      if (progress !== undefined) progress.failedWriteTail = true;
    }
    // A damaged tail must not be followed by more records in the same file: start afresh.
    await this.#closeActive().catch(() => undefined);
  }

  async #stillOwned(active: ActiveSegment): Promise<boolean> {
    try {
      return (await stat(active.path)).ino === active.ino;
    } catch {
      return false;
    }
  }

  async #openSegment(): Promise<ActiveSegment> {
    this.#sequence++;
    const base = `${String(Date.now()).padStart(13, '0')}-${String(this.#sequence % 1_000_000).padStart(6, '0')}-${this.#owner}`;
    const name = `${base}@${this.#owner}.seg`;
    const path = join(this.dir, name);
    const handle = await open(path, 'wx', FILE_MODE);
    try {
      await writeFully(handle, [SEGMENT_MAGIC], SEGMENT_MAGIC.length, 0);
      const { ino } = await handle.stat();
      // The new name must survive a crash as well as the records in it.
      await syncDirectory(this.dir);
      const active: ActiveSegment = { name, path, handle, ino, bytes: SEGMENT_MAGIC.length, records: 0 };
      this.#active = active;
      this.#segments.set(name, newProgress(0));
      this.#totalBytes += SEGMENT_MAGIC.length;
      return active;
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  async #closeActive(): Promise<void> {
    const active = this.#active;
    if (active === null) return;
    this.#active = null;
    await active.handle.close();
    if (active.records === 0) {
      await unlink(active.path).catch(() => undefined);
      this.#segments.delete(active.name);
      this.#totalBytes -= active.bytes;
    }
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
    const ownerFile = join(this.dir, `${this.#owner}.owner`);
    await (await open(ownerFile, 'w', FILE_MODE)).close();
    this.#ownerFile = ownerFile;
    this.#heartbeat = setInterval(() => {
      const now = new Date();
      // Recreated if someone removed it while this process was stalled past OWNER_STALE_MS.
      utimes(ownerFile, now, now).catch(() =>
        writeFile(ownerFile, '', { mode: FILE_MODE }).catch(() => undefined),
      );
    }, OWNER_HEARTBEAT_MS);
    this.#heartbeat.unref();
    await this.#rescanBytes();
  }

  async #rescanBytes(): Promise<void> {
    const listed = await this.#list();
    this.#totalBytes = listed.reduce((sum, segment) => sum + segment.bytes, 0);
    this.#rejectedBytes = await stat(join(this.dir, REJECTED_FILE)).then(
      ({ size }) => size,
      () => 0,
    );
  }

  async #list(): Promise<ListedSegment[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      // No directory there (yet): nothing was spooled. Whether one can be made is for the first
      // append, or prepare(), to find out.
      if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
      throw spoolError(`could not list the spool at ${this.dir}: ${messageOf(error)}`, error);
    }
    const listed: ListedSegment[] = [];
    for (const name of names) {
      const match = SEGMENT_PATTERN.exec(name);
      if (match === null) continue;
      try {
        const { size } = await stat(join(this.dir, name));
        listed.push({
          name,
          bytes: size,
          base: match[1]!,
          owner: match[2]!,
          createdAt: new Date(Number(name.slice(0, 13))),
        });
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
    return listed.sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
  }

  async #ownerAlive(owner: string): Promise<boolean> {
    if (owner === this.#owner) return !this.#closed;
    const [pidText, instance] = owner.split('-') as [string, string];
    const pid = Number(pidText);
    if (pid === process.pid) {
      if (LIVE_INSTANCES.has(instance)) return true;
      // Not one of ours, but processes in other containers sharing this directory can have our pid
      // (often 1): only a stale owner file says this one is gone.
    } else {
      try {
        process.kill(pid, 0);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
      }
    }
    try {
      const { mtimeMs } = await stat(join(this.dir, `${owner}.owner`));
      return Date.now() - mtimeMs < OWNER_STALE_MS;
    } catch {
      return false;
    }
  }

  async #replayPass(write: SpoolReplayWrite, options: SpoolReplayOptions): Promise<SpoolReplayResult> {
    // The segment being written is sealed first, so replay only ever reads files nobody appends to.
    await this.#serialized(async () => {
      if (this.#active !== null && this.#active.records > 0) await this.#closeActive();
    });
    let replayed = 0;
    let segments = 0;
    let corruptRecords = 0;
    const known = [...this.#segments.keys()];
    const listed = await this.#list();
    this.#totalBytes = Math.max(
      this.#totalBytes,
      listed.reduce((sum, segment) => sum + segment.bytes, 0),
    );
    this.#forgetVanishedSegments(known, listed);
    for (const segment of listed) {
      if (options.signal?.aborted === true) return { replayed, segments, corruptRecords, complete: false };
      if (segment.name === this.#active?.name) continue;
      let name = segment.name;
      if (segment.owner !== this.#owner) {
        if (await this.#ownerAlive(segment.owner)) continue;
        const claimed = await this.#claim(segment);
        if (claimed === null) continue;
        name = claimed;
      }
      const outcome = await this.#replaySegment(name, write, options);
      replayed += outcome.replayed;
      corruptRecords += outcome.corruptRecords;
      if (!outcome.complete) {
        return {
          replayed,
          segments,
          corruptRecords,
          complete: false,
          ...(outcome.error === undefined ? {} : { error: outcome.error }),
        };
      }
      segments++;
    }
    await this.#removeDeadOwnerFiles();
    return { replayed, segments, corruptRecords, complete: true };
  }

  /**
   * Segments of ours that are no longer in the directory were claimed by another process (this one
   * stalled past the owner timeout) or removed by hand: they are no longer ours to replay, and
   * counting them as pending would keep replay running for nothing.
   */
  #forgetVanishedSegments(known: readonly string[], listed: readonly ListedSegment[]): void {
    // Only segments known before the directory was read: one made while it was read is not listed.
    const present = new Set(listed.map((segment) => segment.name));
    for (const name of known) {
      if (name !== this.#active?.name && !present.has(name)) this.#segments.delete(name);
    }
  }

  /** Owner files of dead processes whose segments have all been replayed are no longer needed. */
  async #removeDeadOwnerFiles(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    const owners = new Set(
      names.map((name) => SEGMENT_PATTERN.exec(name)?.[2]).filter((owner) => owner !== undefined),
    );
    for (const name of names) {
      if (!name.endsWith('.owner')) continue;
      const owner = name.slice(0, -'.owner'.length);
      if (owner === this.#owner || owners.has(owner) || (await this.#ownerAlive(owner))) continue;
      await unlink(join(this.dir, name)).catch(() => undefined);
    }
  }

  async #claim(segment: ListedSegment): Promise<string | null> {
    await this.#prepareDirectory();
    const name = `${segment.base}@${this.#owner}.seg`;
    try {
      await rename(join(this.dir, segment.name), join(this.dir, name));
    } catch (error) {
      if (isMissing(error)) return null;
      throw spoolError(`could not claim ${segment.name}: ${messageOf(error)}`, error);
    }
    await syncDirectory(this.dir);
    this.events.emit('claimed', { segment: name, from: segment.owner });
    return name;
  }

  async #replaySegment(
    name: string,
    write: SpoolReplayWrite,
    options: SpoolReplayOptions,
  ): Promise<{ replayed: number; corruptRecords: number; complete: boolean; error?: unknown }> {
    const path = join(this.dir, name);
    // Written already, waiting for its destination to confirm it: nothing to do until then.
    if (this.#segments.get(name)?.held === true) return { replayed: 0, corruptRecords: 0, complete: true };
    let buffer: Buffer;
    try {
      buffer = await readFile(path);
    } catch (error) {
      if (isMissing(error)) {
        this.#segments.delete(name);
        return { replayed: 0, corruptRecords: 0, complete: true };
      }
      throw spoolError(`could not read ${path}: ${messageOf(error)}`, error);
    }
    const decoded = decodeSegment(buffer);
    if (!decoded.recognised) {
      // Not a segment this version can read: keep it for a person to look at, out of replay's way.
      await rename(path, `${path}.unreadable`).catch(() => undefined);
      this.#warn(
        `activity-log: ${path} is not a spool segment this version can read; renamed to *.unreadable`,
      );
      this.#segments.delete(name);
      return { replayed: 0, corruptRecords: 0, complete: true };
    }
    let progress = this.#segments.get(name);
    if (progress === undefined) {
      progress = newProgress(decoded.activities.length);
      this.#segments.set(name, progress);
    }
    progress.records = decoded.activities.length;
    let corruptRecords = 0;
    if (decoded.corruptRecords > 0 && !progress.corruptReported) {
      progress.corruptReported = true;
      corruptRecords = decoded.corruptRecords;
      this.#corruptTotal += corruptRecords;
      this.events.emit('corruptRecordSkipped', { segment: name, count: corruptRecords });
      const why = progress.failedWriteTail
        ? 'left by a write that failed part-way, e.g. on a full disk; its activities were reported as not spooled when it failed'
        : 'a write torn by a crash or power loss, or a change to the file; its activities were never confirmed as spooled';
      this.#warn(
        `activity-log: skipped ${corruptRecords} damaged record(s) in spool segment ${name} (${why}); the ${decoded.activities.length} intact ones are replayed`,
      );
    }
    let replayed = 0;
    const { activities } = decoded;
    for (let start = progress.replayed; start < activities.length; start += options.batchSize) {
      if (options.signal?.aborted === true) return { replayed, corruptRecords, complete: false };
      const batch = activities.slice(start, start + options.batchSize);
      try {
        await write(batch, name);
      } catch (error) {
        return { replayed, corruptRecords, complete: false, error };
      }
      progress.replayed = start + batch.length;
      replayed += batch.length;
      options.onProgress?.({ replayed: batch.length, segment: name });
    }
    if (options.hold === true) {
      progress.held = true;
      if (replayed > 0) this.events.emit('replayed', { count: replayed, segment: name });
      return { replayed, corruptRecords, complete: true };
    }
    await unlink(path).catch((error: unknown) => {
      if (!isMissing(error))
        throw spoolError(`could not delete replayed ${path}: ${messageOf(error)}`, error);
    });
    this.#segments.delete(name);
    this.#totalBytes = Math.max(0, this.#totalBytes - buffer.length);
    if (replayed > 0) this.events.emit('replayed', { count: replayed, segment: name });
    return { replayed, corruptRecords, complete: true };
  }

  #rememberRejected(id: string): void {
    this.#rejectedIds.add(id);
    if (this.#rejectedIds.size > REMEMBERED_REJECTED_IDS) {
      const oldest = this.#rejectedIds.values().next().value;
      if (oldest !== undefined) this.#rejectedIds.delete(oldest);
    }
  }

  #onDropped(count: number, what = 'activities'): void {
    this.events.emit('dropped', {
      count,
      totalBytes: this.#totalBytes + this.#rejectedBytes,
      maxBytes: this.maxBytes,
    });
    this.#drops.add(count, what);
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

function newProgress(records: number): SegmentProgress {
  return { records, replayed: 0, corruptReported: false, failedWriteTail: false, held: false };
}

/**
 * Writes every byte of `buffers` at `position`, or throws. `writev` may write only part of the
 * data without an error (a full file system takes what fits); the rest is written again, and the
 * call that can write nothing fails with the file system's error, typically ENOSPC.
 */
export async function writeFully(
  handle: Pick<FileHandle, 'writev'>,
  buffers: readonly Buffer[],
  bytes: number,
  position: number,
): Promise<void> {
  let written = 0;
  let rest: readonly Buffer[] = buffers;
  while (written < bytes) {
    const { bytesWritten } = await handle.writev(rest as Buffer[], position + written);
    if (bytesWritten <= 0) {
      throw Object.assign(new Error(`no space left: wrote ${written} of ${bytes} bytes (ENOSPC)`), {
        code: 'ENOSPC',
      });
    }
    written += bytesWritten;
    rest = dropBytes(rest, bytesWritten);
  }
}

/** `buffers` without their first `count` bytes. */
function dropBytes(buffers: readonly Buffer[], count: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = count;
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
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

async function syncDirectory(dir: string): Promise<void> {
  // Not every platform can fsync a directory (Windows cannot); there the rename is as durable as it gets.
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // see above
  }
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function spoolError(message: string, cause?: unknown): ActivityLogError {
  return new ActivityLogError('SPOOL_FAILED', message, cause === undefined ? {} : { cause });
}
