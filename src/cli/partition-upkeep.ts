import type { DatabaseConfig } from '../config/config.js';
import { DIALECT_REGISTRY } from '../store/dialect-registry.js';
import { openPartitionMaintenance, PartitionScheduler } from '../store/partition-maintenance.js';

/** The one line saying that SQLite keeps `ACTIVITY_LOG_PARTITION` unapplied, or null. */
export function ignoredPartitionNote(config: DatabaseConfig): string | null {
  if (config.partition === 'none') return null;
  const probe = DIALECT_REGISTRY[config.connection].create(config);
  return probe.partitions === undefined
    ? `activity-log: ACTIVITY_LOG_PARTITION=${config.partition} is ignored on ${config.connection}: its table is not partitioned`
    : null;
}

/**
 * `serve` and `work`: with `ACTIVITY_LOG_PARTITION` set, future partitions are created ahead a few
 * seconds after start-up and then hourly. Null when there is nothing to keep up.
 */
export function startPartitionUpkeep(config: DatabaseConfig): { stop(): Promise<void> } | null {
  const note = ignoredPartitionNote(config);
  if (note !== null) {
    process.stderr.write(`${note}\n`);
    return null;
  }
  if (config.partition === 'none') return null;
  const maintenance = openPartitionMaintenance(config);
  const scheduler = new PartitionScheduler({
    maintenance,
    onEnsured: ({ added, moved }) =>
      process.stdout.write(
        `added partitions ${added.map((range) => range.name).join(', ')} to ${config.table}${moved > 0 ? ` (${moved} rows moved out of the catch-all)` : ''}\n`,
      ),
    onError: (error) =>
      process.stderr.write(
        `activity-log: warning: creating partitions ahead failed, trying again in an hour: ${error instanceof Error ? error.message : String(error)}\n`,
      ),
  });
  scheduler.start();
  return {
    stop: async () => {
      await scheduler.stop();
      await maintenance.close();
    },
  };
}
