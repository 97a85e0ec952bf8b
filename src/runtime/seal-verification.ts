import { availableParallelism } from 'node:os';
import type { DatabaseConfig } from '../config/config.js';
import { checkErasableFields } from '../integrity/activity-leaf.js';
import { type ChainSeal, checkCheckpointAgainstChain } from '../integrity/checkpoint-check.js';
import {
  type ChainProblem,
  type ChainReport,
  type HeadCheck,
  type SealGroup,
  verifyChain,
} from '../integrity/verify-chain.js';
import type { PrunedWatermark } from '../store/seal-pruning.js';
import { openSealReader, type SealReader } from '../store/seal-reader.js';
import { type LoadedCheckpoint, loadCheckpoints } from './checkpoint-files.js';

export interface SealVerificationOptions {
  /** The first seal to check (default 1, the whole chain). */
  readonly fromSeq?: number;
  /** Signed checkpoints to hold the chain against, lowest `seq` first (see {@link loadAllCheckpoints}). */
  readonly checkpoints?: readonly LoadedCheckpoint[];
  /** The key the checkpoints are checked with; without it they are not checked. */
  readonly publicKeyPem?: string | null;
  /** Called after each seal with the rows and seals checked so far. */
  readonly onProgress?: (rows: number, seals: number) => void;
  /** Stops the verification between two seals: it rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * Worker threads that hash the rows while this thread reads them (default
   * {@link defaultVerifyThreads}, from {@link ROWS_BEFORE_THREADS} rows on); 0 hashes them here.
   * Given, the threads start with the first row.
   */
  readonly threads?: number;
  /** At most this many default worker threads (without {@link threads}). */
  readonly maxThreads?: number;
}

/** Rows checked in this thread before the default worker threads start: a small chain needs none. */
export const ROWS_BEFORE_THREADS = 20_000;

/** One worker thread per CPU but the one the reading thread takes; none on a single CPU. */
export function defaultVerifyThreads(): number {
  return availableParallelism() - 1;
}

/**
 * What `activity-log verify` and `serve`'s scheduled verification run: streams the seal chain of
 * the configured table and every row that claims a seal, recomputes leaves, roots, hashes and
 * links, and — with checkpoints and a key — holds the chain against each checkpoint. Opens a seal
 * reader of its own and closes it.
 *
 * @example
 * const report = await verifySealChain(config.database, { checkpoints, publicKeyPem });
 * if (!report.intact) console.error(report.problems[0]?.message);
 */
export async function verifySealChain(
  database: DatabaseConfig,
  options: SealVerificationOptions = {},
): Promise<ChainReport> {
  const fromSeq = options.fromSeq ?? 1;
  const checkpoints = options.checkpoints ?? [];
  const publicKeyPem = options.publicKeyPem ?? null;
  const reader = openSealReader(database);
  try {
    const { watermark, partlyPruned } = await reader.pruned();
    // Seals pruned by retention are not checked: the chain starts after them, at their hash.
    const startSeq = Math.max(fromSeq, (watermark?.seq ?? 0) + 1);
    const anchor = startSeq > 1 && startSeq - 1 !== watermark?.seq ? await reader.seal(startSeq - 1) : null;
    const kept = new SealsAtCheckpoints(checkpoints, startSeq, watermark, options.signal);
    await kept.readBelow(reader);
    return await verifyChain(kept.watch(reader.groups(startSeq)), {
      fromSeq: startSeq,
      anchor,
      pruned: watermark,
      partlyPruned,
      erasableFields: checkErasableFields(database.erasableFields),
      unsealedRows: await reader.countUnsealed(),
      threads:
        options.threads ?? Math.min(defaultVerifyThreads(), options.maxThreads ?? Number.POSITIVE_INFINITY),
      threadsAfterRows: options.threads === undefined ? ROWS_BEFORE_THREADS : 0,
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      ...(publicKeyPem === null
        ? {}
        : {
            checkHead: checkpointHeadCheck(
              checkpoints,
              database.table,
              publicKeyPem,
              kept,
              anchor?.seq ?? watermark?.seq ?? 0,
              watermark?.seq ?? 0,
            ),
          }),
    });
  } finally {
    await reader.close();
  }
}

