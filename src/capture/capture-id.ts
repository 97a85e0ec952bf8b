import { createHash } from 'node:crypto';
import { formatUuidV7 } from '../core/ids.js';

/*
 * Ids of captured activities are UUIDv7 like every other id: the commit time in the 48-bit
 * timestamp (so they sort and index with the rest of the log), and the other 74 bits from a hash
 * of where the change sits in the source's stream. Reading the same stretch of the stream again
 * (after a crash, before the position was saved) makes the same ids, and the idempotent insert
 * stores each change once.
 */

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
  return formatUuidV7(ms, ((digest[0]! & 0x0f) << 8) | digest[1]!, digest, 2);
}
