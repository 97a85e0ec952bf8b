import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { ActivityLogError } from '../../core/errors.js';
import { QueueAdmin } from '../../delivery/queue-admin.js';
import { assertQueueEnabled } from '../../delivery/redis-connection.js';
import { queueNameFlag } from './work.js';

/** `activity-log retry <id...|all>`: puts failed jobs back on the queue with fresh attempts. */
export function registerRetryCommand(program: Command): void {
  program
    .command('retry')
    .description('put failed jobs back on the queue with fresh attempts')
    .argument(
      '<ids...>',
      'job ids from `activity-log failed`, or all (an id that starts with - goes after --)',
    )
    .option('--queue <name>', 'queue of the jobs (default: ACTIVITY_LOG_QUEUE_NAME)')
    .action(async (ids: string[], flags: { queue?: string }) => {
      const all = ids.includes('all');
      if (all && ids.length > 1) {
        throw new ActivityLogError('CLI_USAGE', 'retry takes job ids or all, not both', { field: 'ids' });
      }
      const queueName = queueNameFlag(flags.queue);
      const config = loadConfig();
      assertQueueEnabled(config, 'activity-log retry');
      const admin = await QueueAdmin.connect(config.redis, queueName ?? config.queueName);
      try {
        const result = await admin.retry(all ? 'all' : ids);
        for (const id of result.missing) process.stderr.write(`activity-log: no failed job with id ${id}\n`);
        const count = result.retried.length;
        process.stdout.write(`retried ${count} job${count === 1 ? '' : 's'}\n`);
        if (result.missing.length > 0) process.exitCode = 1;
      } finally {
        await admin.close();
      }
    });
}
