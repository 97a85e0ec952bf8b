import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  listSegments,
  ownerFileName,
  ownerOfOwnerFile,
  parseSegmentName,
  segmentBase,
  segmentFileName,
  segmentUsage,
} from '../../src/resilience/spool-segment-directory.js';

const CREATOR = '4242-0badcafe';
const CLAIMANT = '77-deadbeef';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'spool-directory-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('segment names', () => {
  it('names a segment after its creation time, sequence, creator and owner', () => {
    const base = segmentBase(1_700_000_000_123, 7, CREATOR);
    expect(base).toBe(`1700000000123-000007-${CREATOR}`);
    expect(segmentFileName(base, CLAIMANT)).toBe(`1700000000123-000007-${CREATOR}@${CLAIMANT}.seg`);
  });

  it('pads early timestamps to thirteen digits and wraps the sequence at a million', () => {
    expect(segmentBase(1, 1_000_003, CREATOR)).toBe(`0000000000001-000003-${CREATOR}`);
  });

  it('reads back what a name was made from', () => {
    const name = segmentFileName(segmentBase(1_700_000_000_123, 42, CREATOR), CLAIMANT);
    expect(parseSegmentName(name)).toEqual({
      name,
      base: `1700000000123-000042-${CREATOR}`,
      owner: CLAIMANT,
      createdAt: new Date(1_700_000_000_123),
    });
  });

  it('parses the names earlier versions wrote', () => {
    expect(parseSegmentName('1733097600000-000001-1234-89abcdef@5678-01234567.seg')).toMatchObject({
      base: '1733097600000-000001-1234-89abcdef',
      owner: '5678-01234567',
      createdAt: new Date('2024-12-02T00:00:00.000Z'),
    });
  });

  it.each([
    ['rejected.ndjson'],
    [`${CREATOR}.owner`],
    [`1700000000123-000001-${CREATOR}@${CREATOR}.seg.unreadable`],
    [`1700000000123-000001-${CREATOR}.seg`],
    [`170000000012-000001-${CREATOR}@${CREATOR}.seg`],
    [`1700000000123-000001-${CREATOR}@4242-NOTHEX.seg`],
    ['notes.seg'],
  ])('does not take %s for a segment', (name) => {
    expect(parseSegmentName(name)).toBeNull();
  });

  it('names owner files after their owner and reads the owner back', () => {
    expect(ownerFileName(CREATOR)).toBe(`${CREATOR}.owner`);
    expect(ownerOfOwnerFile(`${CREATOR}.owner`)).toBe(CREATOR);
    expect(ownerOfOwnerFile('rejected.ndjson')).toBeNull();
  });
});

describe('listSegments', () => {
  it('lists segments in write order whoever owns them now, with their sizes, and nothing else', async () => {
    const dir = await tempDir();
    const later = segmentFileName(segmentBase(2000, 1, CREATOR), CREATOR);
    const earlier = segmentFileName(segmentBase(1000, 2, CREATOR), CLAIMANT);
    const sameMillisecond = segmentFileName(segmentBase(2000, 2, CREATOR), CLAIMANT);
    await writeFile(join(dir, later), 'abc');
    await writeFile(join(dir, earlier), 'abcdef');
    await writeFile(join(dir, sameMillisecond), 'a');
    await writeFile(join(dir, 'rejected.ndjson'), '{}\n');
    await writeFile(join(dir, ownerFileName(CREATOR)), '');
    await writeFile(join(dir, 'notes.seg'), 'not a segment');

    const listed = await listSegments(dir);

    expect(listed.map((segment) => [segment.name, segment.bytes])).toEqual([
      [earlier, 6],
      [later, 3],
      [sameMillisecond, 1],
    ]);
  });

  it('finds no segments in a directory that was never made', async () => {
    const dir = await tempDir();
    expect(await listSegments(join(dir, 'missing'))).toEqual([]);
    await writeFile(join(dir, 'file'), '');
    expect(await listSegments(join(dir, 'file'))).toEqual([]);
  });
});

describe('segmentUsage', () => {
  it('adds up the bytes of every segment and finds the oldest by its name', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, segmentFileName(segmentBase(5000, 1, CREATOR), CREATOR)), 'abcd');
    await writeFile(join(dir, segmentFileName(segmentBase(3000, 9, CREATOR), CLAIMANT)), 'ab');
    await writeFile(join(dir, 'rejected.ndjson'), 'not counted here');
    await mkdir(join(dir, 'sub'));

    expect(await segmentUsage(dir)).toEqual({ bytes: 6, oldestAtMs: 3000 });
  });

  it('reports an empty or missing directory as holding nothing', async () => {
    const dir = await tempDir();
    expect(await segmentUsage(dir)).toEqual({ bytes: 0, oldestAtMs: null });
    expect(await segmentUsage(join(dir, 'missing'))).toEqual({ bytes: 0, oldestAtMs: null });
  });
});
