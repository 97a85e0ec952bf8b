import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { wholeNumber } from '../../config/setting.js';
import { LIMITS } from '../../core/activity.js';
import { ActivityLogError } from '../../core/errors.js';
import {
  DEFAULT_ERASE_CHUNK,
  type EraseResult,
  type ErasureSelector,
  eraseActivities,
  MAX_ERASE_CHUNK,
} from '../../store/erase.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { formatCount, progressReporter } from './prune.js';

interface EraseFlags {
  readonly causerType?: string;
  readonly causerId?: string;
  readonly subjectType?: string;
  readonly subjectId?: string;
  readonly chunk?: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
}

/** The causer type the erasure's own activity gets when run from the CLI: the OS account. */
export const CLI_CAUSER_TYPE = 'os-user';

/**
 * `activity-log erase`: erases the personal data of one causer's or one subject's activities,
 * keeping every seal intact, in chunks; the erasure is itself logged.
 */
export function registerEraseCommand(program: Command): void {
  program
    .command('erase')
    .description("erase the personal data of a causer's or a subject's activities, keeping the seals intact")
    .option('--causer-type <type>', 'erase the activities this causer type caused (with --causer-id)')
    .option('--causer-id <id>', 'the causer (with --causer-type)')
    .option('--subject-type <type>', 'erase the activities about this subject type (with --subject-id)')
    .option('--subject-id <id>', 'the subject (with --subject-type)')
    .option('--chunk <n>', `rows per transaction (default: ${DEFAULT_ERASE_CHUNK})`)
    .option('--dry-run', 'count what would be erased; change nothing')
    .option('--json', 'print the counts as one JSON object')
    .action(async (flags: EraseFlags) => {
      const selector = selectorOf(flags);
      const chunkSize =
        optionalWholeNumber('--chunk', flags.chunk, wholeNumber(1, MAX_ERASE_CHUNK)) ?? DEFAULT_ERASE_CHUNK;
      const dryRun = flags.dryRun === true;
      const config = loadConfig();
      const progress = progressReporter(dryRun ? 'read' : 'read and erased');
      let result: EraseResult;
      try {
        result = await eraseActivities(config.database, selector, {
          chunkSize,
          dryRun,
          onProgress: progress.report,
          causer: operator(),
        });
      } finally {
        progress.end();
      }
      process.stdout.write(flags.json === true ? `${JSON.stringify(result)}\n` : describeErasure(result));
      // Rows left unerased are a failure to report, not a usage error.
      if (result.altered > 0 || result.notErasable > 0) process.exitCode = 1;
    });
}

/** The one selector pair given, both halves; anything else is a usage error naming the flag. */
export function selectorOf(flags: EraseFlags): ErasureSelector {
  const pairs = (['causer', 'subject'] as const).filter(
    (by) => flags[`${by}Type`] !== undefined || flags[`${by}Id`] !== undefined,
  );
  if (pairs.length === 0) {
    throw new ActivityLogError(
      'CLI_USAGE',
      'erase needs --causer-type and --causer-id, or --subject-type and --subject-id',
      { field: '--causer-type' },
    );
  }
  if (pairs.length > 1) {
    throw new ActivityLogError(
      'CLI_USAGE',
      '--subject-type/--subject-id cannot be combined with --causer-type/--causer-id: erase one causer or one subject at a time',
      { field: '--subject-type' },
    );
  }
  const by = pairs[0]!;
  const type = flagValue(`--${by}-type`, flags[`${by}Type`], `--${by}-id`);
  const id = flagValue(`--${by}-id`, flags[`${by}Id`], `--${by}-type`);
  return { by, type, id };
}

function flagValue(flag: string, value: string | undefined, other: string): string {
  if (value === undefined) {
    throw new ActivityLogError('CLI_USAGE', `${flag} is required with ${other}`, { field: flag });
  }
  if (value.length === 0 || value.length > LIMITS.nameChars) {
    throw new ActivityLogError(
      'CLI_USAGE',
      `${flag} must be 1 to ${LIMITS.nameChars} characters (got ${value.length})`,
      { field: flag },
    );
  }
  return value;
}

/** The OS account running the CLI, when the system can say. */
function operator(): { type: string; id: string } | null {
  try {
    const { username } = userInfo();
    return username === '' ? null : { type: CLI_CAUSER_TYPE, id: username };
  } catch {
    return null;
  }
}

/** The counts for people: what was erased, what had been already, what could not be. */
export function describeErasure(result: EraseResult): string {
  const rows = (n: number) => `${formatCount(n)} ${n === 1 ? 'activity' : 'activities'}`;
  const lines = [
    `${result.dryRun ? 'would erase' : 'erased'} ${rows(result.erased)} of ${formatCount(result.matched)} matched (${formatCount(result.sealed)} sealed, keeping commitments), ${formatCount(result.alreadyErased)} already erased`,
  ];
  if (result.notErasable > 0) {
    lines.push(
      `${rows(result.notErasable)} not erased: their seal commits to no erasable field, so erasing would break it`,
    );
  }
  if (result.altered > 0) {
    lines.push(
      `${rows(result.altered)} not erased: their seal_salt or seal_commitments were altered (${result.alteredIds.join(', ')}); run verify`,
    );
  }
  if (result.activityId !== null) lines.push(`logged as activity ${result.activityId}`);
  return `${lines.join('\n')}\n`;
}
