import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { wholeNumber } from '../../config/setting.js';
import { ActivityLogError } from '../../core/errors.js';
import { backfillSeals, DEFAULT_BACKFILL_CHUNK, MAX_BACKFILL_CHUNK } from '../../store/seal-backfill.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { formatCount } from './prune.js';

interface SealFlags {
  readonly backfill?: boolean;
  readonly chunk?: string;
}

/** `activity-log seal --backfill`: seals the rows stored before sealing was on, in chunks. */
export function registerSealCommand(program: Command): void {
  program
    .command('seal')
    .description('seal rows no seal covers yet (stored before ACTIVITY_LOG_SEAL=on), one seal per chunk')
    .option('--backfill', 'seal every unsealed row, oldest id first')
    .option('--chunk <n>', `rows per seal (default: ${DEFAULT_BACKFILL_CHUNK})`)
    .action(async (flags: SealFlags) => {
      if (flags.backfill !== true) {
        throw new ActivityLogError('CLI_USAGE', 'seal needs --backfill (the only thing it does so far)', {
          field: '--backfill',
        });
      }
      const chunkSize =
        optionalWholeNumber('--chunk', flags.chunk, wholeNumber(1, MAX_BACKFILL_CHUNK)) ??
        DEFAULT_BACKFILL_CHUNK;
      const config = loadConfig();
      let chunks = 0;
      const result = await backfillSeals(config.database, {
        chunkSize,
        onProgress: (rows) => {
          chunks++;
          const step = 10 ** Math.max(0, Math.floor(Math.log10(chunks)));
          if (chunks <= 10 || chunks % step === 0)
            process.stderr.write(`sealed ${formatCount(rows)} rows so far\n`);
        },
      });
      process.stdout.write(
        result.rows === 0
          ? 'no unsealed rows: nothing to seal\n'
          : `sealed ${formatCount(result.rows)} rows in ${formatCount(result.seals)} seals\n`,
      );
    });
}
