import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isActivityLogError } from '../core/errors.js';
import { registerCaptureCommand } from './commands/capture.js';
import { registerCheckpointCommand } from './commands/checkpoint.js';
import { registerEraseCommand } from './commands/erase.js';
import { registerFailedCommand } from './commands/failed.js';
import { registerFlushCommand } from './commands/flush.js';
import { registerKeygenCommand } from './commands/keygen.js';
import { registerMigrateCommand } from './commands/migrate.js';
import { registerPartitionsCommand } from './commands/partitions.js';
import { registerProcessCommand } from './commands/process.js';
import { registerPruneCommand } from './commands/prune.js';
import { registerRestartCommand } from './commands/restart.js';
import { registerRetryCommand } from './commands/retry.js';
import { registerSealCommand } from './commands/seal.js';
import { registerServeCommand } from './commands/serve.js';
import { registerSpoolCommand } from './commands/spool.js';
import { registerStatusCommand } from './commands/status.js';
import { registerVerifyCommand } from './commands/verify.js';
import { registerWorkCommand } from './commands/work.js';

/** Each command lives in `commands/<name>.ts` and joins the CLI with one line here. */
const COMMANDS: readonly ((program: Command) => void)[] = [
  registerMigrateCommand,
  registerServeCommand,
  registerWorkCommand,
  registerRestartCommand,
  registerProcessCommand,
  registerFailedCommand,
  registerRetryCommand,
  registerFlushCommand,
  registerPruneCommand,
  registerPartitionsCommand,
  registerSpoolCommand,
  registerStatusCommand,
  registerKeygenCommand,
  registerCheckpointCommand,
  registerVerifyCommand,
  registerSealCommand,
  registerEraseCommand,
  registerCaptureCommand,
];

/** Exit code for a command line that is wrong (unknown command, bad flag), as opposed to a failure. */
export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;

/**
 * The `activity-log` program. Commander never exits or prints errors itself: {@link main} turns
 * every error into one line on stderr and an exit code.
 */
export function createProgram(): Command {
  const program = new Command('activity-log')
    .description('activity log (audit trail): migrate the table, serve the HTTP API, work the queue, prune')
    .version(packageVersion(), '-V, --version')
    .option('--verbose', 'print stack traces with errors')
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .showSuggestionAfterError(true);
  for (const register of COMMANDS) register(program);
  return program;
}

/**
 * Runs the CLI and resolves with the exit code: 0 on success, 1 when the command failed
 * (configuration, database, queue), 2 when the command line itself is wrong.
 *
 * @param argv as in `process.argv`: the node binary and script first, then the arguments.
 * @example
 * main(process.argv).then((code) => { process.exitCode = code; });
 */
export async function main(argv: string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync(argv, { from: 'node' });
    // Commands that finish with partial failures (e.g. `retry` with unknown ids) set process.exitCode.
    const code = Number(process.exitCode ?? 0);
    return Number.isInteger(code) ? code : EXIT_FAILURE;
  } catch (error) {
    return report(error, program, argv.includes('--verbose'));
  }
}

function report(error: unknown, program: Command, verbose: boolean): number {
  if (error instanceof CommanderError) return reportUsage(error, program);
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`activity-log: ${oneLine(message)}\n`);
  if (verbose) process.stderr.write(`${stackWithCauses(error)}\n`);
  return isActivityLogError(error, 'CLI_USAGE') ? EXIT_USAGE : EXIT_FAILURE;
}

function reportUsage(error: CommanderError, program: Command): number {
  switch (error.code) {
    case 'commander.helpDisplayed':
    case 'commander.version':
      return 0;
    // `help [command]` (exit code 0), or no command at all: the help is already printed.
    case 'commander.help':
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  let message = oneLine(error.message.replace(/^error: /, ''));
  if (error.code === 'commander.unknownCommand') {
    message += `; commands: ${program.commands.map((command) => command.name()).join(', ')}`;
  }
  process.stderr.write(`activity-log: ${message} (see activity-log --help)\n`);
  return EXIT_USAGE;
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}

function stackWithCauses(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    parts.push(current instanceof Error ? (current.stack ?? current.message) : String(current));
    current = current instanceof Error ? current.cause : undefined;
    if (current !== undefined) parts.push('caused by:');
  }
  return parts.join('\n');
}

function packageVersion(): string {
  // src/cli and dist/cli are both two levels below the package root.
  const json = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(json) as { version: string }).version;
}
