import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createActivityEventBus } from '../../src/core/activity-events.js';
import {
  type AppendRequest,
  allotGroup,
  defaultSegmentMaxBytes,
  linesThatFit,
  SpoolQuota,
} from '../../src/resilience/spool-quota.js';

const KIB = 1024;
const MIB = 1024 * KIB;

/** An append of records of the given sizes. */
function append(sizes: readonly number[], whole = false): AppendRequest {
  return { records: sizes.map((size) => Buffer.alloc(size)), whole };
}

const room = (usedBytes: number, maxBytes: number, extra: { full?: boolean; headerBytes?: number } = {}) => ({
  usedBytes,
  maxBytes,
  full: extra.full ?? false,
  headerBytes: extra.headerBytes ?? 0,
});

describe('defaultSegmentMaxBytes', () => {
  it('is an eighth of the spool limit', () => {
    expect(defaultSegmentMaxBytes(8 * MIB)).toBe(MIB);
    expect(defaultSegmentMaxBytes(8 * MIB + 7)).toBe(MIB);
  });

  it('is never below 64 KiB nor above 16 MiB', () => {
    expect(defaultSegmentMaxBytes(100 * KIB)).toBe(64 * KIB);
    expect(defaultSegmentMaxBytes(1024 * MIB)).toBe(16 * MIB);
  });
});

describe('allotGroup', () => {
  it('keeps every record that fits, in order, and counts them per append', () => {
    const allotment = allotGroup([append([10, 20]), append([30])], room(0, 100));
    expect(allotment.kept.map((record) => record.length)).toEqual([10, 20, 30]);
    expect(allotment.bytes).toBe(60);
    expect(allotment.results).toEqual([
      { spooled: 2, dropped: 0 },
      { spooled: 1, dropped: 0 },
    ]);
    expect(allotment).toMatchObject({ dropped: 0, full: false });
  });

  it('keeps a record that exactly fills the limit', () => {
    expect(allotGroup([append([40])], room(60, 100)).results).toEqual([{ spooled: 1, dropped: 0 }]);
  });

  it('counts the bytes already used and the header of a new segment against the limit', () => {
    const allotment = allotGroup([append([30, 30])], room(40, 100, { headerBytes: 8 }));
    expect(allotGroup([append([30, 30])], room(40, 100)).results).toEqual([{ spooled: 2, dropped: 0 }]);
    expect(allotment.results).toEqual([{ spooled: 1, dropped: 1 }]);
    expect(allotment).toMatchObject({ bytes: 30, dropped: 1, full: true });
  });

  it('keeps nothing after the first record that does not fit, not even a smaller, newer one', () => {
    const allotment = allotGroup([append([50, 60, 5]), append([1])], room(0, 100));
    expect(allotment.kept.map((record) => record.length)).toEqual([50]);
    expect(allotment.results).toEqual([
      { spooled: 1, dropped: 2 },
      { spooled: 0, dropped: 1 },
    ]);
    expect(allotment).toMatchObject({ dropped: 3, full: true });
  });

  it('drops a whole append that does not fit in full, and everything after it', () => {
    const allotment = allotGroup([append([10]), append([40, 40], true), append([5])], room(20, 100));
    expect(allotment.results).toEqual([
      { spooled: 1, dropped: 0 },
      { spooled: 0, dropped: 2 },
      { spooled: 0, dropped: 1 },
    ]);
  });

  it('keeps a whole append that fits in full', () => {
    expect(allotGroup([append([40, 40], true)], room(20, 100)).results).toEqual([{ spooled: 2, dropped: 0 }]);
  });

  it('keeps nothing while the spool is still full from an earlier drop', () => {
    const allotment = allotGroup([append([1])], room(0, 100, { full: true }));
    expect(allotment).toMatchObject({ kept: [], bytes: 0, dropped: 1, full: true });
  });
});

describe('linesThatFit', () => {
  it('keeps the leading lines that fit on top of what is used', () => {
    const lines = [10, 20, 5].map((size) => Buffer.alloc(size));
    expect(linesThatFit(lines, 70, 100)).toEqual({ kept: lines.slice(0, 2), bytes: 30 });
  });

  it('stops at the first line that does not fit', () => {
    const lines = [10, 50, 5].map((size) => Buffer.alloc(size));
    expect(linesThatFit(lines, 50, 100).bytes).toBe(10);
  });
});

describe('SpoolQuota', () => {
  function quota(maxBytes = 100, dir = '/nonexistent/spool') {
    const events = createActivityEventBus();
    const warnings: string[] = [];
    return { quota: new SpoolQuota(dir, maxBytes, events, (line) => warnings.push(line)), events, warnings };
  }

  it('counts the segments and rejected.ndjson together', () => {
    const { quota: q } = quota();
    q.atLeastSegmentBytes(0);
    q.addSegmentBytes(40);
    q.setRejectedBytes(15);
    expect(q.usedBytes).toBe(55);
    q.removeSegmentBytes(100);
    expect(q.usedBytes).toBe(15);
  });

  it('never counts fewer segment bytes than were seen in the directory', () => {
    const { quota: q } = quota();
    q.atLeastSegmentBytes(50);
    q.atLeastSegmentBytes(30);
    expect(q.usedBytes).toBe(50);
  });

  it('stays full after a drop until the spool shrank below the size it had then', () => {
    const { quota: q } = quota();
    q.atLeastSegmentBytes(90);
    q.markFull();
    expect(q.stillFull()).toBe(true);
    q.addSegmentBytes(5);
    expect(q.stillFull()).toBe(true);
    q.removeSegmentBytes(10);
    expect(q.stillFull()).toBe(false);
    expect(q.stillFull()).toBe(false);
  });

  it('reports a drop with the bytes in use and the limit, and warns once', () => {
    const { quota: q, events, warnings } = quota(2 * MIB, '/var/spool/x');
    const dropped: unknown[] = [];
    events.on('dropped', (event) => dropped.push(event));
    q.atLeastSegmentBytes(1000);
    q.setRejectedBytes(24);
    q.drop(3);
    q.drop(2, 'refused activities');
    q.flush();
    expect(dropped).toEqual([
      { count: 3, totalBytes: 1024, maxBytes: 2 * MIB },
      { count: 2, totalBytes: 1024, maxBytes: 2 * MIB },
    ]);
    expect(q.droppedTotal).toBe(5);
    expect(warnings[0]).toBe(
      'activity-log: the spool at /var/spool/x is full (ACTIVITY_LOG_SPOOL_MAX_MB=2); dropped 3 activities (3 in all). Bring the destination back, purge refused activities (activity-log spool rejected --purge) or raise the limit',
    );
    expect(warnings).toHaveLength(2);
  });

  it('learns the segment and rejected.ndjson bytes from the directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spool-quota-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, '0000000001000-000001-1-0badcafe@1-0badcafe.seg'), Buffer.alloc(30));
    await writeFile(join(dir, 'rejected.ndjson'), Buffer.alloc(12));
    await writeFile(join(dir, 'other'), Buffer.alloc(1000));
    const { quota: q } = quota(100, dir);
    await q.rescan();
    expect(q.usedBytes).toBe(42);
  });
});
