import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isActivityLogError } from '../../src/core/errors.js';
import {
  checkpointFileName,
  generateSigningKeyPair,
  signCheckpoint,
} from '../../src/integrity/checkpoint.js';
import {
  findAnchoringCheckpoint,
  loadCheckpoints,
  writeCheckpointFile,
} from '../../src/runtime/checkpoint-files.js';

const KEYS = generateSigningKeyPair();
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-checkpoints-'));
  dirs.push(dir);
  return dir;
}

function checkpointAt(seq: number, issuedAt = '2025-11-28T10:00:00.000Z', table = 'activity_log') {
  return signCheckpoint(
    { table, seq, sealHash: Buffer.alloc(32, seq), totalRows: seq * 10, issuedAt: new Date(issuedAt) },
    KEYS.privateKeyPem,
  );
}

async function loadError(path: string): Promise<Error> {
  return loadCheckpoints(path).then(
    () => {
      throw new Error('expected CHECKPOINT_INVALID');
    },
    (error: unknown) => {
      expect(isActivityLogError(error, 'CHECKPOINT_INVALID')).toBe(true);
      return error as Error;
    },
  );
}

describe('checkpoint files', () => {
  it('writes one file per checkpoint under its own name, and nothing else', async () => {
    const dir = join(tempDir(), 'new');
    const checkpoint = checkpointAt(7);
    const path = await writeCheckpointFile(dir, checkpoint);
    expect(path).toBe(join(dir, checkpointFileName(checkpoint)));
    expect(readdirSync(dir)).toEqual([checkpointFileName(checkpoint)]);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(checkpoint);
    expect(statSync(path).mode & 0o777).toBe(0o644);
  });

  it('never overwrites a checkpoint file', async () => {
    const dir = tempDir();
    const checkpoint = checkpointAt(7);
    const path = await writeCheckpointFile(dir, checkpoint);
    const again = await writeCheckpointFile(dir, checkpoint).catch((error: unknown) => error as Error);
    expect((again as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect((again as Error).message).toBe(`${path} already exists; a checkpoint is never overwritten`);
    writeFileSync(path, 'kept');
    await expect(writeCheckpointFile(dir, checkpoint)).rejects.toThrow(/already exists/);
    expect(readFileSync(path, 'utf8')).toBe('kept');
    expect(readdirSync(dir)).toEqual([checkpointFileName(checkpoint)]);
  });

  it('loads a file, or a directory lowest seq first, leaving other files alone', async () => {
    const dir = tempDir();
    const written = [
      checkpointAt(9),
      checkpointAt(2, '2025-11-28T12:00:00.000Z'),
      checkpointAt(2, '2025-11-28T11:00:00.000Z'),
      checkpointAt(5, '2025-11-28T10:00:00.000Z', 'audit'),
    ];
    for (const checkpoint of written) await writeCheckpointFile(dir, checkpoint);
    writeFileSync(join(dir, 'README.txt'), 'not a checkpoint');
    writeFileSync(join(dir, '.half-written.json.tmp'), '{');
    mkdirSync(join(dir, 'old.json'));
    const loaded = await loadCheckpoints(dir);
    expect(loaded.map(({ checkpoint }) => [checkpoint.body.seq, checkpoint.body.issued_at])).toEqual([
      [2, '2025-11-28T11:00:00.000Z'],
      [2, '2025-11-28T12:00:00.000Z'],
      [5, '2025-11-28T10:00:00.000Z'],
      [9, '2025-11-28T10:00:00.000Z'],
    ]);
    expect(loaded[0]!.file).toBe(join(dir, checkpointFileName(written[2]!)));
    const one = await loadCheckpoints(loaded[3]!.file);
    expect(one).toEqual([{ file: loaded[3]!.file, checkpoint: written[0] }]);
    expect(await loadCheckpoints(tempDir())).toEqual([]);
  });

  it('names the file that is missing, not JSON, or not a checkpoint', async () => {
    const dir = tempDir();
    const missing = join(dir, 'missing.json');
    expect((await loadError(missing)).message).toBe(`checkpoint file ${missing} cannot be read (ENOENT)`);
    const notJson = join(dir, 'a.json');
    writeFileSync(notJson, '{"body":');
    expect((await loadError(notJson)).message).toMatch(
      new RegExp(`^checkpoint file ${notJson} is not JSON \\(.+\\)$`),
    );
    const checkpoint = checkpointAt(3);
    const other = join(dir, 'b.json');
    writeFileSync(other, JSON.stringify({ ...checkpoint, body: { ...checkpoint.body, seq: 'three' } }));
    expect((await loadError(other)).message).toBe(
      `checkpoint file ${other} is not a checkpoint: seq is not a seal number (1 or more)`,
    );
    // In a directory, one bad file is reported as such rather than skipped.
    rmSync(notJson);
    expect((await loadError(dir)).message).toContain(other);
  });
});

describe('findAnchoringCheckpoint', () => {
  it("picks the first checkpoint of the table at or after the seal, and says the newest one's seal", async () => {
    const dir = tempDir();
    for (const seq of [3, 7, 12]) await writeCheckpointFile(dir, checkpointAt(seq));
    await writeCheckpointFile(dir, checkpointAt(9, '2025-11-28T10:00:00.000Z', 'other_table'));
    // A file named like a checkpoint that is not one is passed over.
    writeFileSync(join(dir, 'activity_log-000000000005-20251128T100000000Z.json'), '{"not":"a checkpoint"}');

    const at = async (seq: number) => {
      const found = await findAnchoringCheckpoint(dir, 'activity_log', seq);
      return {
        seq: found.checkpoint?.checkpoint.body.seq ?? null,
        newestSeq: found.newest?.checkpoint.body.seq ?? null,
      };
    };
    expect(await at(1)).toEqual({ seq: 3, newestSeq: 12 });
    expect(await at(3)).toEqual({ seq: 3, newestSeq: 12 });
    expect(await at(4)).toEqual({ seq: 7, newestSeq: 12 });
    expect(await at(8)).toEqual({ seq: 12, newestSeq: 12 });
    expect(await at(13)).toEqual({ seq: null, newestSeq: 12 });
    expect((await findAnchoringCheckpoint(dir, 'other_table', 1)).checkpoint?.checkpoint.body.seq).toBe(9);
  });

  it('finds none in a directory that does not exist yet', async () => {
    expect(await findAnchoringCheckpoint(join(tempDir(), 'missing'), 'activity_log', 1)).toEqual({
      checkpoint: null,
      newest: null,
    });
  });
});
