import { createHash } from 'node:crypto';

/*
 * Ids of captured activities are UUIDv7 like every other id: the commit time in the 48-bit
 * timestamp (so they sort and index with the rest of the log), and the other 74 bits from a hash
 * of where the change sits in the source's stream. Reading the same stretch of the stream again
 * (after a crash, before the position was saved) makes the same ids, and the idempotent insert
 * stores each change once.
 */

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The id of the `index`-th row change (0-based) of the transaction at `position` of the stream
 * `streamKey` (which database, which slot), committed at `commitMs`.
 *
 * @example
 * captureActivityId('pg:7714948652190931059/shop', '0/1A2B3C4D', 0, Date.parse('2026-01-01'));
 */
export function captureActivityId(
  streamKey: string,
  position: string,
  index: number,
  commitMs: number,
): string {
  return uuidV7From(`${streamKey}\u0000${position}\u0000${index}`, commitMs);
}

/** The `batch_uuid` of an untagged source transaction: one per transaction, the same on every read. */
export function captureBatchUuid(streamKey: string, position: string, commitMs: number): string {
  return uuidV7From(`${streamKey}\u0000${position}\u0000batch`, commitMs);
}

function uuidV7From(text: string, ms: number): string {
  const digest = createHash('sha256').update(text).digest();
  const high = Math.floor(ms / 0x1_0000_0000);
  const low = ms >>> 0;
  return (
    HEX[(high >>> 8) & 0xff]! +
    HEX[high & 0xff]! +
    HEX[(low >>> 24) & 0xff]! +
    HEX[(low >>> 16) & 0xff]! +
    '-' +
    HEX[(low >>> 8) & 0xff]! +
    HEX[low & 0xff]! +
    '-' +
    HEX[0x70 | (digest[0]! & 0x0f)]! +
    HEX[digest[1]!]! +
    '-' +
    HEX[0x80 | (digest[2]! & 0x3f)]! +
    HEX[digest[3]!]! +
    '-' +
    HEX[digest[4]!]! +
    HEX[digest[5]!]! +
    HEX[digest[6]!]! +
    HEX[digest[7]!]! +
    HEX[digest[8]!]! +
    HEX[digest[9]!]!
  );
}
