import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ActivityEventBus } from '../core/activity-events.js';
import { listSegments, REJECTED_FILE } from './spool-segment-directory.js';
import { ThrottledWarning } from './throttled-warning.js';

const WARNING_INTERVAL_MS = 10_000;
const MIN_SEGMENT_BYTES = 64 * 1024;
const MAX_SEGMENT_BYTES = 16 * 1024 * 1024;

/** How many of the appended activities were made durable and how many did not fit. */
export interface SpoolAppendResult {
  readonly spooled: number;
  readonly dropped: number;
}

/** Encoded records of one `append` call. */
export interface AppendRequest {
  readonly records: readonly Buffer[];
  /** All or none of the records: if they do not all fit, every one is dropped. */
  readonly whole: boolean;
}

/** What a group of appends may keep under the limit. */
export interface GroupAllotment {
  /** The records kept, in order, to be written together. */
  readonly kept: Buffer[];
  readonly bytes: number;
  /** One per append, in order. */
  readonly results: SpoolAppendResult[];
  readonly dropped: number;
  /** Whether something did not fit: the spool is full from now on. */
  readonly full: boolean;
}

/** The size past which a segment is sealed when none is configured: an eighth of the limit, 64 KiB to 16 MiB. */
export function defaultSegmentMaxBytes(maxBytes: number): number {
  return Math.min(MAX_SEGMENT_BYTES, Math.max(MIN_SEGMENT_BYTES, Math.floor(maxBytes / 8)));
}

/**
 * Splits a group of appends into what is kept and what is dropped. Once one record does not fit,
 * none after it is kept, so a smaller, newer record never takes the place of an older one; a
 * `whole` append that does not fit in full is dropped in full. `headerBytes` is what starting a
 * new segment costs first (its magic), zero when one is open.
 */
export function allotGroup(
  group: readonly AppendRequest[],
  room: {
    readonly usedBytes: number;
    readonly maxBytes: number;
    readonly full: boolean;
    readonly headerBytes: number;
  },
): GroupAllotment {
  const kept: Buffer[] = [];
  const results: SpoolAppendResult[] = [];
  let bytes = 0;
  let dropped = 0;
  let full = room.full;
  const fits = (extra: number) => room.usedBytes + bytes + extra + room.headerBytes <= room.maxBytes;
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
      kept.push(record);
      bytes += record.length;
      spooled++;
    }
    results.push({ spooled, dropped: append.records.length - spooled });
    dropped += append.records.length - spooled;
  }
  return { kept, bytes, results, dropped, full };
}

/** The leading `lines` that fit under `maxBytes` on top of `usedBytes`, and their size. */
export function linesThatFit(
  lines: readonly Buffer[],
  usedBytes: number,
  maxBytes: number,
): { readonly kept: Buffer[]; readonly bytes: number } {
  const kept: Buffer[] = [];
  let bytes = 0;
  for (const line of lines) {
    if (usedBytes + bytes + line.length > maxBytes) break;
    kept.push(line);
    bytes += line.length;
  }
  return { kept, bytes };
}

/**
 * How full the spool directory is: the segments and `rejected.ndjson` together count against
 * `maxBytes`, and what does not fit is dropped, counted and warned about.
 */
export class SpoolQuota {
  readonly maxBytes: number;
  readonly #dir: string;
  readonly #bus: ActivityEventBus;
  readonly #drops: ThrottledWarning;
  /** Bytes of the segments; -1 until the directory was first read. */
  #segmentBytes = -1;
  #rejectedBytes = 0;
  /**
   * The spool's size when it last had to drop: until replay brings it below that, nothing new is
   * kept, so a smaller, newer record never takes the place of an older one that was dropped.
   */
  #fullAtBytes: number | null = null;

  constructor(dir: string, maxBytes: number, bus: ActivityEventBus, warn: (message: string) => void) {
    this.#dir = dir;
    this.maxBytes = maxBytes;
    this.#bus = bus;
    this.#drops = new ThrottledWarning(
      warn,
      WARNING_INTERVAL_MS,
      (count, total, what) =>
        `activity-log: the spool at ${dir} is full (ACTIVITY_LOG_SPOOL_MAX_MB=${Math.round(maxBytes / 1024 / 1024)}); dropped ${count} ${what} (${total} in all). Bring the destination back, purge refused activities (activity-log spool rejected --purge) or raise the limit`,
    );
  }

  /** Bytes counted against `maxBytes`. */
  get usedBytes(): number {
    return this.#segmentBytes + this.#rejectedBytes;
  }

  /** Activities dropped because the spool was full, since this instance started. */
  get droppedTotal(): number {
    return this.#drops.total;
  }

  /** Whether the spool still refuses new records after a drop (it does until it shrank below that size). */
  stillFull(): boolean {
    if (this.#fullAtBytes !== null && this.usedBytes < this.#fullAtBytes) this.#fullAtBytes = null;
    return this.#fullAtBytes !== null;
  }

  markFull(): void {
    this.#fullAtBytes = this.usedBytes;
  }

  addSegmentBytes(bytes: number): void {
    this.#segmentBytes += bytes;
  }

  removeSegmentBytes(bytes: number): void {
    this.#segmentBytes = Math.max(0, this.#segmentBytes - bytes);
  }

  /** Segments can be counted by more than this process (a shared directory): never count fewer than were seen. */
  atLeastSegmentBytes(bytes: number): void {
    this.#segmentBytes = Math.max(this.#segmentBytes, bytes);
  }

  setRejectedBytes(bytes: number): void {
    this.#rejectedBytes = bytes;
  }

  /** Reads the directory again: other processes sharing it grow and shrink it too. */
  async rescan(): Promise<void> {
    const listed = await listSegments(this.#dir);
    this.#segmentBytes = listed.reduce((sum, segment) => sum + segment.bytes, 0);
    this.#rejectedBytes = await stat(join(this.#dir, REJECTED_FILE)).then(
      ({ size }) => size,
      () => 0,
    );
  }

  /** Counts, reports and warns about `count` activities that did not fit. */
  drop(count: number, what = 'activities'): void {
    this.#bus.emit('dropped', { count, totalBytes: this.usedBytes, maxBytes: this.maxBytes });
    this.#drops.add(count, what);
  }

  /** Says the drops not yet warned about. */
  flush(): void {
    this.#drops.flush();
  }
}
