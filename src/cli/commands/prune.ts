import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { SETTINGS } from '../../config/config-settings.js';
import { wholeNumber } from '../../config/setting.js';
import { LIMITS } from '../../core/activity.js';
import { ActivityLogError } from '../../core/errors.js';
import { MAX_PRUNE_CHUNK } from '../../store/activity-store.js';
import { createStore } from '../../store/create-store.js';
import { optionalWholeNumber } from '../optional-whole-number.js';

interface PruneFlags {
  readonly days?: string;
  readonly logName?: string;
  readonly chunk?: string;
  readonly dryRun?: boolean;
}

const DAY_MS = 86_400_000;
/** Rows per DELETE: small enough that no statement holds locks for long on a busy table. */
export const DEFAULT_PRUNE_CHUNK = 1000;

/** `activity-log prune`: deletes old activities in chunks, so no statement holds locks for long. */
export function registerPruneCommand(program: Command): void {
  program
    .command('prune')
    .description(
      'delete old activities: partitions wholly past the cutoff dropped, the rest in chunks; sealed rows by whole seals',
    )
    .option(
      '--days <n>',
      'delete activities older than this many days (default: ACTIVITY_LOG_RETENTION_DAYS)',
    )
    .option('--log-name <name>', 'only activities of this log')
    .option('--chunk <n>', `rows per DELETE statement (default: ${DEFAULT_PRUNE_CHUNK})`)
    .option('--dry-run', 'count what would be deleted; delete nothing')
    .action(async (flags: PruneFlags) => {
      const days = optionalWholeNumber('--days', flags.days, SETTINGS.retentionDays.schema);
      const chunkSize =
        optionalWholeNumber('--chunk', flags.chunk, wholeNumber(1, MAX_PRUNE_CHUNK)) ?? DEFAULT_PRUNE_CHUNK;
      const logName = logNameFlag(flags.logName);
      const dryRun = flags.dryRun === true;
      const config = loadConfig();
      const retentionDays = days ?? config.retentionDays;
      const before = new Date(Date.now() - retentionDays * DAY_MS);
      const progress = progressReporter(dryRun ? 'counted' : 'deleted');
      const store = createStore(config.database);
      const partitions: { name: string; rows: number }[] = [];
      let seals: { prunedToSeq: number; keptRows: number } | null = null;
      let total: number;
      try {
        total = await store.prune({
          before,
          logName,
          chunkSize,
          dryRun,
          onProgress: progress.report,
          onPartition: (partition) => {
            progress.end();
            partitions.push(partition);
            process.stderr.write(
              `${dryRun ? 'would drop' : 'dropped'} partition ${partition.name} (${formatCount(partition.rows)} ${partition.rows === 1 ? 'activity' : 'activities'})\n`,
            );
          },
          onSeals: (result) => {
            seals = result;
          },
        });
      } finally {
        progress.end();
        await store.close();
      }
      const scope = logName === undefined ? '' : ` in log ${JSON.stringify(logName)}`;
      const verb = dryRun ? 'would delete' : 'deleted';
      const dropped =
        partitions.length === 0
          ? ''
          : `, ${partitions.length} partition${partitions.length === 1 ? '' : 's'} ${dryRun ? 'to drop' : 'dropped'} whole`;
      process.stdout.write(
        `${verb} ${formatCount(total)} ${total === 1 ? 'activity' : 'activities'}${scope} older than ${formatCutoff(before)} (${retentionDays} day${retentionDays === 1 ? '' : 's'})${dropped}\n`,
      );
      if (seals !== null) process.stdout.write(sealsLine(seals, dryRun, logName !== undefined));
    });
}

/** What a prune did to the seal chain: the seals pruned whole, the old rows kept for their seal. */
function sealsLine(
  seals: { readonly prunedToSeq: number; readonly keptRows: number },
  dryRun: boolean,
  byLogName: boolean,
): string {
  const parts: string[] = [];
  if (!byLogName && seals.prunedToSeq > 0) {
    parts.push(
      `seals 1…${seals.prunedToSeq} ${dryRun ? 'would be' : 'are'} pruned (verify starts after them)`,
    );
  }
  if (seals.keptRows > 0) {
    parts.push(
      byLogName
        ? `${formatCount(seals.keptRows)} sealed activities kept: a seal is pruned whole, never by log name`
        : `${formatCount(seals.keptRows)} older activities kept: their seals also hold newer ones`,
    );
  }
  return parts.length === 0 ? '' : `${parts.join('; ')}\n`;
}

function logNameFlag(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.length === 0 || value.length > LIMITS.nameChars) {
    throw new ActivityLogError(
      'CLI_USAGE',
      `--log-name must be 1 to ${LIMITS.nameChars} characters (got ${value.length})`,
      { field: '--log-name' },
    );
  }
  return value;
}

/** `12,345`: totals are read by people, often in the millions. */
export function formatCount(count: number): string {
  return count.toLocaleString('en-US');
}

/** `2024-11-28 17:40 UTC`: precise enough to say which rows go, short enough to read. */
function formatCutoff(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * Progress on stderr, so stdout carries only the total. On a terminal one line updates in place;
 * in a log file every chunk of the first ten gets a line, then every tenth, every hundredth…
 * so a prune of millions of rows writes tens of lines, not thousands.
 */
export function progressReporter(verb: string): { report: (soFar: number) => void; end: () => void } {
  const tty = process.stderr.isTTY === true;
  let chunks = 0;
  let drawn = false;
  return {
    report(soFar) {
      chunks++;
      const line = `${verb} ${formatCount(soFar)} so far (chunk ${formatCount(chunks)})`;
      if (tty) {
        process.stderr.write(`\r\u001b[K${line}`);
        drawn = true;
        return;
      }
      const step = 10 ** Math.max(0, Math.floor(Math.log10(chunks)));
      if (chunks <= 10 || chunks % step === 0) process.stderr.write(`${line}\n`);
    },
    end() {
      if (drawn) process.stderr.write('\r\u001b[K');
    },
  };
}
