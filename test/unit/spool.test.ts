import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { ActivityLogError } from '../../src/core/errors.js';
import { Spool, type SpoolOptions } from '../../src/resilience/spool.js';
import { crc32, decodeSegment, encodeSpoolRecord, SEGMENT_MAGIC } from '../../src/resilience/spool-record.js';
import { builtActivities, builtActivity } from '../helpers/activity-factory.js';

const ids = (list: readonly Activity[]) => list.map((activity) => activity.id);

describe('Spool', () => {
  let dir: string;
  const warnings: string[] = [];

  function open(options: Partial<SpoolOptions> = {}): Spool {
    const spool = new Spool({ dir, maxBytes: 10 * 1024 * 1024, warn: (m) => warnings.push(m), ...options });
    onTestFinished(() => spool.close());
    return spool;
  }

  async function replayAll(spool: Spool, batchSize = 100): Promise<Activity[]> {
    const written: Activity[] = [];
    const result = await spool.replay(
      async (batch) => {
        written.push(...batch);
      },
      { batchSize },
    );
    expect(result.complete).toBe(true);
    return written;
  }

  async function segmentFiles(): Promise<string[]> {
    return (await readdir(dir)).filter((name) => name.endsWith('.seg')).sort();
  }

  beforeEach(async ({ onTestFinished }) => {
    const parent = await mkdtemp(join(tmpdir(), 'activity-log-spool-'));
    onTestFinished(() => rm(parent, { recursive: true, force: true }));
    dir = join(parent, 'spool');
    warnings.length = 0;
  });

  it('replays what was appended, in order and intact, then deletes the segments', async () => {
    const spool = open();
    const sent = builtActivities(250);
    await spool.append(sent.slice(0, 100));
    await spool.append(sent.slice(100));
    expect(spool.pending()).toBe(250);
    const batches: number[] = [];
    const written: Activity[] = [];
    const result = await spool.replay(
      async (batch) => {
        batches.push(batch.length);
        written.push(...batch);
      },
      { batchSize: 100 },
    );
    expect(result).toMatchObject({ replayed: 250, segments: 1, corruptRecords: 0, complete: true });
    expect(batches).toEqual([100, 100, 50]);
    expect(written).toEqual(sent);
    expect(spool.pending()).toBe(0);
    expect(await segmentFiles()).toEqual([]);
  });

  it('groups concurrent appends into one commit and resolves each once it is on disk', async () => {
    const spool = open();
    const sent = builtActivities(50);
    const results = await Promise.all(sent.map((activity) => spool.append([activity])));
    expect(results.every((r) => r.spooled === 1 && r.dropped === 0)).toBe(true);
    const files = await segmentFiles();
    expect(files).toHaveLength(1);
    const decoded = decodeSegment(await readFile(join(dir, files[0]!)));
    expect(ids(decoded.activities)).toEqual(ids(sent));
  });

  it('does not create the directory until something is spooled', async () => {
    const spool = open();
    expect((await spool.replay(async () => undefined, { batchSize: 10 })).replayed).toBe(0);
    await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
  });

  it('rotates segments past the segment size and replays across them in order', async () => {
    const spool = open({ segmentMaxBytes: 8 * 1024 });
    const sent = builtActivities(120);
    for (let i = 0; i < 120; i += 10) await spool.append(sent.slice(i, i + 10));
    expect((await segmentFiles()).length).toBeGreaterThan(3);
    expect(ids(await replayAll(spool, 7))).toEqual(ids(sent));
    expect(await segmentFiles()).toEqual([]);
  });

  it('skips and counts a torn last record, replaying the rest', async () => {
    const writer = open();
    const sent = builtActivities(20);
    await writer.append(sent);
    await writer.close();
    const [file] = await segmentFiles();
    const path = join(dir, file!);
    const { size } = await stat(path);
    await truncate(path, size - 17);

    const reader = open();
    const skipped: number[] = [];
    reader.events.on('corruptRecordSkipped', (event) => skipped.push(event.count));
    const result = await reader.replay(async () => undefined, { batchSize: 100 });
    expect(result).toMatchObject({ replayed: 19, corruptRecords: 1, complete: true });
    expect(skipped).toEqual([1]);
    expect(reader.corruptRecordsTotal).toBe(1);
    expect(warnings.some((w) => w.includes('damaged record'))).toBe(true);
  });

  it('skips a damaged record in the middle and finds the records after it', async () => {
    const sent = builtActivities(5);
    const records = sent.map(encodeSpoolRecord);
    records[2]![20] ^= 0xff;
    const decoded = decodeSegment(Buffer.concat([SEGMENT_MAGIC, ...records]));
    expect(decoded.corruptRecords).toBe(1);
    expect(ids(decoded.activities)).toEqual(ids([sent[0]!, sent[1]!, sent[3]!, sent[4]!]));
  });

  it('does not take a tail of zeros for records', async () => {
    const records = builtActivities(2).map(encodeSpoolRecord);
    const decoded = decodeSegment(Buffer.concat([SEGMENT_MAGIC, ...records, Buffer.alloc(4096)]));
    expect(decoded.activities).toHaveLength(2);
    expect(decoded.corruptRecords).toBe(1);
  });

  it('checksums with standard CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('drops only what does not fit once full, counts it, and keeps the oldest data intact', async () => {
    const spool = open({ maxBytes: 16 * 1024 });
    const dropped: number[] = [];
    spool.bus.on('dropped', (event) => dropped.push(event.count));
    const sent = builtActivities(200);
    let spooled = 0;
    let lost = 0;
    for (let i = 0; i < 200; i += 10) {
      const result = await spool.append(sent.slice(i, i + 10));
      spooled += result.spooled;
      lost += result.dropped;
    }
    expect(spooled).toBeGreaterThan(0);
    expect(lost).toBe(200 - spooled);
    expect(dropped.reduce((a, b) => a + b, 0)).toBe(lost);
    expect(spool.droppedTotal).toBe(lost);
    expect(warnings.filter((w) => w.includes('is full'))).toHaveLength(1);
    const status = await spool.status();
    expect(status.bytes).toBeLessThanOrEqual(16 * 1024);
    expect(ids(await replayAll(spool))).toEqual(ids(sent.slice(0, spooled)));
  });

  it('once full keeps nothing newer than a dropped activity until replay makes room; whole appends are all or none', async () => {
    const spool = open({ maxBytes: 8 * 1024 });
    const small = builtActivities(100);
    let kept = 0;
    while ((await spool.append([small[kept]!])).dropped === 0) kept++;
    // The first that did not fit is gone; a smaller one after it is not kept in its place.
    const big = builtActivity({ description: 'big', properties: { blob: 'x'.repeat(4000) } });
    expect(await spool.append([big, small[kept + 1]!])).toEqual({ spooled: 0, dropped: 2 });
    expect(await spool.append([small[kept + 2]!])).toEqual({ spooled: 0, dropped: 1 });
    expect(ids(await replayAll(spool))).toEqual(ids(small.slice(0, kept)));
    // Room again: a group that fits is kept whole; one that does not is dropped whole.
    expect(await spool.append(small.slice(50, 53), { whole: true })).toEqual({ spooled: 3, dropped: 0 });
    const tooMany = builtActivities(40, 1000);
    expect(await spool.append(tooMany, { whole: true })).toEqual({ spooled: 0, dropped: 40 });
    expect(ids(await replayAll(spool))).toEqual(ids(small.slice(50, 53)));
  });

  it('stops at a failed write, keeps the segment and resumes after the confirmed batches', async () => {
    const spool = open();
    const sent = builtActivities(30);
    await spool.append(sent);
    const written: Activity[] = [];
    let calls = 0;
    const first = await spool.replay(
      async (batch) => {
        if (++calls === 2) throw new Error('database down');
        written.push(...batch);
      },
      { batchSize: 10 },
    );
    expect(first).toMatchObject({ replayed: 10, complete: false });
    expect((first.error as Error).message).toBe('database down');
    expect(await segmentFiles()).toHaveLength(1);
    expect(spool.pending()).toBe(20);
    written.push(...(await replayAll(spool, 10)));
    expect(ids(written)).toEqual(ids(sent));
  });

  it("claims and replays the segments of a process that is gone, but not a live one's", async () => {
    const gone = open();
    const live = open();
    const fromGone = builtActivities(10);
    const fromLive = builtActivities(10, 100);
    await gone.append(fromGone);
    await live.append(fromLive);
    await gone.close();

    const replayer = open();
    const claimed: string[] = [];
    replayer.events.on('claimed', (event) => claimed.push(event.from));
    expect(ids(await replayAll(replayer))).toEqual(ids(fromGone));
    expect(claimed).toHaveLength(1);
    expect(await segmentFiles()).toHaveLength(1);
    expect(ids(await replayAll(live))).toEqual(ids(fromLive));
  });

  it('writes a group again if its segment was taken over while this process was stalled', async () => {
    const spool = open();
    await spool.append(builtActivities(5));
    const [taken] = await segmentFiles();
    // What a claimant does with a segment it believes orphaned: rename, replay, delete.
    await rm(join(dir, taken!));
    const later = builtActivities(5, 100);
    await spool.append(later);
    expect(ids(await replayAll(spool))).toEqual(ids(later));
  });

  it('treats a segment of a dead pid as orphaned', async () => {
    const sent = builtActivities(3);
    await mkdir(dir, { recursive: true });
    // pid 2^22 + 1 is above Linux's pid_max ceiling, so no process can have it.
    const owner = `${2 ** 22 + 1}-deadbeef`;
    await writeFile(
      join(dir, `0000000000001-000001-${owner}@${owner}.seg`),
      Buffer.concat([SEGMENT_MAGIC, ...sent.map(encodeSpoolRecord)]),
    );
    expect(ids(await replayAll(open()))).toEqual(ids(sent));
  });

  it('reports segments, bytes, activities waiting and the oldest', async () => {
    const spool = open({ segmentMaxBytes: 4 * 1024 });
    const before = Date.now();
    for (let i = 0; i < 4; i++) await spool.append(builtActivities(5, i * 5));
    const status = await spool.status();
    expect(status.segments.length).toBeGreaterThan(1);
    expect(status.activities).toBe(20);
    expect(status.bytes).toBe(status.segments.reduce((sum, s) => sum + s.bytes, 0));
    expect(status.oldestAt!.getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(status.segments.every((s) => s.ownerAlive)).toBe(true);
    expect(status.rejected).toBe(0);
  });

  it('keeps activities refused as bad data in rejected.ndjson', async () => {
    const spool = open();
    const [bad] = builtActivities(1);
    await spool.reject([
      { activity: bad!, error: new ActivityLogError('STORE_DATA_TOO_LONG', 'too long for url') },
    ]);
    const lines = (await readFile(join(dir, 'rejected.ndjson'), 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      error: { code: 'STORE_DATA_TOO_LONG' },
      activity: { id: bad!.id, url: bad!.url },
    });
    expect((await spool.status()).rejected).toBe(1);
  });

  it('counts rejected.ndjson against the size limit: what does not fit is dropped and counted, and purging frees the room', async () => {
    const spool = open({ maxBytes: 64 * 1024 });
    const refusal = new ActivityLogError('STORE_DATA_INVALID', 'refused by a CHECK');
    const many = builtActivities(200);
    const kept = await spool.reject(many.map((activity) => ({ activity, error: refusal })));
    expect(kept.spooled).toBeGreaterThan(0);
    expect(kept.dropped).toBeGreaterThan(0);
    expect(kept.spooled + kept.dropped).toBe(200);
    expect(spool.droppedTotal).toBe(kept.dropped);
    const status = await spool.status();
    expect(status.rejected).toBe(kept.spooled);
    expect(status.rejectedBytes).toBeLessThanOrEqual(64 * 1024);
    expect(status.rejectedOldestAt).toBeInstanceOf(Date);
    // The room it takes is the spool's: a segment no longer fits either.
    expect((await spool.append(builtActivities(40, 1000))).dropped).toBeGreaterThan(0);
    expect(await spool.purgeRejected()).toBe(kept.spooled);
    expect((await spool.status()).rejected).toBe(0);
    expect((await spool.append(builtActivities(10, 2000))).dropped).toBe(0);
  });

  it('lists refused activities oldest first, keeps each once, and says so in one line per interval', async () => {
    const spool = open();
    const refusal = new ActivityLogError('STORE_DATA_TOO_LONG', 'too long for url');
    const [first, second] = builtActivities(2);
    warnings.length = 0;
    await spool.reject([{ activity: first!, error: refusal }]);
    await spool.reject([
      { activity: first!, error: refusal },
      { activity: second!, error: refusal },
    ]);
    const listed = await spool.rejected();
    expect(listed.map((record) => record.activity.id)).toEqual([first!.id, second!.id]);
    expect(listed[0]!.error).toEqual({ code: 'STORE_DATA_TOO_LONG', message: 'too long for url' });
    // The first refusal is said at once; the next within the interval waits for the summary.
    expect(warnings.filter((line) => /refused by the destination/.test(line))).toHaveLength(1);
    await spool.close();
    expect(warnings.filter((line) => /refused by the destination/.test(line))).toHaveLength(2);
    expect(warnings.at(-1)).toMatch(/1 activities were refused .*\(2 in all/);
  });

  it('writes its files readable by their owner only', async () => {
    const spool = open();
    await spool.append(builtActivities(1));
    await spool.reject([{ activity: builtActivities(1, 5)[0]!, error: new Error('refused') }]);
    for (const name of await readdir(dir)) {
      expect(((await stat(join(dir, name))).mode & 0o777).toString(8), name).toBe('600');
    }
  });

  it('holds a segment a holding replay wrote until it is released, and replays it again once rewound', async () => {
    const spool = open();
    const written = builtActivities(30);
    await spool.append(written);
    const seen: string[] = [];
    const write = async (batch: readonly Activity[]) => {
      seen.push(...ids(batch));
    };
    expect((await spool.replay(write, { batchSize: 10, hold: true })).complete).toBe(true);
    expect(seen).toEqual(ids(written));
    const [held] = spool.held();
    expect(held).toBeDefined();
    expect(spool.pending()).toBe(0);
    // Held: a further pass writes nothing, and the file stays.
    await spool.replay(write, { batchSize: 10, hold: true });
    expect(seen).toHaveLength(30);
    expect(await segmentFiles()).toHaveLength(1);
    spool.rewind(held!);
    expect(spool.pending()).toBe(30);
    await spool.replay(write, { batchSize: 10, hold: true });
    expect(seen).toHaveLength(60);
    await spool.release(held!);
    expect(spool.held()).toEqual([]);
    expect(await segmentFiles()).toEqual([]);
  });

  it('fails with SPOOL_FAILED when the directory cannot be created, and after close()', async () => {
    await writeFile(dir, 'a file where the directory should be');
    const spool = open();
    await expect(spool.append(builtActivities(1))).rejects.toMatchObject({ code: 'SPOOL_FAILED' });
    await spool.close();
    await expect(spool.append(builtActivities(1))).rejects.toMatchObject({ code: 'SPOOL_FAILED' });
  });
});