/** Every checkpoint in the files and directories given, lowest `seq` first. */
export async function loadAllCheckpoints(paths: readonly string[]): Promise<readonly LoadedCheckpoint[]> {
  const loaded = (await Promise.all(paths.map(loadCheckpoints))).flat();
  return loaded.sort((a, b) => a.checkpoint.body.seq - b.checkpoint.body.seq);
}

/**
 * The seals at the checkpoints' `seq`s, kept while the chain streams past (so memory holds one
 * seal per checkpoint, however long the chain): their hash and, from seal 1, the rows seals
 * 1…`seq` seal. Checkpoints below `fromSeq` get their seal read on its own, without a row total.
 */
class SealsAtCheckpoints {
  readonly #wanted: ReadonlySet<number>;
  readonly #fromSeq: number;
  readonly #seals = new Map<number, ChainSeal>();
  readonly #watermark: PrunedWatermark | null;
  readonly #signal: AbortSignal | undefined;

  constructor(
    checkpoints: readonly LoadedCheckpoint[],
    fromSeq: number,
    watermark: PrunedWatermark | null,
    signal?: AbortSignal,
  ) {
    this.#wanted = new Set(checkpoints.map(({ checkpoint }) => checkpoint.body.seq));
    this.#fromSeq = fromSeq;
    this.#watermark = watermark;
    this.#signal = signal;
  }

  /** The chain is read from the seal after the pruned ones, so row totals still count from seal 1. */
  get #fromStart(): boolean {
    return this.#fromSeq === 1 || this.#fromSeq === (this.#watermark?.seq ?? -1) + 1;
  }

  async readBelow(reader: SealReader): Promise<void> {
    for (const seq of this.#wanted) {
      if (seq >= this.#fromSeq) continue;
      if (seq === this.#watermark?.seq) {
        this.#seals.set(seq, { hash: this.#watermark.hash, totalRows: this.#watermark.totalRows });
        continue;
      }
      const seal = await reader.seal(seq);
      if (seal !== null) this.#seals.set(seq, { hash: seal.hash });
    }
  }

  async *watch(groups: AsyncIterable<SealGroup>): AsyncGenerator<SealGroup> {
    let totalRows = this.#fromStart && this.#fromSeq > 1 ? (this.#watermark?.totalRows ?? 0) : 0;
    for await (const group of groups) {
      this.#signal?.throwIfAborted();
      if (group.seal !== null) {
        totalRows += group.seal.row_count;
        if (this.#wanted.has(group.seq)) {
          this.#seals.set(group.seq, {
            hash: group.seal.hash,
            totalRows: this.#fromStart ? totalRows : undefined,
          });
        }
      }
      yield group;
    }
  }

  sealAt(seq: number): ChainSeal | undefined {
    return this.#seals.get(seq);
  }
}

/** Holds every checkpoint against the verified chain; each mismatch is one problem. */
function checkpointHeadCheck(
  checkpoints: readonly LoadedCheckpoint[],
  table: string,
  publicKeyPem: string,
  seals: SealsAtCheckpoints,
  anchorSeq: number,
  prunedToSeq: number,
): HeadCheck {
  return (head) => {
    const headSeq = head?.seq ?? anchorSeq;
    const problems: ChainProblem[] = [];
    for (const { file, checkpoint } of checkpoints) {
      const mismatch = checkCheckpointAgainstChain(
        checkpoint,
        { table, headSeq, prunedToSeq, sealAt: (seq) => seals.sealAt(seq) },
        publicKeyPem,
      );
      if (mismatch === null) continue;
      problems.push({
        kind: mismatch.kind,
        seq: mismatch.seq ?? checkpoint.body.seq,
        message: `${mismatch.message} (${file})`,
        checkpoint: file,
      });
    }
    return problems;
  };
}
