import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { SpoolOwnership } from '../../src/resilience/spool-ownership.js';
import {
  parseSegmentName,
  segmentBase,
  segmentFileName,
} from '../../src/resilience/spool-segment-directory.js';

/** A pid no process has: Linux pids stay below 2^22. */
const GONE = '999999999-0badcafe';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'spool-ownership-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function ownership(dir: string, closed = { value: false }): SpoolOwnership {
  const owned = new SpoolOwnership(dir, () => closed.value);
  onTestFinished(() => owned.close());
  return owned;
}

describe('SpoolOwnership', () => {
  it('counts itself alive until its spool is closed', async () => {
    const closed = { value: false };
    const owned = ownership(await tempDir(), closed);
    expect(owned.owner).toMatch(new RegExp(`^${process.pid}-[0-9a-f]{8}$`));
    expect(await owned.isAlive(owned.owner)).toBe(true);
    closed.value = true;
    expect(await owned.isAlive(owned.owner)).toBe(false);
  });

  it('counts another live instance of this process alive until it closes', async () => {
    const dir = await tempDir();
    const other = new SpoolOwnership(dir, () => false);
    const owned = ownership(dir);
    expect(await owned.isAlive(other.owner)).toBe(true);
    await other.close();
    expect(await owned.isAlive(other.owner)).toBe(false);
  });

  it('counts an owner whose process is gone as dead', async () => {
    const owned = ownership(await tempDir());
    expect(await owned.isAlive(GONE)).toBe(false);
  });

  it('counts an instance with this pid from another run alive only while its owner file is fresh', async () => {
    const dir = await tempDir();
    const owned = ownership(dir);
    const earlierRun = `${process.pid}-12345678`;
    expect(await owned.isAlive(earlierRun)).toBe(false);
    await writeFile(join(dir, `${earlierRun}.owner`), '');
    expect(await owned.isAlive(earlierRun)).toBe(true);
    const longAgo = new Date(Date.now() - 120_000);
    await utimes(join(dir, `${earlierRun}.owner`), longAgo, longAgo);
    expect(await owned.isAlive(earlierRun)).toBe(false);
  });

  it('keeps an owner file while it lives and removes it on close', async () => {
    const dir = await tempDir();
    const owned = new SpoolOwnership(dir, () => false);
    await owned.start();
    expect(await readdir(dir)).toEqual([`${owned.owner}.owner`]);
    await owned.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it('claims a segment by renaming it to itself, keeping its place in write order', async () => {
    const dir = await tempDir();
    const owned = ownership(dir);
    const base = segmentBase(1000, 1, GONE);
    await writeFile(join(dir, segmentFileName(base, GONE)), 'records');
    const segment = { ...parseSegmentName(segmentFileName(base, GONE))!, bytes: 7 };

    const claimed = await owned.claim(segment);

    expect(claimed).toBe(segmentFileName(base, owned.owner));
    expect(await readdir(dir)).toEqual([claimed]);
    expect(await owned.claim(segment)).toBeNull();
  });

  it('removes owner files of dead owners that no segment names, and keeps the rest', async () => {
    const dir = await tempDir();
    const owned = ownership(dir);
    await owned.start();
    const deadWithSegment = '999999998-0badcafe';
    await writeFile(join(dir, `${GONE}.owner`), '');
    await writeFile(join(dir, `${deadWithSegment}.owner`), '');
    await writeFile(join(dir, segmentFileName(segmentBase(1000, 1, deadWithSegment), deadWithSegment)), '');

    await owned.removeDeadOwnerFiles();

    expect((await readdir(dir)).filter((name) => name.endsWith('.owner')).sort()).toEqual(
      [`${deadWithSegment}.owner`, `${owned.owner}.owner`].sort(),
    );
  });
});
