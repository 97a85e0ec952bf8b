import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config/config.js';
import { SETTINGS } from '../../config/config-settings.js';
import { ActivityLogError } from '../../core/errors.js';
import { QueueAdmin } from '../../delivery/queue-admin.js';
import { assertQueueEnabled } from '../../delivery/redis-connection.js';
import { createStoreSink } from '../../delivery/store-sink.js';
import { drainSpool } from '../../resilience/drain-spool.js';
import { createStore } from '../../store/create-store.js';
import { checkedFlag } from '../optional-flag.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { queueNameFlag, runWorker } from './work.js';

export type ProcessMethod = 'queue' | 'batch';

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
  /** False when the source could not be drained (its store unavailable); what is left stays pending. */
  readonly complete: boolean;
}

/**
 * Something holding activities accepted but not yet stored. `process` drains every source in
 * turn: the local spool left by processes that are gone, then the queue backlog.
 */
interface PendingSource {
  readonly name: string;
  drain(method: ProcessMethod, batchSize: number | undefined): Promise<DrainResult>;
}

/** `activity-log process`: drains what is pending once, prints a summary, exits. */
export function registerProcessCommand(program: Command): void {
  program
    .command('process')
    .description(
      'drain pending work once (the spool of processes that are gone, then the queue backlog) with the given method, print a summary, exit',
    )
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
      const batchSize = optionalWholeNumber('--batch-size', flags.batchSize, SETTINGS.batchSize.schema);
      const queueName = queueNameFlag(flags.queue);
      const config = loadConfig();
      assertQueueEnabled(
        config,
        'activity-log process',
        'to replay only the spool, run activity-log spool replay',
      );
      let failed = false;
      for (const source of pendingSources(config, queueName ?? config.queueName)) {
        const result = await source.drain(method, batchSize);
        if (result.failed > 0 || !result.complete) failed = true;
      }
      if (failed) process.exitCode = 1;
    });
}

/** `sync` writes as activities are logged; it has no way to drain a backlog. */
const PROCESS_METHOD = SETTINGS.method.schema.extract(['queue', 'batch'], {
  error: 'expected queue or batch',
});

function methodFlag(value: string | undefined): ProcessMethod {
  return checkedFlag('--method', value, value, PROCESS_METHOD);
}

function pendingSources(config: Config, queueName: string): PendingSource[] {
  return [spoolBacklog(config), queueBacklog(config, queueName)];
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
            ? { concurrency: 1, mergeJobs: false, batchSize: processBatchSize(method, batchSize, config) }
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
        complete: summary.reason !== 'store-unavailable',
      };
    },
  };
}

/**
 * Activities per INSERT for `process`: `--batch-size`, else 50 with `batch` (small statements
 * for small hosts), else `ACTIVITY_LOG_BATCH_SIZE`. The spool and the queue backlog alike.
 */
export function processBatchSize(
  method: ProcessMethod,
  batchSize: number | undefined,
  config: Pick<Config, 'batchSize'>,
): number {
  return batchSize ?? (method === 'batch' ? DEFAULT_PROCESS_BATCH_SIZE : config.batchSize);
}

/** The spool of processes that are gone, replayed straight into the store (as `spool replay` does). */
function spoolBacklog(config: Config): PendingSource {
  return {
    name: 'spool',
    async drain(method, batchSize) {
      const showProgress = process.stderr.isTTY === true;
      const spoolConfig = { ...config, batchSize: processBatchSize(method, batchSize, config) };
      const result = await drainSpool(spoolConfig, createStoreSink(createStore(config.database)), {
        ...(showProgress
          ? {
              onProgress: (replayed: number, total: number) =>
                process.stderr.write(`\rspool: ${replayed} of ${total} activities stored `),
            }
          : {}),
      });
      if (showProgress && result.total > 0) process.stderr.write('\n');
      const rate = result.seconds > 0 ? Math.round(result.replayed / result.seconds) : 0;
      const left = result.total - result.replayed;
      process.stdout.write(
        `process --method=${method} spool: ${result.replayed} activities stored, ${left} left, ${result.corruptRecords} damaged records skipped, ${result.seconds.toFixed(1)} s, ${rate} activities/s\n`,
      );
      if (!result.complete) {
        process.stderr.write(
          `activity-log: spool replay stopped: ${errorLine(result.error)}; the rest stays spooled\n`,
        );
      }
      return {
        source: this.name,
        stored: result.replayed,
        failed: 0,
        seconds: result.seconds,
        complete: result.complete,
      };
    },
  };
}

function errorLine(error: unknown): string {
  if (error instanceof ActivityLogError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
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
