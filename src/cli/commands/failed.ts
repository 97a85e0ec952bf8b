import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { type FailedJobInfo, QueueAdmin } from '../../delivery/queue-admin.js';
import { assertQueueEnabled } from '../../delivery/redis-connection.js';
import { queueNameFlag } from './work.js';

/** `activity-log failed`: lists the failed jobs of a queue. */
export function registerFailedCommand(program: Command): void {
  program
    .command('failed')
    .description('list failed queue jobs: id, attempts, activities, when, last error')
    .option('--queue <name>', 'queue to inspect (default: ACTIVITY_LOG_QUEUE_NAME)')
    .option('--json', 'print JSON instead of a table')
    .action(async (flags: { queue?: string; json?: boolean }) => {
      const queueName = queueNameFlag(flags.queue);
      const config = loadConfig();
      assertQueueEnabled(config, 'activity-log failed');
      const admin = await QueueAdmin.connect(config.redis, queueName ?? config.queueName);
      try {
        const jobs = await admin.listFailed();
        process.stdout.write(
          flags.json === true ? `${JSON.stringify(jobs.map(jobJson), null, 2)}\n` : table(jobs),
        );
      } finally {
        await admin.close();
      }
    });
}

function jobJson(job: FailedJobInfo) {
  return {
    id: job.id,
    attempts: job.attempts,
    activities: job.activities,
    failed_at: job.failedAt?.toISOString() ?? null,
    error: job.error,
  };
}

/** The error is last and never cut: it is what the reader came for. */
function table(jobs: readonly FailedJobInfo[]): string {
  if (jobs.length === 0) return 'no failed jobs\n';
  const rows = [
    ['ID', 'ATTEMPTS', 'ACTIVITIES', 'FAILED AT', 'LAST ERROR'],
    ...jobs.map((job) => [
      job.id,
      String(job.attempts),
      String(job.activities),
      job.failedAt?.toISOString() ?? '-',
      job.error.replace(/\s+/g, ' '),
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) =>
    row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  '),
  );
  return `${lines.join('\n')}\n${jobs.length} failed job${jobs.length === 1 ? '' : 's'}\n`;
}
