import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { wholeNumber } from '../../config/setting.js';
import { ActivityLogError } from '../../core/errors.js';
import type { ChainReport } from '../../integrity/verify-chain.js';
import { loadAllCheckpoints, verifySealChain } from '../../runtime/seal-verification.js';
import { readVerificationKey } from '../../runtime/signing-key-files.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { formatCount } from './prune.js';

interface VerifyFlags {
  readonly fromSeq?: string;
  readonly json?: boolean;
  readonly checkpoint?: readonly string[];
  readonly publicKey?: string;
  readonly threads?: string;
}

/** The exit code when the chain is not intact; usage errors exit 2 as everywhere. */
export const EXIT_NOT_INTACT = 1;
/** Most worker threads `--threads` takes. */
const MAX_THREADS = 64;
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
    .option(
      '--threads <n>',
      'worker threads that hash the rows while they are read (default: one per CPU but one, for chains over 20,000 rows; 0: none)',
    )
    .option('--json', 'print one JSON report')
    .action(async (flags: VerifyFlags) => {
      const fromSeq =
        optionalWholeNumber('--from-seq', flags.fromSeq, wholeNumber(1, Number.MAX_SAFE_INTEGER)) ?? 1;
      const threads = optionalWholeNumber('--threads', flags.threads, wholeNumber(0, MAX_THREADS));
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
      const progress = progressLine();
      let report: ChainReport;
      try {
        report = await verifySealChain(config.database, {
          fromSeq,
          checkpoints,
          publicKeyPem,
          onProgress: progress.report,
          ...(threads === undefined ? {} : { threads }),
        });
      } finally {
        progress.end();
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
