import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { QueueAdmin } from '../../delivery/queue-admin.js';
import { assertQueueEnabled } from '../../delivery/redis-connection.js';
import { queueNameFlag } from './work.js';

/** `activity-log flush`: deletes every failed job (and the activities it carries). */
export function registerFlushCommand(program: Command): void {
  program
    .command('flush')
    .description('delete every failed job of the queue, with the activities it carries')
    .option('--queue <name>', 'queue to flush (default: ACTIVITY_LOG_QUEUE_NAME)')
    .action(async (flags: { queue?: string }) => {
      const queueName = queueNameFlag(flags.queue);
      const config = loadConfig();
      assertQueueEnabled(config, 'activity-log flush');
      const admin = await QueueAdmin.connect(config.redis, queueName ?? config.queueName);
      try {
        const deleted = await admin.flushFailed();
        process.stdout.write(`deleted ${deleted} failed job${deleted === 1 ? '' : 's'}\n`);
      } finally {
        await admin.close();
      }
    });
}
