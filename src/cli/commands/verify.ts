import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { wholeNumber } from '../../config/setting.js';
import { checkErasableFields } from '../../integrity/activity-leaf.js';
import { type ChainReport, verifyChain } from '../../integrity/verify-chain.js';
import { openSealReader } from '../../store/seal-reader.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { formatCount } from './prune.js';

interface VerifyFlags {
  readonly fromSeq?: string;
  readonly json?: boolean;
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
    .option('--json', 'print one JSON report')
    .action(async (flags: VerifyFlags) => {
      const fromSeq =
        optionalWholeNumber('--from-seq', flags.fromSeq, wholeNumber(1, Number.MAX_SAFE_INTEGER)) ?? 1;
      const config = loadConfig();
      const reader = openSealReader(config.database);
      const progress = progressLine();
      let report: ChainReport;
      try {
        report = await verifyChain(reader.groups(fromSeq), {
          fromSeq,
          anchor: fromSeq > 1 ? await reader.seal(fromSeq - 1) : null,
          erasableFields: checkErasableFields(config.database.erasableFields),
          unsealedRows: await reader.countUnsealed(),
          onProgress: progress.report,
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
