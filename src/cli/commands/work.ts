import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config/config.js';
import { SETTINGS } from '../../config/config-settings.js';
import { wholeNumber } from '../../config/setting.js';
import {
  ActivityWorker,
  defaultTimeoutSeconds,
  type WorkerOptions,
  type WorkerStopReason,
  type WorkerSummary,
} from '../../delivery/worker.js';
import type { Monitoring } from '../../metrics/monitoring.js';
import { startMonitoring } from '../../runtime/start-monitoring.js';
import { watchStopSignals } from '../../runtime/stop-signals.js';
import { createStore } from '../../store/create-store.js';
import { optionalFlag } from '../optional-flag.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { startPartitionUpkeep } from '../partition-upkeep.js';

interface WorkFlags {
  readonly queue?: string;
  readonly tries?: string;
  readonly timeout?: string;
  readonly concurrency?: string;
  readonly batchSize?: string;
  readonly once?: boolean;
  readonly stopWhenEmpty?: boolean;
  readonly maxJobs?: string;
  readonly maxTime?: string;
  readonly verbose?: boolean;
}

/** `activity-log work`: a queue worker. */
export function registerWorkCommand(program: Command): void {
  program
    .command('work')
    .description('run a queue worker: store queued activities with multi-row inserts')
    .option('--queue <name>', 'queue to take jobs from (default: ACTIVITY_LOG_QUEUE_NAME)')
    .option('--tries <n>', 'attempts per job before it is failed (default: ACTIVITY_LOG_TRIES)')
    .option(
      '--timeout <seconds>',
      'fail an attempt that runs longer; keep it below ACTIVITY_LOG_RETRY_AFTER (default: 2/3 of it)',
    )
    .option('--concurrency <n>', 'inserts running at once (default: 2)')
    .option(
      '--batch-size <n>',
      'most activities per INSERT; ready jobs are merged (default: ACTIVITY_LOG_BATCH_SIZE)',
    )
    .option('--once', 'handle the next job, then exit')
    .option('--stop-when-empty', 'exit when no job is waiting or delayed')
    .option('--max-jobs <n>', 'exit after this many jobs')
    .option('--max-time <seconds>', 'exit after this many seconds')
    .option('--verbose', 'print one line per stored batch')
    .action(async (flags: WorkFlags, command: Command) => {
      const config = loadConfig();
      const verbose = flags.verbose === true || command.optsWithGlobals().verbose === true;
      const summary = await runWorker(config, workerFlags(flags, config), { verbose, label: 'worker' });
      if (summary.reason === 'store-unavailable') process.exitCode = 1;
    });
}

/** Turns the `work` flags into worker options, rejecting a bad value with one line naming the flag. */
export function workerFlags(flags: WorkFlags, config: Config): Omit<WorkerOptions, 'config' | 'store'> {
  const tries = optionalWholeNumber('--tries', flags.tries, SETTINGS.tries.schema);
  const timeoutSeconds = optionalWholeNumber('--timeout', flags.timeout, SETTINGS.retryAfterSeconds.schema);
  return {
    queueName: queueNameFlag(flags.queue) ?? config.queueName,
    tries: tries ?? config.tries,
    timeoutSeconds: timeoutSeconds ?? defaultTimeoutSeconds(config.retryAfterSeconds),
    concurrency: optionalWholeNumber('--concurrency', flags.concurrency, wholeNumber(1, 64)),
    batchSize: optionalWholeNumber('--batch-size', flags.batchSize, SETTINGS.batchSize.schema),
    once: flags.once === true,
    stopWhenEmpty: flags.stopWhenEmpty === true,
    maxJobs: optionalWholeNumber('--max-jobs', flags.maxJobs, wholeNumber(1, Number.MAX_SAFE_INTEGER)),
    maxTimeSeconds: optionalWholeNumber('--max-time', flags.maxTime, wholeNumber(1, 31_536_000)),
  };
}

export interface RunWorkerOutput {
  /** One line per stored batch on stdout. */
  readonly verbose: boolean;
  /** Names the run in the summary line (`worker`, `process`). */
  readonly label: string;
  /** Called every ~200 ms with the running totals, and once more at the end (progress display). */
  readonly onProgress?: (summary: ProgressSnapshot) => void;
  /** Called after the last progress report, before the summary line. */
  readonly onProgressEnd?: () => void;
}

export interface ProgressSnapshot {
  readonly jobs: number;
  readonly activities: number;
  readonly failedJobs: number;
}

/**
 * Runs a worker until it stops (limits, `restart`, SIGTERM/SIGINT), printing failures and
 * warnings on stderr and a summary on stdout. Rejects when the worker cannot start (Redis
 * unreachable, bad configuration). The store is made from the configuration and closed at the end.
 */
