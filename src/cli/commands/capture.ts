import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { ActivityLogError } from '../../core/errors.js';
import type { CaptureJson } from '../../metrics/capture-figures.js';
import { CaptureLagAlert } from '../../runtime/capture-lag-alert.js';
import {
  type CaptureFrom,
  type CaptureStatus,
  captureStatus,
  dropCapture,
  runCapture,
  setUpCapture,
} from '../../runtime/run-capture.js';
import { watchStopSignals } from '../../runtime/stop-signals.js';

interface CaptureFlags {
  readonly setup?: boolean;
  readonly status?: boolean;
  readonly dropSlot?: boolean;
  readonly from?: string;
  readonly json?: boolean;
}

/**
 * `activity-log capture`: every row change of the application's database (ACTIVITY_LOG_CAPTURE_SOURCE)
 * becomes an activity, through the configured delivery. `--setup`, `--status` and `--drop-slot`
 * manage the publication and replication slot it reads through.
 */
export function registerCaptureCommand(program: Command): void {
  program
    .command('capture')
    .description(
      'turn every row change of the application database (ACTIVITY_LOG_CAPTURE_SOURCE) into an activity; --setup, --status, --drop-slot manage its slot',
    )
    .option(
      '--setup',
      'set the tables to REPLICA IDENTITY FULL, create the publication and the slot; prints each statement',
    )
    .option('--status', 'show the slot, its lag, the captured tables and the saved position')
    .option(
      '--drop-slot',
      'drop the replication slot and the publication (the server releases the WAL kept for it)',
    )
    .option(
      '--from <where>',
      'now (skip what the slot kept) or earliest (everything the slot kept); default: the saved position',
    )
    .option('--json', '--status: print JSON')
    .action(async (flags: CaptureFlags) => {
      const modes = (['setup', 'status', 'dropSlot'] as const).filter((mode) => flags[mode] === true);
      if (modes.length > 1) {
        throw new ActivityLogError('CLI_USAGE', '--setup, --status and --drop-slot go one at a time', {
          field: '--setup',
        });
      }
      const from = fromFlag(flags.from);
      if (from !== 'saved' && modes.length > 0) {
        throw new ActivityLogError(
          'CLI_USAGE',
          '--from goes with capture itself, not with --setup, --status or --drop-slot',
          {
            field: '--from',
          },
        );
      }
      const config = loadConfig();
      const print = (line: string) => process.stdout.write(`${line}\n`);
      if (flags.setup === true) {
        await setUpCapture(config, print);
        print(`capture set up for slot ${config.capture.slot}`);
        return;
      }
      if (flags.status === true) {
        const status = await captureStatus(config);
        process.stdout.write(flags.json === true ? `${JSON.stringify(status, null, 2)}\n` : describe(status));
        return;
      }
      if (flags.dropSlot === true) {
        await dropCapture(config, print);
        print(`capture dropped: slot and publication ${config.capture.slot}`);
        return;
      }
      const warn = (line: string) => process.stderr.write(`activity-log: ${line}\n`);
      const stop = watchStopSignals({
        onFirstSignal: (signal) => warn(`${signal}: making what was read durable, then exiting`),
      });
      const alert = new CaptureLagAlert(config, warn);
      try {
        await runCapture(config, {
          from,
          print,
          warn,
          stopRequested: stop.reason,
          onMeasured: (stats) => alert.check(stats),
        });
      } finally {
        stop.dispose();
      }
    });
}

function fromFlag(value: string | undefined): CaptureFrom {
  if (value === undefined) return 'saved';
  if (value === 'now' || value === 'earliest') return value;
  throw new ActivityLogError('CLI_USAGE', `--from must be now or earliest (got ${JSON.stringify(value)})`, {
    field: '--from',
  });
}

/** The capture process's last figures, as `capture --status` shows them. */
function processLine(figures: CaptureJson | null): string {
  if (figures === null) return 'capture process: none has reported (activity_log_capture_stats)';
  const where = `pid ${figures.pid} on ${figures.host}`;
  const age = `reported ${figures.report_age_seconds} s ago`;
  if (!figures.live) return `capture process: ${figures.state.toUpperCase()} (${where}, ${age})`;
  return `capture process: ${figures.state} (${where}, ${age}): ${figures.events_per_second} changes/s, ${figures.lag_seconds} s behind, ${figures.durable_activities} of ${figures.activities} activities durable since its start`;
}

function describe(status: CaptureStatus): string {
  const bytes = (value: number | null) => (value === null ? 'unknown' : `${value} bytes`);
  const saved = `saved position: ${status.saved === null ? 'none' : `${status.saved.position} at ${status.saved.updatedAt.toISOString()}`}\n${processLine(status.process)}`;
  if (status.kind === 'mysql') {
    const settings = Object.entries(status.settings).map(([name, value]) => `${name}=${value}`);
    return `${[
      `binary log: ${settings.join(', ')}`,
      `server position: ${status.binlogFile ?? 'none'}:${status.binlogPosition ?? '-'}${status.gtidPosition === null ? '' : `, GTID ${status.gtidPosition}`}`,
      saved,
      `tables: ${status.tables.length === 0 ? 'none' : status.tables.join(', ')}`,
    ].join('\n')}\n`;
  }
  const lines = [
    `slot ${status.slot}: ${status.slotExists ? (status.active ? 'active (a capture process reads it)' : 'inactive') : 'missing (run capture --setup)'}`,
    `wal_level: ${status.walLevel}`,
    `confirmed position: ${status.confirmedPosition ?? 'none'}`,
    `lag: ${bytes(status.lagBytes)} not yet confirmed, ${bytes(status.retainedBytes)} of WAL kept for the slot`,
    saved,
    `tables: ${status.tables.length === 0 ? 'none' : status.tables.join(', ')}`,
  ];
  return `${lines.join('\n')}\n`;
}
