import * as zlib from 'node:zlib';
import type { Activity } from '../core/activity.js';
import { type ActivityJson, activityFromJson } from '../core/activity-json.js';
import { canonicalActivityJson } from '../core/canonical-encoding.js';

/**
 * Spool segment layout:
 *
 * ```
 * segment := "ALSPOOL1" record*
 * record  := length:u32le  crc:u32le  payload[length]     payload = UTF-8 JSON of ActivityJson
 * ```
 *
 * The payload is written as the activity's canonical encoding (sorted keys); any JSON of an
 * ActivityJson reads back, whatever its key order, so records of earlier versions still do.
 *
 * `crc` is CRC-32 over the four length bytes and the payload, so a torn write at a crash (a
 * short payload, a length with nothing behind it, a tail of zeros the file system allocated but
 * never filled) fails the check and is skipped instead of being replayed as garbage.
 */
export const SEGMENT_MAGIC = Buffer.from('ALSPOOL1', 'latin1');
export const RECORD_HEADER_BYTES = 8;
/**
 * Larger than any valid activity can serialize to (4 KiB description, 64 KiB properties, short
 * fields), so a corrupted length that claims more is recognised at once.
 */
export const MAX_RECORD_PAYLOAD_BYTES = 1024 * 1024;

type Crc32 = (data: Uint8Array, initial?: number) => number;

/**
 * `zlib.crc32` exists from Node 20.15; package.json allows 20.12, so older runtimes get the same
 * checksum from a table (the standard reflected polynomial 0xEDB88320), and files stay portable.
 */
export const crc32: Crc32 =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (zlib.crc32 as Crc32) : tableCrc32;

let crcTable: Uint32Array | null = null;

function tableCrc32(data: Uint8Array, initial = 0): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = (initial ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** One activity as a framed, checksummed record, ready to append to a segment. */
export function encodeSpoolRecord(activity: Activity): Buffer {
  const json = canonicalActivityJson(activity);
  const payloadBytes = Buffer.byteLength(json, 'utf8');
  const record = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadBytes);
  record.writeUInt32LE(payloadBytes, 0);
  record.write(json, RECORD_HEADER_BYTES, 'utf8');
  record.writeUInt32LE(recordChecksum(record, 0, payloadBytes), 4);
  return record;
}

function recordChecksum(buffer: Buffer, offset: number, payloadBytes: number): number {
  const start = offset + RECORD_HEADER_BYTES;
  return crc32(buffer.subarray(start, start + payloadBytes), crc32(buffer.subarray(offset, offset + 4)));
}

/** What reading a segment found. */
export interface DecodedSegment {
  readonly activities: Activity[];
  /** Damaged stretches skipped (a torn last record counts as one). */
  readonly corruptRecords: number;
  /** False when the file does not start with the segment magic: it is not a segment this version reads. */
  readonly recognised: boolean;
}

/** Whether a valid record starts at `offset`, and how long it is (0 when not). */
function validRecordLength(buffer: Buffer, offset: number): number {
  if (buffer.length - offset < RECORD_HEADER_BYTES) return 0;
  const payloadBytes = buffer.readUInt32LE(offset);
  if (payloadBytes < 2 || payloadBytes > MAX_RECORD_PAYLOAD_BYTES) return 0;
  if (offset + RECORD_HEADER_BYTES + payloadBytes > buffer.length) return 0;
  if (recordChecksum(buffer, offset, payloadBytes) !== buffer.readUInt32LE(offset + 4)) return 0;
  return RECORD_HEADER_BYTES + payloadBytes;
}

/**
 * Walks the records of a segment, calling `onRecord` with each valid payload in order. A damaged
 * stretch is skipped by scanning forward to the next offset where a whole record checks out, so
 * one bad record does not cost the ones after it.
 */
function walkRecords(
  buffer: Buffer,
  onRecord: (payloadStart: number, payloadEnd: number) => boolean,
): { corruptRecords: number; recognised: boolean } {
  if (buffer.length < SEGMENT_MAGIC.length) {
    // A crash right after the file was created: nothing was ever committed to it.
    return { corruptRecords: buffer.length > 0 ? 1 : 0, recognised: true };
  }
  if (!buffer.subarray(0, SEGMENT_MAGIC.length).equals(SEGMENT_MAGIC)) {
    return { corruptRecords: 0, recognised: false };
  }
  let corruptRecords = 0;
  let offset = SEGMENT_MAGIC.length;
  while (offset < buffer.length) {
    const length = validRecordLength(buffer, offset);
    if (length > 0 && onRecord(offset + RECORD_HEADER_BYTES, offset + length)) {
      offset += length;
      continue;
    }
    corruptRecords++;
    let next = offset + 1;
    while (next < buffer.length && validRecordLength(buffer, next) === 0) next++;
    offset = next;
  }
  return { corruptRecords, recognised: true };
}

/** Decodes every intact record of a segment file's contents. */
export function decodeSegment(buffer: Buffer): DecodedSegment {
  const activities: Activity[] = [];
  const walked = walkRecords(buffer, (start, end) => {
    try {
      activities.push(activityFromJson(JSON.parse(buffer.toString('utf8', start, end)) as ActivityJson));
      return true;
    } catch {
      return false;
    }
  });
  return { activities, ...walked };
}

/** Counts intact records without parsing them (for `spool status`). */
export function countSegmentRecords(buffer: Buffer): { records: number; corruptRecords: number } {
  let records = 0;
  const walked = walkRecords(buffer, () => {
    records++;
    return true;
  });
  return { records, corruptRecords: walked.corruptRecords };
}
