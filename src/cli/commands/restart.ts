import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { QueueAdmin } from '../../delivery/queue-admin.js';
import { queueNameFlag } from './work.js';

/** `activity-log restart`: every running worker finishes its current jobs and exits 0. */
export function registerRestartCommand(program: Command): void {
  program
    .command('restart')
    .description('make every running worker finish its current jobs and exit 0 (its supervisor restarts it)')
    .option('--queue <name>', 'only the workers of this queue (default: every queue)')
    .action(async (flags: { queue?: string }) => {
      const queueName = queueNameFlag(flags.queue);
      const config = loadConfig();
      const admin = await QueueAdmin.connect(config.redis, queueName ?? config.queueName);
      try {
        const at = await admin.requestRestart(queueName === undefined ? 'all' : 'queue');
        const scope = queueName === undefined ? 'every worker' : `every worker of queue ${queueName}`;
        process.stdout.write(
          `restart requested at ${at.toISOString()}: ${scope} started before it finishes its current jobs and exits\n`,
        );
      } finally {
        await admin.close();
      }
    });
}
