import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMissing, messageOf, spoolError } from './spool-error.js';

/**
 * The spool directory's file names:
 *
 * ```
 * <createdAtMs:13>-<sequence:6>-<creator>@<owner>.seg    a segment (creator and owner are pid-instance)
 * <owner>.owner                                          touched by a live process every few seconds
 * rejected.ndjson                                        activities the destination refused as bad data
 * ```
 *
 * The part before `@` never changes once a segment is made: it sorts segments in the order they
 * were written, and a claim only rewrites the owner after it.
 */
const SEGMENT_PATTERN = /^(\d{13}-\d{6}-\d+-[0-9a-f]+)@(\d+-[0-9a-f]+)\.seg$/;
const OWNER_SUFFIX = '.owner';

export const REJECTED_FILE = 'rejected.ndjson';
/** Spool files hold activity data (IPs, user agents, properties): readable by their owner only. */
export const FILE_MODE = 0o600;
export const DIRECTORY_MODE = 0o700;

/** What a segment's file name says about it. */
export interface SegmentName {
  readonly name: string;
  /** Name without the owner part: creation time, sequence and the writing process. Sorts in write order. */
  readonly base: string;
  /** `pid-instance` of the process that owns it. */
  readonly owner: string;
  readonly createdAt: Date;
}

/** A segment found in the directory. */
export interface ListedSegment extends SegmentName {
  readonly bytes: number;
}

/** Bytes of all segments and when the oldest was made, for monitoring. */
export interface SegmentUsage {
  readonly bytes: number;
  readonly oldestAtMs: number | null;
}

/** The segment a file name describes, or null when the file is not a segment. */
export function parseSegmentName(name: string): SegmentName | null {
  const match = SEGMENT_PATTERN.exec(name);
  if (match === null) return null;
  return {
    name,
    base: match[1]!,
    owner: match[2]!,
    createdAt: new Date(Number(name.slice(0, 13))),
  };
}

/**
 * The unchanging part of a new segment's name. `sequence` tells apart segments one process makes
 * in the same millisecond; it wraps at a million, long after that millisecond has passed.
 */
export function segmentBase(createdAtMs: number, sequence: number, creator: string): string {
  return `${String(createdAtMs).padStart(13, '0')}-${String(sequence % 1_000_000).padStart(6, '0')}-${creator}`;
}

/** The file name of the segment `base` while `owner` owns it. */
export function segmentFileName(base: string, owner: string): string {
  return `${base}@${owner}.seg`;
}

/** The file a live process keeps touching so others know it still owns its segments. */
export function ownerFileName(owner: string): string {
  return `${owner}${OWNER_SUFFIX}`;
}

/** The owner an owner file stands for, or null when the file is not one. */
export function ownerOfOwnerFile(name: string): string | null {
  return name.endsWith(OWNER_SUFFIX) ? name.slice(0, -OWNER_SUFFIX.length) : null;
}

/**
 * The segments in `dir`, oldest first. A missing directory holds none: whether one can be made is
 * for the first append, or `prepare()`, to find out.
 *
 * @throws ActivityLogError `SPOOL_FAILED` when the directory cannot be read.
 */
export async function listSegments(dir: string): Promise<ListedSegment[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw spoolError(`could not list the spool at ${dir}: ${messageOf(error)}`, error);
  }
  const listed: ListedSegment[] = [];
  for (const name of names) {
    const segment = parseSegmentName(name);
    if (segment === null) continue;
    try {
      const { size } = await stat(join(dir, name));
      listed.push({ ...segment, bytes: size });
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }
  return listed.sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
}

/**
 * Bytes and oldest segment in `dir`, read from names and sizes only. Never throws: a directory
 * not made yet, or a segment replayed while it was read, counts as nothing.
 */
export async function segmentUsage(dir: string): Promise<SegmentUsage> {
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    // Not created yet: nothing was ever spooled.
  }
  let bytes = 0;
  let oldestAtMs: number | null = null;
  for (const name of names) {
    const segment = parseSegmentName(name);
    if (segment === null) continue;
    try {
      bytes += (await stat(join(dir, name))).size;
    } catch {
      continue;
    }
    const createdAtMs = segment.createdAt.getTime();
    if (oldestAtMs === null || createdAtMs < oldestAtMs) oldestAtMs = createdAtMs;
  }
  return { bytes, oldestAtMs };
}

/** Makes the directory's entries (a new or renamed segment) survive a crash as well as their contents. */
export async function syncDirectory(dir: string): Promise<void> {
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
