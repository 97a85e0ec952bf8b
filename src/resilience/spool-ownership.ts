import { randomBytes } from 'node:crypto';
import { open, readdir, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMissing, messageOf, spoolError } from './spool-error.js';
import {
  FILE_MODE,
  type ListedSegment,
  ownerFileName,
  ownerOfOwnerFile,
  parseSegmentName,
  segmentFileName,
  syncDirectory,
} from './spool-segment-directory.js';

const OWNER_HEARTBEAT_MS = 10_000;
/** An owner file untouched this long belongs to a process that is gone (or hung) even if its pid is reused. */
const OWNER_STALE_MS = 60_000;

/** Instances alive in this process: a segment with our pid and another instance id is from an earlier run. */
const LIVE_INSTANCES = new Set<string>();

/**
 * Which process owns which segments of a shared spool directory. Each spool instance is an owner
 * (`pid-instance`) that keeps an owner file fresh while it lives; a segment whose owner is dead
 * is claimed by renaming it to the claimant, an atomic step only one claimant wins.
 */
export class SpoolOwnership {
  /** `pid-instance` of this spool. */
  readonly owner: string;
  readonly #instance = randomBytes(4).toString('hex');
  readonly #dir: string;
  readonly #isClosed: () => boolean;
  #ownerFile: string | null = null;
  #heartbeat: NodeJS.Timeout | null = null;

  /** `isClosed` says when this instance stopped counting as a live owner of its own segments. */
  constructor(dir: string, isClosed: () => boolean) {
    this.#dir = dir;
    this.#isClosed = isClosed;
    this.owner = `${process.pid}-${this.#instance}`;
    LIVE_INSTANCES.add(this.#instance);
  }

  /** Creates this instance's owner file and keeps it fresh. Called once, after the directory exists. */
  async start(): Promise<void> {
    const ownerFile = join(this.#dir, ownerFileName(this.owner));
    await (await open(ownerFile, 'w', FILE_MODE)).close();
    this.#ownerFile = ownerFile;
    this.#heartbeat = setInterval(() => {
      const now = new Date();
      // Recreated if someone removed it while this process was stalled past OWNER_STALE_MS.
      utimes(ownerFile, now, now).catch(() =>
        writeFile(ownerFile, '', { mode: FILE_MODE }).catch(() => undefined),
      );
    }, OWNER_HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Whether `owner` is alive: its segments are not replayed by anyone else until it dies. */
  async isAlive(owner: string): Promise<boolean> {
    if (owner === this.owner) return !this.#isClosed();
    const [pidText, instance] = owner.split('-') as [string, string];
    const pid = Number(pidText);
    if (pid === process.pid) {
      if (LIVE_INSTANCES.has(instance)) return true;
      // Not one of ours, but processes in other containers sharing this directory can have our pid
      // (often 1): only a stale owner file says this one is gone.
    } else {
      try {
        process.kill(pid, 0);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
      }
    }
    try {
      const { mtimeMs } = await stat(join(this.#dir, ownerFileName(owner)));
      return Date.now() - mtimeMs < OWNER_STALE_MS;
    } catch {
      return false;
    }
  }

  /**
   * Takes over a segment of a dead owner; resolves with its new name, or null when another
   * process claimed (or replayed) it first.
   *
   * @throws ActivityLogError `SPOOL_FAILED` when it cannot be renamed.
   */
  async claim(segment: ListedSegment): Promise<string | null> {
    const name = segmentFileName(segment.base, this.owner);
    try {
      await rename(join(this.#dir, segment.name), join(this.#dir, name));
    } catch (error) {
      if (isMissing(error)) return null;
      throw spoolError(`could not claim ${segment.name}: ${messageOf(error)}`, error);
    }
    await syncDirectory(this.#dir);
    return name;
  }

  /** Owner files of dead processes whose segments have all been replayed are no longer needed. */
  async removeDeadOwnerFiles(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch {
      return;
    }
    const owners = new Set(
      names.map((name) => parseSegmentName(name)?.owner).filter((owner) => owner !== undefined),
    );
    for (const name of names) {
      const owner = ownerOfOwnerFile(name);
      if (owner === null) continue;
      if (owner === this.owner || owners.has(owner) || (await this.isAlive(owner))) continue;
      await unlink(join(this.#dir, name)).catch(() => undefined);
    }
  }

  /**
   * Stops refreshing the owner file. Done before the last segment is closed, so no late tick
   * recreates the owner file after {@link close} removed it.
   */
  stopHeartbeat(): void {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }

  /** Gives up ownership: what is still spooled is claimed by the next process that replays. */
  async close(): Promise<void> {
    this.stopHeartbeat();
    if (this.#ownerFile !== null) await unlink(this.#ownerFile).catch(() => undefined);
    LIVE_INSTANCES.delete(this.#instance);
  }
}
