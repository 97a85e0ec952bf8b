import type { EventEmitter } from 'node:events';
import { readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Activity } from '../core/activity.js';
import type { SerialQueue } from './serial-queue.js';
import { isMissing, messageOf, spoolError } from './spool-error.js';
import type { SpoolEvents } from './spool-events.js';
import type { SpoolOwnership } from './spool-ownership.js';
import type { SpoolQuota } from './spool-quota.js';
import { decodeSegment } from './spool-record.js';
import { listSegments } from './spool-segment-directory.js';
import type { SpoolSegmentLedger } from './spool-segment-ledger.js';
import type { SpoolSegmentWriter } from './spool-segment-writer.js';

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

export interface SpoolReplayerOptions {
  readonly dir: string;
  readonly events: EventEmitter<SpoolEvents>;
  readonly warn: (message: string) => void;
  readonly ledger: SpoolSegmentLedger;
  readonly quota: SpoolQuota;
  readonly ownership: SpoolOwnership;
  readonly writer: SpoolSegmentWriter;
  /** The spool's write side: sealing the segment being written and deleting held ones run in it. */
  readonly writes: SerialQueue;
  /** Makes sure the directory (and this process's owner file) exists before a segment is claimed. */
  readonly prepare: () => Promise<void>;
}

interface SegmentOutcome {
  readonly replayed: number;
  readonly corruptRecords: number;
  readonly complete: boolean;
  readonly error?: unknown;
}

/**
 * Reads segments back and hands their activities to a `write`, in the order they were spooled:
 * this process's sealed segments, then those of dead processes, claimed one by one. Damaged
 * records are skipped and counted; a segment is deleted (or, holding, kept until released) once
 * every intact record in it was confirmed written.
 */
export class SpoolReplayer {
  readonly #options: SpoolReplayerOptions;
  #replaying: Promise<SpoolReplayResult> | null = null;
  #corruptTotal = 0;

  constructor(options: SpoolReplayerOptions) {
    this.#options = options;
  }

  /** Damaged records skipped while replaying, since this instance started. */
  get corruptRecordsTotal(): number {
    return this.#corruptTotal;
  }

  /** One pass at a time: a call during a pass gets that pass's result. */
  replay(write: SpoolReplayWrite, options: SpoolReplayOptions): Promise<SpoolReplayResult> {
    this.#replaying ??= this.#replayPass(write, options).finally(() => {
      this.#replaying = null;
    });
    return this.#replaying;
  }

  /** Settles once the pass under way, if any, has ended; never rejects. */
  async idle(): Promise<void> {
    if (this.#replaying !== null) await this.#replaying.catch(() => undefined);
  }

  /** Deletes a segment a holding replay wrote in full. */
  release(segment: string): Promise<void> {
    const { dir, ledger, quota, writes } = this.#options;
    return writes.run(async () => {
      const path = join(dir, segment);
      const bytes = await stat(path).then(
        ({ size }) => size,
        () => 0,
      );
      await unlink(path).catch((error: unknown) => {
        if (!isMissing(error)) throw spoolError(`could not delete ${path}: ${messageOf(error)}`, error);
      });
      ledger.forget(segment);
      quota.removeSegmentBytes(bytes);
    });
  }

  /** Makes a held segment replayable again, from its start. */
  rewind(segment: string): void {
    const progress = this.#options.ledger.get(segment);
    if (progress === undefined) return;
    progress.held = false;
    progress.replayed = 0;
  }

  async #replayPass(write: SpoolReplayWrite, options: SpoolReplayOptions): Promise<SpoolReplayResult> {
    const { dir, ledger, quota, ownership, writer, writes, events } = this.#options;
    // The segment being written is sealed first, so replay only ever reads files nobody appends to.
    await writes.run(() => writer.sealWritten());
    let replayed = 0;
    let segments = 0;
    let corruptRecords = 0;
    const known = ledger.names();
    const listed = await listSegments(dir);
    quota.atLeastSegmentBytes(listed.reduce((sum, segment) => sum + segment.bytes, 0));
    ledger.forgetVanished(known, new Set(listed.map((segment) => segment.name)), writer.activeName);
    for (const segment of listed) {
      if (options.signal?.aborted === true) return { replayed, segments, corruptRecords, complete: false };
      if (segment.name === writer.activeName) continue;
      let name = segment.name;
      if (segment.owner !== ownership.owner) {
        if (await ownership.isAlive(segment.owner)) continue;
        await this.#options.prepare();
        const claimed = await ownership.claim(segment);
        if (claimed === null) continue;
        events.emit('claimed', { segment: claimed, from: segment.owner });
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
    await ownership.removeDeadOwnerFiles();
    return { replayed, segments, corruptRecords, complete: true };
  }

  async #replaySegment(
    name: string,
    write: SpoolReplayWrite,
    options: SpoolReplayOptions,
  ): Promise<SegmentOutcome> {
    const { dir, ledger, quota, events, warn } = this.#options;
    const path = join(dir, name);
    // Written already, waiting for its destination to confirm it: nothing to do until then.
    if (ledger.get(name)?.held === true) return { replayed: 0, corruptRecords: 0, complete: true };
    let buffer: Buffer;
    try {
      buffer = await readFile(path);
    } catch (error) {
      if (isMissing(error)) {
        ledger.forget(name);
        return { replayed: 0, corruptRecords: 0, complete: true };
      }
      throw spoolError(`could not read ${path}: ${messageOf(error)}`, error);
    }
    const decoded = decodeSegment(buffer);
    if (!decoded.recognised) {
      // Not a segment this version can read: keep it for a person to look at, out of replay's way.
      await rename(path, `${path}.unreadable`).catch(() => undefined);
      warn(`activity-log: ${path} is not a spool segment this version can read; renamed to *.unreadable`);
      ledger.forget(name);
      return { replayed: 0, corruptRecords: 0, complete: true };
    }
    const progress = ledger.get(name) ?? ledger.track(name, decoded.activities.length);
    progress.records = decoded.activities.length;
    let corruptRecords = 0;
    if (decoded.corruptRecords > 0 && !progress.corruptReported) {
      progress.corruptReported = true;
      corruptRecords = decoded.corruptRecords;
      this.#corruptTotal += corruptRecords;
      events.emit('corruptRecordSkipped', { segment: name, count: corruptRecords });
      const why = progress.failedWriteTail
        ? 'left by a write that failed part-way, e.g. on a full disk; its activities were reported as not spooled when it failed'
        : 'a write torn by a crash or power loss, or a change to the file; its activities were never confirmed as spooled';
      warn(
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
      if (replayed > 0) events.emit('replayed', { count: replayed, segment: name });
      return { replayed, corruptRecords, complete: true };
    }
    await unlink(path).catch((error: unknown) => {
      if (!isMissing(error))
        throw spoolError(`could not delete replayed ${path}: ${messageOf(error)}`, error);
    });
    ledger.forget(name);
    quota.removeSegmentBytes(buffer.length);
    if (replayed > 0) events.emit('replayed', { count: replayed, segment: name });
    return { replayed, corruptRecords, complete: true };
  }
}
