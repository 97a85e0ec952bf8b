import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { wholeNumber } from '../../config/setting.js';
import { ActivityLogError } from '../../core/errors.js';
import { checkErasableFields } from '../../integrity/activity-leaf.js';
import { type ChainSeal, checkCheckpointAgainstChain } from '../../integrity/checkpoint-check.js';
import {
  type ChainProblem,
  type ChainReport,
  type HeadCheck,
  type SealGroup,
  verifyChain,
} from '../../integrity/verify-chain.js';
import { type LoadedCheckpoint, loadCheckpoints } from '../../runtime/checkpoint-files.js';
import { readVerificationKey } from '../../runtime/signing-key-files.js';
import type { PrunedWatermark } from '../../store/seal-pruning.js';
import { openSealReader, type SealReader } from '../../store/seal-reader.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { formatCount } from './prune.js';

interface VerifyFlags {
  readonly fromSeq?: string;
  readonly json?: boolean;
  readonly checkpoint?: readonly string[];
  readonly publicKey?: string;
}

/** The exit code when the chain is not intact; usage errors exit 2 as everywhere. */
export const EXIT_NOT_INTACT = 1;
/** Progress on stderr at most this often. */
const PROGRESS_INTERVAL_MS = 2000;

/**
 * `activity-log verify`: recomputes every sealed row's leaf, every seal's root and hash and every
 * link of the chain, and reports the first problems. Exit 0 intact, 1 not, 2 usage.
 */
export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description('check the seal chain and every sealed row against it (exit 0 intact, 1 not)')
    .option('--from-seq <n>', 'start at this seal (default: 1, the whole chain)')
    .option(
      '--checkpoint <file|dir>',
      'also check the chain against signed checkpoints: a checkpoint file or a directory of them (repeatable)',
      (value: string, previous: readonly string[] | undefined) => [...(previous ?? []), value],
    )
    .option(
      '--public-key <path>',
      'the key checkpoints are checked with (public or private key PEM; default ACTIVITY_LOG_SIGNING_KEY)',
    )
    .option('--json', 'print one JSON report')
    .action(async (flags: VerifyFlags) => {
      const fromSeq =
        optionalWholeNumber('--from-seq', flags.fromSeq, wholeNumber(1, Number.MAX_SAFE_INTEGER)) ?? 1;
      const config = loadConfig();
      const checkpoints = await loadAllCheckpoints(flags.checkpoint ?? []);
      let publicKeyPem: string | null = null;
      if (flags.checkpoint !== undefined) {
        const keyPath = flags.publicKey ?? config.signingKeyPath;
        if (keyPath === null || keyPath === undefined) {
          throw new ActivityLogError(
            'CLI_USAGE',
            'no key to check checkpoints with: pass --public-key=PATH or set ACTIVITY_LOG_SIGNING_KEY',
            { field: '--public-key' },
          );
        }
        publicKeyPem = await readVerificationKey(
          keyPath,
          flags.publicKey === undefined ? 'ACTIVITY_LOG_SIGNING_KEY' : '--public-key',
        );
      } else if (flags.publicKey !== undefined) {
        throw new ActivityLogError('CLI_USAGE', '--public-key is for --checkpoint, which is not given', {
          field: '--public-key',
        });
      }
      const reader = openSealReader(config.database);
      const progress = progressLine();
      let report: ChainReport;
      try {
        const { watermark, partlyPruned } = await reader.pruned();
        // Seals pruned by retention are not checked: the chain starts after them, at their hash.
        const startSeq = Math.max(fromSeq, (watermark?.seq ?? 0) + 1);
        const anchor =
          startSeq > 1 && startSeq - 1 !== watermark?.seq ? await reader.seal(startSeq - 1) : null;
        const kept = new SealsAtCheckpoints(checkpoints, startSeq, watermark);
        await kept.readBelow(reader);
        report = await verifyChain(kept.watch(reader.groups(startSeq)), {
          fromSeq: startSeq,
          anchor,
          pruned: watermark,
          partlyPruned,
          erasableFields: checkErasableFields(config.database.erasableFields),
          unsealedRows: await reader.countUnsealed(),
          onProgress: progress.report,
          ...(publicKeyPem === null
            ? {}
            : {
                checkHead: checkpointHeadCheck(
                  checkpoints,
                  config.database.table,
                  publicKeyPem,
                  kept,
                  anchor?.seq ?? watermark?.seq ?? 0,
                  watermark?.seq ?? 0,
                ),
              }),
        });
      } finally {
        progress.end();
        await reader.close();
      }
      process.stdout.write(flags.json === true ? `${JSON.stringify(report)}\n` : describeReport(report));
      if (!report.intact) process.exitCode = EXIT_NOT_INTACT;
    });
}

