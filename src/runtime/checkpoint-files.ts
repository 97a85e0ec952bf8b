import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ActivityLogError } from '../core/errors.js';
import { type Checkpoint, checkpointFileName, checkpointFormatProblem } from '../integrity/checkpoint.js';
import { syncDirectory } from './signing-key-files.js';

/** A checkpoint as read back, with the file it came from. */
export interface LoadedCheckpoint {
  readonly file: string;
  readonly checkpoint: Checkpoint;
}

/** The text of a checkpoint file and of a webhook's body: the checkpoint as indented JSON. */
export function checkpointJson(checkpoint: Checkpoint): string {
  return `${JSON.stringify(checkpoint, null, 2)}\n`;
}

/**
 * Writes a checkpoint to `dir` (created when missing) as {@link checkpointFileName} and resolves
 * with its path. The file appears whole or not at all, and never replaces another: the text is
 * written and flushed under a temporary name, then hard-linked to its own name (which fails when
 * that exists), and the directory is flushed.
 *
 * @throws Error with code `EEXIST` when a file of that name exists already.
 */
export async function writeCheckpointFile(dir: string, checkpoint: Checkpoint): Promise<string> {
  const directory = resolve(dir);
  await mkdir(directory, { recursive: true });
  const name = checkpointFileName(checkpoint);
  const path = join(directory, name);
  const temporary = join(directory, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(temporary, 'wx', 0o644);
  try {
    try {
      await file.writeFile(checkpointJson(checkpoint), 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await link(temporary, path).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'EEXIST'
        ? Object.assign(new Error(`${path} already exists; a checkpoint is never overwritten`), {
            code: 'EEXIST',
            cause: error,
          })
        : error;
    });
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
  await syncDirectory(directory);
  return path;
}

/**
 * Reads the checkpoint in a file, or every `*.json` file directly in a directory (none is fine),
 * lowest `seq` first (then the earliest issued). Only their form is checked here; their
 * signatures and heads are checked against the chain by `checkCheckpointAgainstChain`.
 *
 * @throws ActivityLogError `CHECKPOINT_INVALID` naming the file when one cannot be read, is not
 *   JSON or is not a checkpoint.
 */
export async function loadCheckpoints(fileOrDir: string): Promise<readonly LoadedCheckpoint[]> {
  const path = resolve(fileOrDir);
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (error) {
    throw invalid(path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
  }
  const files = isDirectory
    ? (await readdir(path, { withFileTypes: true }))
        .filter((entry) => entry.isFile() && entry.name.endsWith('.json') && !entry.name.startsWith('.'))
        .map((entry) => join(path, entry.name))
    : [path];
  const loaded = await Promise.all(files.map(loadCheckpointFile));
  return Object.freeze(
    loaded.sort(
      (a, b) =>
        a.checkpoint.body.seq - b.checkpoint.body.seq ||
        a.checkpoint.body.issued_at.localeCompare(b.checkpoint.body.issued_at) ||
        a.file.localeCompare(b.file),
    ),
  );
}

/** What {@link findAnchoringCheckpoint} found in a checkpoint directory for one table. */
export interface AnchoringCheckpoint {
  /** The first checkpoint signing seal `seq` or a later one, or null when there is none. */
  readonly checkpoint: LoadedCheckpoint | null;
  /** The checkpoint of the table signing the highest `seq`, or null when the directory has none of it. */
  readonly newest: LoadedCheckpoint | null;
}

const CHECKPOINT_FILE_NAME = /^(.+)-(\d{12})-\d{8}T\d{9}Z\.json$/;

/**
 * The checkpoint that anchors seal `seq` of `table` with the shortest chain: the one of lowest
 * `seq` at or after it, among the files of `dir` named as {@link writeCheckpointFile} names them
 * (so only that file is read). A file that is not a checkpoint of the table is passed over; a
 * directory that does not exist holds none.
 */
export async function findAnchoringCheckpoint(
  dir: string,
  table: string,
  seq: number,
): Promise<AnchoringCheckpoint> {
  const directory = resolve(dir);
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { checkpoint: null, newest: null };
    throw error;
  }
  const safeTable = table.replace(/[^A-Za-z0-9_]/g, '_');
  const candidates = names
    .map((name) => ({ name, match: CHECKPOINT_FILE_NAME.exec(name) }))
    .filter(({ match }) => match !== null && match[1] === safeTable)
    .map(({ name, match }) => ({ name, seq: Number(match![2]) }))
    .sort((a, b) => a.seq - b.seq || a.name.localeCompare(b.name));
  let newest: LoadedCheckpoint | null = null;
  for (let i = candidates.length - 1; i >= 0 && newest === null; i--) {
    newest = await loadIfCheckpointOf(join(directory, candidates[i]!.name), table);
  }
  for (const candidate of candidates) {
    if (candidate.seq < seq) continue;
    const loaded = await loadIfCheckpointOf(join(directory, candidate.name), table);
    if (loaded !== null && loaded.checkpoint.body.seq >= seq) return { checkpoint: loaded, newest };
  }
  return { checkpoint: null, newest };
}

async function loadIfCheckpointOf(file: string, table: string): Promise<LoadedCheckpoint | null> {
  try {
    const loaded = await loadCheckpointFile(file);
    return loaded.checkpoint.body.table === table ? loaded : null;
  } catch (error) {
    if (error instanceof ActivityLogError && error.code === 'CHECKPOINT_INVALID') return null;
    throw error;
  }
}

async function loadCheckpointFile(file: string): Promise<LoadedCheckpoint> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw invalid(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalid(file, `is not JSON (${(error as Error).message})`, error);
  }
  const problem = checkpointFormatProblem(value);
  if (problem !== null) throw invalid(file, `is not a checkpoint: ${problem}`);
  return Object.freeze({ file, checkpoint: value as Checkpoint });
}

function invalid(file: string, what: string, cause?: unknown): ActivityLogError {
  return new ActivityLogError('CHECKPOINT_INVALID', `checkpoint file ${file} ${what}`, {
    field: file,
    ...(cause === undefined ? {} : { cause }),
  });
}
