import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { ActivityLogError } from '../../core/errors.js';
import { publishCheckpoint } from '../../runtime/checkpoint-publisher.js';
import { readSigningKey } from '../../runtime/signing-key-files.js';
import { ChainHeadReader, sealsTableOf } from '../../store/seal-head.js';
import { formatCount } from './prune.js';

/**
 * `activity-log checkpoint`: signs the chain head once and publishes it. Exit 0 when a destination
 * took it, 1 when none did (or there is nothing sealed), 2 when there is no key or no destination.
 */
export function registerCheckpointCommand(program: Command): void {
  program
    .command('checkpoint')
    .description(
      'sign the head of the seal chain and write it to ACTIVITY_LOG_CHECKPOINT_DIR and/or POST it to ACTIVITY_LOG_CHECKPOINT_WEBHOOK',
    )
    .action(async () => {
      const config = loadConfig();
      if (config.signingKeyPath === null) {
        throw new ActivityLogError(
          'CLI_USAGE',
          'no signing key: set ACTIVITY_LOG_SIGNING_KEY to the path of an Ed25519 private key (activity-log keygen writes one)',
          { field: 'ACTIVITY_LOG_SIGNING_KEY' },
        );
      }
      if (config.checkpointDir === null && config.checkpointWebhook === null) {
        throw new ActivityLogError(
          'CLI_USAGE',
          'nowhere to publish: set ACTIVITY_LOG_CHECKPOINT_DIR, ACTIVITY_LOG_CHECKPOINT_WEBHOOK or both',
          { field: 'ACTIVITY_LOG_CHECKPOINT_DIR' },
        );
      }
      const privateKeyPem = await readSigningKey(config.signingKeyPath);
      const reader = new ChainHeadReader({ ...config.database, poolMax: 1 });
      let head: Awaited<ReturnType<ChainHeadReader['read']>>;
      try {
        head = await reader.read();
      } finally {
        await reader.close();
      }
      if (head === null) {
        process.stderr.write(
          `activity-log: nothing to checkpoint: ${sealsTableOf(config.database.table)} has no seal yet\n`,
        );
        process.exitCode = 1;
        return;
      }
      const published = await publishCheckpoint(head, {
        privateKeyPem,
        dir: config.checkpointDir,
        webhookUrl: config.checkpointWebhook,
      });
      const { body } = published.checkpoint;
      const lines = [
        `signed ${body.table} at seal ${body.seq} (${formatCount(body.total_rows)} rows, seal hash ${body.seal_hash}) with key ${body.key_id}`,
      ];
      if (published.file !== null) lines.push(`wrote ${published.file}`);
      if (published.postedTo !== null) lines.push(`posted to ${published.postedTo}`);
      process.stdout.write(`${lines.join('\n')}\n`);
      for (const failure of published.failures) process.stderr.write(`activity-log: ${failure}\n`);
      if (published.file === null && published.postedTo === null) process.exitCode = 1;
    });
}
