import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { wholeNumber } from '../../config/setting.js';
import { ActivityLogError } from '../../core/errors.js';
import type { MigrateResult } from '../../store/activity-store.js';
import { MAX_PRUNE_CHUNK } from '../../store/activity-store.js';
import { createStore } from '../../store/create-store.js';
import { convertToPartitioned } from '../../store/partition-conversion.js';
import { describeDatabase } from '../describe-database.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { ignoredPartitionNote } from '../partition-upkeep.js';
import { formatCount, progressReporter } from './prune.js';

interface MigrateFlags {
  readonly toPartitioned?: boolean;
  readonly dropOld?: boolean;
  readonly chunk?: string;
}

/** Rows per INSERT … SELECT of `--to-partitioned`. */
const DEFAULT_COPY_CHUNK = 5000;

/** `activity-log migrate`: creates or upgrades the table and its indexes; safe to run again. */
export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('create or upgrade the activity table and its indexes (idempotent)')
    .option(
      '--to-partitioned',
      'convert the existing table to one partitioned by ACTIVITY_LOG_PARTITION, keeping the old as <table>_unpartitioned',
    )
    .option('--drop-old', 'with --to-partitioned: drop <table>_unpartitioned once the new table is in place')
    .option('--chunk <n>', `with --to-partitioned: rows per copy statement (default: ${DEFAULT_COPY_CHUNK})`)
    .action(async (flags: MigrateFlags) => {
      const chunkSize =
        optionalWholeNumber('--chunk', flags.chunk, wholeNumber(1, MAX_PRUNE_CHUNK)) ?? DEFAULT_COPY_CHUNK;
      if ((flags.dropOld === true || flags.chunk !== undefined) && flags.toPartitioned !== true) {
        throw new ActivityLogError(
          'CLI_USAGE',
          `${flags.dropOld === true ? '--drop-old' : '--chunk'} is for --to-partitioned, which is not given`,
          {
            field: flags.dropOld === true ? '--drop-old' : '--chunk',
          },
        );
      }
      const config = loadConfig();
      const note = ignoredPartitionNote(config.database);
      if (note !== null) process.stderr.write(`${note}\n`);
      const store = createStore(config.database);
      try {
        const result = await store.migrate();
        process.stdout.write(
          `${migrationLine(config.database.table, describeDatabase(config.database), result)}\n`,
        );
      } finally {
        await store.close();
      }
      if (flags.toPartitioned !== true) return;
      const progress = progressReporter('copied');
      const started = performance.now();
      let conversion: Awaited<ReturnType<typeof convertToPartitioned>>;
      try {
        conversion = await convertToPartitioned(config.database, {
          dropOld: flags.dropOld === true,
          chunkSize,
          onProgress: progress.report,
        });
      } finally {
        progress.end();
      }
      const { table } = config.database;
      if (!conversion.converted) {
        process.stdout.write(`${table} is partitioned already\n`);
        return;
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      process.stdout.write(
        `converted ${table} to a table partitioned by ${config.database.partition}: ${formatCount(conversion.copied)} activities copied in ${seconds} s; ${
          conversion.keptAs === null
            ? 'the old table was dropped'
            : `the old table is kept as ${conversion.keptAs}`
        }\n`,
      );
    });
}

/** `migrated activity_log on sqlite ./x.sqlite: schema version 0 → 1`, or that it was up to date. */
export function migrationLine(table: string, database: string, result: MigrateResult): string {
  return result.from === result.to
    ? `${table} on ${database} is already up to date (schema version ${result.to})`
    : `migrated ${table} on ${database}: schema version ${result.from} → ${result.to}`;
}
