import { randomFillSync } from 'node:crypto';

/*
 * UUIDv7 (RFC 9562) made here rather than with the `uuid` package: its v7() draws fresh random
 * bytes from the OS on every call (about 1.8 µs here), which would be most of log()'s cost.
 * This version takes random bytes from a pooled buffer and keeps ids monotonic within a
 * millisecond with a 12-bit counter in `rand_a` (RFC 9562 §6.2, method 1).
 */

const POOL_SIZE = 16 * 1024;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

let lastMs = -1;
let counter = 0;

function randomBytes(count: number): number {
  if (poolOffset + count > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const offset = poolOffset;
  poolOffset += count;
  return offset;
}

/** A new UUIDv7: time-ordered, so ids made at `log()` time sort (and index) by creation. */
export function newActivityId(now: number = Date.now()): string {
  const r = randomBytes(10);
  let ms = now;
  if (ms > lastMs) {
    lastMs = ms;
    // Start each millisecond at a random point in the lower half so the counter rarely overflows.
    counter = ((pool[r]! << 8) | pool[r + 1]!) & 0x7ff;
  } else {
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      // 4096 ids in one millisecond: borrow the next millisecond to stay monotonic.
      lastMs = ++ms;
      counter = 0;
    }
  }
  return formatUuidV7(ms, counter, pool, r + 2);
}

/**
 * The text of the UUIDv7 with Unix time `ms`, the 12 bits `randA` in `rand_a` and `rand_b` from
 * the 8 bytes of `bytes` at `offset` (the variant bits replace the top two of the first).
 */
export function formatUuidV7(ms: number, randA: number, bytes: Uint8Array, offset: number): string {
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
    HEX[0x70 | ((randA >>> 8) & 0x0f)]! +
    HEX[randA & 0xff]! +
    '-' +
    HEX[0x80 | (bytes[offset]! & 0x3f)]! +
    HEX[bytes[offset + 1]!]! +
    '-' +
    HEX[bytes[offset + 2]!]! +
    HEX[bytes[offset + 3]!]! +
    HEX[bytes[offset + 4]!]! +
    HEX[bytes[offset + 5]!]! +
    HEX[bytes[offset + 6]!]! +
    HEX[bytes[offset + 7]!]!
  );
}

/** A new batch id (a UUIDv7 as well, so batches sort by when they started). */
export function newBatchUuid(): string {
  return newActivityId();
}
