import { describe, expect, it } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { ActivityLogError } from '../../src/core/errors.js';
import { writeFully } from '../../src/resilience/spool-segment-writer.js';
import { writeWithIsolation } from '../../src/resilience/write-with-isolation.js';
import { builtActivity } from '../helpers/activity-factory.js';

const batch = (count: number): Activity[] =>
  Array.from({ length: count }, (_, i) => builtActivity({ description: `isolate ${i}` }));

/** A destination that refuses, as data, any write holding one of `refused`, and records every call. */
function destination(refused: ReadonlySet<string>, failAfterCalls = Number.POSITIVE_INFINITY) {
  const calls: number[] = [];
  const stored: string[] = [];
  const write = async (part: readonly Activity[]) => {
    calls.push(part.length);
    if (calls.length > failAfterCalls) throw new ActivityLogError('STORE_CONNECTION_REFUSED', 'gone');
    if (part.some((activity) => refused.has(activity.id))) {
      throw new ActivityLogError('STORE_DATA_INVALID', 'refused by a CHECK');
    }
    stored.push(...part.map((activity) => activity.id));
    return part.length;
  };
  return { write, calls, stored };
}

describe('writeWithIsolation', () => {
  it('writes a healthy batch with one call', async () => {
    const activities = batch(500);
    const { write, calls } = destination(new Set());
    const result = await writeWithIsolation(activities, write);
    expect(calls).toEqual([500]);
    expect(result.inserted).toBe(500);
    expect(result.refused).toEqual([]);
  });

  it('finds one refused activity among 500 in O(log n) calls and stores the other 499 in order', async () => {
    const activities = batch(500);
    const bad = activities[317]!;
    const { write, calls, stored } = destination(new Set([bad.id]));
    const result = await writeWithIsolation(activities, write);
    expect(result.refused.map((r) => r.activity.id)).toEqual([bad.id]);
    expect(stored).toEqual(activities.filter((a) => a !== bad).map((a) => a.id));
    expect(calls.length).toBeLessThanOrEqual(1 + 2 * Math.ceil(Math.log2(500)));
  });

  it('keeps to 2·k·⌈log₂ n⌉ further calls for k refused activities', async () => {
    const activities = batch(512);
    const badIndexes = [3, 100, 101, 255, 400, 511];
    const { write, calls, stored } = destination(new Set(badIndexes.map((i) => activities[i]!.id)));
    const result = await writeWithIsolation(activities, write);
    expect(result.refused.map((r) => r.activity.id)).toEqual(badIndexes.map((i) => activities[i]!.id));
    expect(stored).toHaveLength(512 - badIndexes.length);
    expect(calls.length - 1).toBeLessThanOrEqual(2 * badIndexes.length * 9);
  });

  it('stops at a failure of the destination and hands back what it did not write, in order', async () => {
    const activities = batch(8);
    const { write, stored } = destination(new Set([activities[1]!.id]), 3);
    const result = await writeWithIsolation(activities, write);
    expect(isStoreRefusal(result.error)).toBe(true);
    expect(
      [...stored, ...result.refused.map((r) => r.activity.id), ...result.unwritten.map((a) => a.id)].sort(),
    ).toEqual(activities.map((a) => a.id).sort());
    expect(result.unwritten.map((a) => a.id)).toEqual(
      activities.slice(activities.length - result.unwritten.length).map((a) => a.id),
    );
  });
});

function isStoreRefusal(error: unknown): boolean {
  return error instanceof ActivityLogError && error.code === 'STORE_CONNECTION_REFUSED';
}

describe('writeFully', () => {
  it('writes again what a short write left, at the right position', async () => {
    const written: { bytes: string; position: number }[] = [];
    const handle = {
      async writev(buffers: Buffer[], position?: number) {
        // A nearly full disk: takes at most 5 bytes per call, without an error.
        const all = Buffer.concat(buffers);
        const taken = all.subarray(0, 5);
        written.push({ bytes: taken.toString(), position: position ?? -1 });
        return { bytesWritten: taken.length, buffers };
      },
    };
    await writeFully(handle as never, [Buffer.from('abcdefgh'), Buffer.from('ijkl')], 12, 100);
    expect(written).toEqual([
      { bytes: 'abcde', position: 100 },
      { bytes: 'fghij', position: 105 },
      { bytes: 'kl', position: 110 },
    ]);
  });

  it('fails with ENOSPC when the disk takes nothing more', async () => {
    let calls = 0;
    const handle = {
      async writev(buffers: Buffer[]) {
        calls++;
        return { bytesWritten: calls === 1 ? 3 : 0, buffers };
      },
    };
    await expect(writeFully(handle as never, [Buffer.from('abcdef')], 6, 0)).rejects.toMatchObject({
      code: 'ENOSPC',
    });
  });
});
