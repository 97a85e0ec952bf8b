import type { EventEmitter } from 'node:events';
import { type FileHandle, open, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { SerialQueue } from './serial-queue.js';
import { messageOf, spoolError } from './spool-error.js';
import type { SpoolEvents } from './spool-events.js';
import { type AppendRequest, allotGroup, type SpoolAppendResult, type SpoolQuota } from './spool-quota.js';
import { SEGMENT_MAGIC } from './spool-record.js';
import { FILE_MODE, segmentBase, segmentFileName, syncDirectory } from './spool-segment-directory.js';
import type { SpoolSegmentLedger } from './spool-segment-ledger.js';

export interface SpoolSegmentWriterOptions {
  readonly dir: string;
  /** `pid-instance` the segments are named after. */
  readonly owner: string;
  readonly segmentMaxBytes: number;
  readonly events: EventEmitter<SpoolEvents>;
  readonly ledger: SpoolSegmentLedger;
  readonly quota: SpoolQuota;
  /** The spool's write side: commits run in it, in turn with everything else that changes the directory. */
  readonly writes: SerialQueue;
  /** Makes sure the directory exists before the first segment is opened. */
  readonly prepare: () => Promise<void>;
}

interface ActiveSegment {
  readonly name: string;
  readonly path: string;
  readonly handle: FileHandle;
  readonly ino: number;
  bytes: number;
  records: number;
}

interface PendingAppend extends AppendRequest {
  readonly resolve: (result: SpoolAppendResult) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Appends records to the segment being written, in groups: every append that arrives while a
 * write is in flight joins the next one, and each group is written with one `writev` and one
 * `fdatasync`, so an append resolves only once its records are on disk. A group that could not
 * be written in full is cut off again, so replay never finds records their callers were told
 * were not spooled.
 */
export class SpoolSegmentWriter {
  readonly #options: SpoolSegmentWriterOptions;
  #pendingAppends: PendingAppend[] = [];
  #commitQueued = false;
  #active: ActiveSegment | null = null;
  #sequence = 0;

  constructor(options: SpoolSegmentWriterOptions) {
    this.#options = options;
  }

  /** The segment being written, which replay leaves alone. */
  get activeName(): string | undefined {
    return this.#active?.name;
  }

  /** Resolves once `records` are durable, or as many as fit (none of them when `whole` and they do not all fit). */
  append(records: readonly Buffer[], whole: boolean): Promise<SpoolAppendResult> {
    return new Promise<SpoolAppendResult>((resolve, reject) => {
      this.#pendingAppends.push({ records, whole, resolve, reject });
      if (!this.#commitQueued) {
        this.#commitQueued = true;
        void this.#options.writes.run(() => this.#commit());
      }
    });
  }

  /** Seals the segment being written if it holds any records, so replay reads only files nobody appends to. */
  async sealWritten(): Promise<void> {
    if (this.#active !== null && this.#active.records > 0) await this.#closeActive();
  }

  /** Closes the segment being written (an empty one is removed). */
  close(): Promise<void> {
    return this.#closeActive();
  }

  async #commit(): Promise<void> {
    this.#commitQueued = false;
    const group = this.#pendingAppends;
    this.#pendingAppends = [];
    const { quota, events } = this.#options;
    try {
      await this.#options.prepare();
      const allotment = allotGroup(group, {
        usedBytes: quota.usedBytes,
        maxBytes: quota.maxBytes,
        full: quota.stillFull(),
        headerBytes: this.#active === null ? SEGMENT_MAGIC.length : 0,
      });
      const { kept, bytes } = allotment;
      if (kept.length > 0) await this.#writeRecords(kept, bytes);
      if (allotment.full) quota.markFull();
      if (kept.length > 0 && events.listenerCount('spooled') > 0) {
        events.emit('spooled', { count: kept.length, bytes });
      }
      if (allotment.dropped > 0) quota.drop(allotment.dropped);
      group.forEach((append, i) => {
        append.resolve(allotment.results[i]!);
      });
    } catch (error) {
      const failure = spoolError(
        `could not write to the spool at ${this.#options.dir}: ${messageOf(error)}`,
        error,
      );
      for (const append of group) append.reject(failure);
    }
  }

  async #writeRecords(buffers: Buffer[], bytes: number): Promise<void> {
    const { ledger, quota } = this.#options;
    if (
      this.#active !== null &&
      this.#active.records > 0 &&
      this.#active.bytes + bytes > this.#options.segmentMaxBytes
    ) {
      await this.#closeActive();
      await quota.rescan();
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
    quota.addSegmentBytes(bytes);
    const progress = ledger.get(active.name);
    if (progress !== undefined) progress.records += buffers.length;
    if (!(await this.#stillOwned(active))) {
      // Another process took this segment while this one was stalled past the owner timeout and may
      // already have replayed and deleted it: write the group again into a segment of our own.
      this.#active = null;
      await active.handle.close().catch(() => undefined);
      ledger.forget(active.name);
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
      const progress = this.#options.ledger.get(active.name);
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
    const { dir, owner } = this.#options;
    this.#sequence++;
    const name = segmentFileName(segmentBase(Date.now(), this.#sequence, owner), owner);
    const path = join(dir, name);
    const handle = await open(path, 'wx', FILE_MODE);
    try {
      await writeFully(handle, [SEGMENT_MAGIC], SEGMENT_MAGIC.length, 0);
      const { ino } = await handle.stat();
      // The new name must survive a crash as well as the records in it.
      await syncDirectory(dir);
      const active: ActiveSegment = { name, path, handle, ino, bytes: SEGMENT_MAGIC.length, records: 0 };
      this.#active = active;
      this.#options.ledger.track(name, 0);
      this.#options.quota.addSegmentBytes(SEGMENT_MAGIC.length);
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
      this.#options.ledger.forget(active.name);
      this.#options.quota.removeSegmentBytes(active.bytes);
    }
  }
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
