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
import { activityToJson } from '../core/activity-json.js';
import { ActivityLogError } from '../core/errors.js';
import { countSegmentRecords, decodeSegment, encodeSpoolRecord, SEGMENT_MAGIC } from './spool-record.js';

export interface SpoolOptions {
  /** `ACTIVITY_LOG_SPOOL_DIR`. Created on the first append, not before. */
  readonly dir: string;
  /** `ACTIVITY_LOG_SPOOL_MAX_MB` in bytes: past this, appended activities are dropped (and counted). */
  readonly maxBytes: number;
  /** A segment is sealed and a new one started past this size (default: an eighth of `maxBytes`, 64 KiB to 16 MiB). */
  readonly segmentMaxBytes?: number;
  /** Where warnings (drops, corrupt records) go; default `process.emitWarning`. */
  readonly warn?: (message: string) => void;
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
}

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
const DROP_WARNING_INTERVAL_MS = 10_000;
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
  #droppedTotal = 0;
  #droppedSinceWarning = 0;
  #lastDropWarningMs = 0;
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
    this.#warn = options.warn ?? ((message) => process.emitWarning(message, { code: 'ACTIVITY_LOG_SPOOL' }));
    LIVE_INSTANCES.add(this.#instance);
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
    return this.#droppedTotal;
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
   * each, with the error), so they are neither lost nor retried forever.
   */
  reject(activities: readonly Activity[], error: unknown): Promise<void> {
    if (this.#closed) return Promise.reject(spoolError(`the spool at ${this.dir} was used after close()`));
    const fresh = activities.filter((activity) => !this.#rejectedIds.has(activity.id));
    if (fresh.length === 0) return Promise.resolve();
    const rejectedAt = new Date().toISOString();
    const reason =
      error instanceof ActivityLogError
        ? { code: error.code, message: error.message }
        : { code: null, message: error instanceof Error ? error.message : String(error) };
    const lines = fresh
      .map((activity) =>
        JSON.stringify({ rejected_at: rejectedAt, error: reason, activity: activityToJson(activity) }),
      )
      .join('\n');
    return this.#serialized(async () => {
      await this.#prepareDirectory();
      const handle = await open(join(this.dir, REJECTED_FILE), 'a');
      try {
        await handle.write(`${lines}\n`);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      for (const activity of fresh) this.#rememberRejected(activity.id);
      this.events.emit('rejected', { count: fresh.length, error });
      this.#warn(
        `activity-log: ${fresh.length} activities were refused as bad data and kept in ${join(this.dir, REJECTED_FILE)}: ${reason.message}`,
      );
    }).catch((cause: unknown) => {
      throw spoolError(`could not keep rejected activities in ${this.dir}: ${messageOf(cause)}`, cause);
    });
  }

  /**
   * Replays spooled activities in the order they were spooled: first this process's sealed
   * segments (the one being written is sealed first), then segments of dead processes, claimed
   * one by one. Each segment is deleted once `write` has confirmed all of it. A failed `write`
   * stops the pass and keeps the rest; a later pass resumes where this one stopped (inserts are
   * idempotent, so the batch that failed may safely be written twice). One pass runs at a time:
   * a call during a pass gets that pass's result.
   */
  replay(
    write: (activities: readonly Activity[]) => Promise<void>,
    options: SpoolReplayOptions,
  ): Promise<SpoolReplayResult> {
    this.#replaying ??= this.#replayPass(write, options).finally(() => {
      this.#replaying = null;
    });
    return this.#replaying;
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
      rejected: await this.#countRejected(),
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
      if (this.#fullAtBytes !== null && this.#totalBytes < this.#fullAtBytes) this.#fullAtBytes = null;
      let full = this.#fullAtBytes !== null;
      const fits = (extra: number) =>
        this.#totalBytes + bytes + extra + (this.#active === null ? SEGMENT_MAGIC.length : 0) <=
        this.maxBytes;
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
      if (full) this.#fullAtBytes = this.#totalBytes;
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
      await active.handle.writev(buffers);
      await active.handle.datasync();
    } catch (error) {
      // A half-written group must not be followed by more records in the same file: start afresh.
      await this.#closeActive().catch(() => undefined);
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
    const handle = await open(path, 'wx');
    try {
      await handle.write(SEGMENT_MAGIC);
      const { ino } = await handle.stat();
      // The new name must survive a crash as well as the records in it.
      await syncDirectory(this.dir);
      const active: ActiveSegment = { name, path, handle, ino, bytes: SEGMENT_MAGIC.length, records: 0 };
      this.#active = active;
      this.#segments.set(name, { records: 0, replayed: 0, corruptReported: false });
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
    await mkdir(this.dir, { recursive: true });
    const ownerFile = join(this.dir, `${this.#owner}.owner`);
    await (await open(ownerFile, 'w')).close();
    this.#ownerFile = ownerFile;
    this.#heartbeat = setInterval(() => {
      const now = new Date();
      // Recreated if someone removed it while this process was stalled past OWNER_STALE_MS.
      utimes(ownerFile, now, now).catch(() => writeFile(ownerFile, '').catch(() => undefined));
    }, OWNER_HEARTBEAT_MS);
    this.#heartbeat.unref();
    await this.#rescanBytes();
  }

  async #rescanBytes(): Promise<void> {
    const listed = await this.#list();
    this.#totalBytes = listed.reduce((sum, segment) => sum + segment.bytes, 0);
  }

  async #list(): Promise<ListedSegment[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if (isMissing(error)) return [];
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

  async #replayPass(
    write: (activities: readonly Activity[]) => Promise<void>,
    options: SpoolReplayOptions,
  ): Promise<SpoolReplayResult> {
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
    write: (activities: readonly Activity[]) => Promise<void>,
    options: SpoolReplayOptions,
  ): Promise<{ replayed: number; corruptRecords: number; complete: boolean; error?: unknown }> {
    const path = join(this.dir, name);
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
      progress = { records: decoded.activities.length, replayed: 0, corruptReported: false };
      this.#segments.set(name, progress);
    }
    progress.records = decoded.activities.length;
    let corruptRecords = 0;
    if (decoded.corruptRecords > 0 && !progress.corruptReported) {
      progress.corruptReported = true;
      corruptRecords = decoded.corruptRecords;
      this.#corruptTotal += corruptRecords;
      this.events.emit('corruptRecordSkipped', { segment: name, count: corruptRecords });
      this.#warn(
        `activity-log: skipped ${corruptRecords} damaged record(s) in spool segment ${name} (a write torn by a crash); the intact ones are replayed`,
      );
    }
    let replayed = 0;
    const { activities } = decoded;
    for (let start = progress.replayed; start < activities.length; start += options.batchSize) {
      if (options.signal?.aborted === true) return { replayed, corruptRecords, complete: false };
      const batch = activities.slice(start, start + options.batchSize);
      try {
        await write(batch);
      } catch (error) {
        return { replayed, corruptRecords, complete: false, error };
      }
      progress.replayed = start + batch.length;
      replayed += batch.length;
      options.onProgress?.({ replayed: batch.length, segment: name });
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

  #onDropped(count: number): void {
    this.#droppedTotal += count;
    this.#droppedSinceWarning += count;
    this.events.emit('dropped', { count, totalBytes: this.#totalBytes, maxBytes: this.maxBytes });
    const now = Date.now();
    if (now - this.#lastDropWarningMs < DROP_WARNING_INTERVAL_MS) return;
    this.#warn(
      `activity-log: the spool at ${this.dir} is full (ACTIVITY_LOG_SPOOL_MAX_MB=${Math.round(this.maxBytes / 1024 / 1024)}); dropped ${this.#droppedSinceWarning} activities (${this.#droppedTotal} in all). Bring the database back or raise the limit`,
    );
    this.#lastDropWarningMs = now;
    this.#droppedSinceWarning = 0;
  }

  async #countRejected(): Promise<number> {
    try {
      const text = await readFile(join(this.dir, REJECTED_FILE), 'utf8');
      return text.split('\n').filter((line) => line !== '').length;
    } catch (error) {
      if (isMissing(error)) return 0;
      throw error;
    }
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