/** The report for people: one line of outcome, the problems, and the unsealed rows. */
export function describeReport(report: ChainReport): string {
  const range =
    report.head === null
      ? `no seals from seal ${report.fromSeq} on`
      : `seals ${report.fromSeq}…${report.head.seq} (${formatCount(report.seals)} seals, ${formatCount(report.rows)} rows)`;
  const lines = [`${report.intact ? 'intact' : 'NOT INTACT'}: ${range}`];
  if (report.pruned !== null) {
    lines.push(
      `pruned: seals 1…${report.pruned.toSeq} (${formatCount(report.pruned.rows)} rows) removed by retention, not checked; the chain is checked from seal ${report.pruned.toSeq + 1}, linked to seal ${report.pruned.toSeq}'s hash`,
    );
  }
  if (report.partlyPrunedSeals > 0) {
    lines.push(
      `${formatCount(report.partlyPrunedSeals)} seals lost rows with a dropped partition: their links and their remaining rows' commitments are checked, not their root`,
    );
  }
  for (const problem of report.problems) lines.push(`  ${problem.message}`);
  if (report.moreProblems > 0) lines.push(`  … and ${formatCount(report.moreProblems)} more problems`);
  if (report.head !== null) lines.push(`head: seal ${report.head.seq}, hash ${report.head.hash}`);
  if (report.unsealedRows > 0) {
    lines.push(
      `${formatCount(report.unsealedRows)} rows not sealed yet (stored before sealing was on; activity-log seal --backfill seals them)`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Every checkpoint in the files and directories given, lowest `seq` first. */
async function loadAllCheckpoints(paths: readonly string[]): Promise<readonly LoadedCheckpoint[]> {
  const loaded = (await Promise.all(paths.map(loadCheckpoints))).flat();
  return loaded.sort((a, b) => a.checkpoint.body.seq - b.checkpoint.body.seq);
}

/**
 * The seals at the checkpoints' `seq`s, kept while the chain streams past (so memory holds one
 * seal per checkpoint, however long the chain): their hash and, from seal 1, the rows seals
 * 1…`seq` seal. Checkpoints below `--from-seq` get their seal read on its own, without a row total.
 */
class SealsAtCheckpoints {
  readonly #wanted: ReadonlySet<number>;
  readonly #fromSeq: number;
  readonly #seals = new Map<number, ChainSeal>();
  readonly #watermark: PrunedWatermark | null;

  constructor(checkpoints: readonly LoadedCheckpoint[], fromSeq: number, watermark: PrunedWatermark | null) {
    this.#wanted = new Set(checkpoints.map(({ checkpoint }) => checkpoint.body.seq));
    this.#fromSeq = fromSeq;
    this.#watermark = watermark;
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

function progressLine(): { report: (rows: number, seals: number) => void; end: () => void } {
  const tty = process.stderr.isTTY === true;
  let last = Date.now();
  let drawn = false;
  return {
    report(rows, seals) {
      const now = Date.now();
      if (now - last < PROGRESS_INTERVAL_MS) return;
      last = now;
      const line = `verified ${formatCount(rows)} rows in ${formatCount(seals)} seals so far`;
      process.stderr.write(tty ? `\r\u001b[K${line}` : `${line}\n`);
      drawn = tty;
    },
    end() {
      if (drawn) process.stderr.write('\r\u001b[K');
    },
  };
}
