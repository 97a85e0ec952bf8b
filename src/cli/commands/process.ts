import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config/config.js';
import { ActivityLogError } from '../../core/errors.js';
import { QueueAdmin } from '../../delivery/queue-admin.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { queueNameFlag, runWorker } from './work.js';

type ProcessMethod = 'queue' | 'batch';

interface ProcessFlags {
  readonly method?: string;
  readonly batchSize?: string;
  readonly queue?: string;
}

/** Rows per INSERT with `--method=batch` when `--batch-size` is not given. */
export const DEFAULT_PROCESS_BATCH_SIZE = 50;

/** What one source of pending activities reports after it was drained. */
export interface DrainResult {
  readonly source: string;
  readonly stored: number;
  readonly failed: number;
  readonly seconds: number;
}

/**
 * Something holding activities accepted but not yet stored. `process` drains every source in
 * turn; the queue backlog is one, and the local spool becomes another.
 */
interface PendingSource {
  readonly name: string;
  drain(method: ProcessMethod, batchSize: number | undefined): Promise<DrainResult>;
}

/** `activity-log process`: drains what is pending once, prints a summary, exits. */
export function registerProcessCommand(program: Command): void {
  program
    .command('process')
    .description('drain pending work once (the queue backlog) with the given method, print a summary, exit')
    .option(
      '--method <method>',
      'queue: work the backlog as a worker would; batch: one job at a time, stored in chunks of --batch-size',
      'queue',
    )
    .option(
      '--batch-size <n>',
      `activities per INSERT (default: ${DEFAULT_PROCESS_BATCH_SIZE} with batch, ACTIVITY_LOG_BATCH_SIZE with queue)`,
    )
    .option('--queue <name>', 'queue to drain (default: ACTIVITY_LOG_QUEUE_NAME)')
    .action(async (flags: ProcessFlags) => {
      const method = methodFlag(flags.method);
      const batchSize = optionalWholeNumber('--batch-size', flags.batchSize, 1, 10_000);
      const queueName = queueNameFlag(flags.queue);
      const config = loadConfig();
      const sources = pendingSources(config, queueName ?? config.queueName);
      if (sources.length === 0) {
        process.stdout.write(
          'nothing to process: the queue backend is off (QUEUE_CONNECTION is not redis)\n',
        );
        return;
      }
      let failed = 0;
      for (const source of sources) failed += (await source.drain(method, batchSize)).failed;
      if (failed > 0) process.exitCode = 1;
    });
}

function methodFlag(value: string | undefined): ProcessMethod {
  if (value === 'queue' || value === 'batch') return value;
  throw new ActivityLogError('CLI_USAGE', `--method must be queue or batch (got ${JSON.stringify(value)})`, {
    field: '--method',
  });
}

function pendingSources(config: Config, queueName: string): PendingSource[] {
  const sources: PendingSource[] = [];
  if (config.queueConnection === 'redis') sources.push(queueBacklog(config, queueName));
  return sources;
}

/** The queue backlog: a worker that stops when nothing is waiting or delayed. */
function queueBacklog(config: Config, queueName: string): PendingSource {
  return {
    name: `queue ${queueName}`,
    async drain(method, batchSize) {
      const totalJobs = await backlogJobs(config, queueName);
      const showProgress = process.stderr.isTTY === true;
      const summary = await runWorker(
        config,
        {
          queueName,
          stopWhenEmpty: true,
          // `batch` is for memory-constrained hosts: one job in hand, written in small chunks.
          ...(method === 'batch'
            ? { concurrency: 1, mergeJobs: false, batchSize: batchSize ?? DEFAULT_PROCESS_BATCH_SIZE }
            : batchSize === undefined
              ? {}
              : { batchSize }),
        },
        {
          verbose: false,
          label: `process --method=${method}`,
          ...(showProgress
            ? {
                onProgress: (progress) => {
                  process.stderr.write(
                    `\r${progress.jobs} of ${totalJobs} jobs, ${progress.activities} activities stored, ${progress.failedJobs} failed `,
                  );
                },
                onProgressEnd: () => process.stderr.write('\n'),
              }
            : {}),
        },
      );
      return {
        source: this.name,
        stored: summary.activities,
        failed: summary.failedJobs,
        seconds: summary.seconds,
      };
    },
  };
}

async function backlogJobs(config: Config, queueName: string): Promise<number> {
  const admin = await QueueAdmin.connect(config.redis, queueName);
  try {
    const counts = await admin.counts();
    return counts.waiting + counts.delayed;
  } finally {
    await admin.close();
  }
}
