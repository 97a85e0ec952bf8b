import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { ActivityLogError } from '../../core/errors.js';
import { QueueAdmin } from '../../delivery/queue-admin.js';
import { assertQueueEnabled } from '../../delivery/redis-connection.js';
import { queueNameFlag } from './work.js';

/**
 * `activity-log restart`: the running workers of the queue (`ACTIVITY_LOG_QUEUE_NAME` or
 * `--queue`; of every queue with `--all-queues`) finish their current jobs and exit 0.
 */
export function registerRestartCommand(program: Command): void {
  program
    .command('restart')
    .description(
      'make the running workers of the queue finish their current jobs and exit 0 (their supervisor restarts them)',
    )
    .option('--queue <name>', 'the queue whose workers restart (default: ACTIVITY_LOG_QUEUE_NAME)')
    .option('--all-queues', 'restart the workers of every queue on this Redis instead')
    .action(async (flags: { queue?: string; allQueues?: boolean }) => {
      const queueName = queueNameFlag(flags.queue);
      const all = flags.allQueues === true;
      if (all && queueName !== undefined) {
        throw new ActivityLogError('CLI_USAGE', 'restart takes --queue or --all-queues, not both', {
          field: '--all-queues',
        });
      }
      const config = loadConfig();
      assertQueueEnabled(config, 'activity-log restart');
      const queue = queueName ?? config.queueName;
      const admin = await QueueAdmin.connect(config.redis, queue);
      try {
        const at = await admin.requestRestart(all ? 'all' : 'queue');
        const scope = all ? 'every worker of every queue' : `every worker of queue ${queue}`;
        process.stdout.write(
          `restart requested at ${at.toISOString()}: ${scope} started before it finishes its current jobs and exits\n`,
        );
      } finally {
        await admin.close();
      }
    });
}