export async function runWorker(
  config: Config,
  options: Omit<WorkerOptions, 'config' | 'store'>,
  output: RunWorkerOutput,
): Promise<WorkerSummary> {
  const store = createStore(config.database);
  const worker = new ActivityWorker({ ...options, config, store });
  const progress = { jobs: 0, activities: 0, failedJobs: 0 };
  worker.events.on('warning', (warning) => {
    process.stderr.write(`activity-log: warning: ${warning.message}\n`);
  });
  worker.events.on('jobFailed', (event) => {
    if (!event.willRetry) progress.failedJobs++;
    const outcome = event.willRetry ? 'will retry' : 'moved to the failed jobs';
    process.stderr.write(
      `activity-log: job ${event.jobId} attempt ${event.attempt} failed (${outcome}): ${event.error.code}: ${event.error.message}\n`,
    );
  });
  worker.events.on('jobsReturned', (event) => {
    process.stderr.write(
      `activity-log: store unavailable (${event.error.code}: ${event.error.message}); ${event.jobIds.length} job(s) handed back to the queue, tries untouched\n`,
    );
  });
  worker.breaker.events.on('stateChange', ({ from, to }) => {
    process.stderr.write(`activity-log: store circuit breaker ${from} → ${to}\n`);
  });
  worker.events.on('stored', (event) => {
    progress.jobs += event.jobIds.length;
    progress.activities += event.count;
    if (output.verbose) {
      const jobs = event.jobIds.length === 1 ? `job ${event.jobIds[0]}` : `${event.jobIds.length} jobs`;
      process.stdout.write(
        `${new Date().toISOString()} stored ${event.count} activities (${event.inserted} new) from ${jobs} in ${event.inserts} insert${event.inserts === 1 ? '' : 's'}, ${Math.round(event.durationMs)} ms\n`,
      );
    }
  });

  // Jobs still in hand at a second signal are handed to another worker after ACTIVITY_LOG_RETRY_AFTER.
  const stop = watchStopSignals({
    onFirstSignal: (signal) => {
      process.stderr.write(`activity-log: ${signal}: finishing the jobs in hand, then exiting\n`);
      worker.stop('signal');
    },
  });
  const ticker =
    output.onProgress === undefined ? null : setInterval(() => output.onProgress?.({ ...progress }), 200);
  let monitoring: Monitoring | null = null;
  let partitions: { stop(): Promise<void> } | null = null;
  try {
    await worker.start();
    partitions = startPartitionUpkeep(config.database);
    // Heartbeat, counters and alerts, shared with `serve` and the other workers through Redis.
    monitoring = startMonitoring({ config, worker });
    const settings = worker.settings;
    process.stdout.write(
      `${output.label} started: queue ${settings.queueName}, concurrency ${settings.concurrency}, batch size ${settings.batchSize}, tries ${settings.tries}, timeout ${settings.timeoutSeconds} s, retry-after ${settings.retryAfterSeconds} s\n`,
    );
    const summary = await worker.done;
    if (ticker !== null) clearInterval(ticker);
    output.onProgress?.({ ...progress });
    output.onProgressEnd?.();
    process.stdout.write(`${summaryLine(output.label, summary)}\n`);
    return summary;
  } finally {
    if (ticker !== null) clearInterval(ticker);
    stop.dispose();
    await partitions?.stop();
    await monitoring?.close();
    await store.close();
  }
}

const REASONS: Record<WorkerStopReason, string> = {
  closed: 'closed',
  signal: 'signal',
  restart: 'restart requested',
  once: '--once',
  'max-jobs': '--max-jobs reached',
  'max-time': '--max-time reached',
  empty: 'queue empty',
  'store-unavailable':
    'the store is unavailable; the remaining jobs wait in the queue with their tries intact',
};

export function summaryLine(label: string, summary: WorkerSummary): string {
  const parts = [
    `${summary.jobs} job${summary.jobs === 1 ? '' : 's'}`,
    `${summary.activities} activities stored (${summary.inserted} new rows, ${summary.inserts} inserts)`,
    `${summary.failedJobs} failed`,
    `${summary.retriedJobs} retried`,
  ];
  if (summary.returnedJobs > 0)
    parts.push(`${summary.returnedJobs} handed back while the store was unavailable`);
  if (summary.lostJobs > 0) parts.push(`${summary.lostJobs} handed to another worker`);
  if (summary.refused > 0)
    parts.push(`${summary.refused} activities refused as data (activity-log spool rejected)`);
  parts.push(`${summary.seconds.toFixed(1)} s`, `${Math.round(summary.ratePerSecond)} activities/s`);
  return `${label} stopped (${REASONS[summary.reason]}): ${parts.join(', ')}`;
}

/** `--queue`, checked like `ACTIVITY_LOG_QUEUE_NAME`. */
export function queueNameFlag(value: string | undefined): string | undefined {
  return optionalFlag('--queue', value, SETTINGS.queueName.schema);
}
