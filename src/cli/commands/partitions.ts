import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import { ActivityLogError } from '../../core/errors.js';
import { openPartitionMaintenance } from '../../store/partition-maintenance.js';
import type { StoredPartition } from '../../store/store-dialect.js';
import { ignoredPartitionNote } from '../partition-upkeep.js';
import { formatCount } from './prune.js';

interface PartitionsFlags {
  readonly json?: boolean;
}

const ACTIONS = ['status', 'ensure'] as const;

/**
 * `activity-log partitions [status|ensure] [--json]`: lists the activity table's partitions with
 * the server's row estimates and sizes, or creates the missing ones ahead and splits rows out of
 * the catch-all.
 */
export function registerPartitionsCommand(program: Command): void {
  program
    .command('partitions')
    .description('list the partitions of the activity table (status), or create the missing ones (ensure)')
    .argument('[action]', 'status or ensure', 'status')
    .option('--json', 'print one JSON document')
    .action(async (action: string, flags: PartitionsFlags) => {
      if (!(ACTIONS as readonly string[]).includes(action)) {
        throw new ActivityLogError(
          'CLI_USAGE',
          `partitions takes status or ensure (got ${JSON.stringify(action)})`,
          { field: 'action' },
        );
      }
      const config = loadConfig();
      const note = ignoredPartitionNote(config.database);
      if (note !== null) process.stderr.write(`${note}\n`);
      const maintenance = openPartitionMaintenance(config.database);
      try {
        if (action === 'ensure') {
          const result = await maintenance.ensure();
          if (flags.json === true) {
            process.stdout.write(
              `${JSON.stringify({
                added: result.added.map((range) => ({
                  name: range.name,
                  from: range.from.toISOString(),
                  to: range.to.toISOString(),
                })),
                moved: result.moved,
              })}\n`,
            );
          } else if (result.added.length === 0) {
            process.stdout.write(`${config.database.table}: no partition missing\n`);
          } else {
            process.stdout.write(
              `${config.database.table}: added ${result.added.map((range) => range.name).join(', ')}${
                result.moved > 0 ? `; ${formatCount(result.moved)} rows moved out of the catch-all` : ''
              }\n`,
            );
          }
          return;
        }
        const status = await maintenance.status();
        if (flags.json === true) {
          process.stdout.write(
            `${JSON.stringify({
              table: config.database.table,
              partitioned: status.partitions.length > 0,
              partitions: status.partitions.map((partition) => ({
                name: partition.name,
                from: partition.from?.toISOString() ?? null,
                to: partition.to?.toISOString() ?? null,
                catchAll: partition.catchAll,
                rowEstimate: partition.rowEstimate,
                bytes: partition.bytes,
              })),
            })}\n`,
          );
          return;
        }
        process.stdout.write(describePartitions(config.database.table, status.partitions));
      } finally {
        await maintenance.close();
      }
    });
}

/** One line per partition: name, range, estimated rows, size. */
export function describePartitions(table: string, partitions: readonly StoredPartition[]): string {
  if (partitions.length === 0) return `${table} is not partitioned\n`;
  const rows = partitions.map((partition) => [
    partition.name,
    partition.catchAll
      ? 'catch-all'
      : `${partition.from === null ? '…' : day(partition.from)} → ${partition.to === null ? '…' : day(partition.to)}`,
    `~${formatCount(partition.rowEstimate)} rows`,
    formatBytes(partition.bytes),
  ]);
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd(),
  );
  return `${table}: ${partitions.length} partitions\n${lines.join('\n')}\n`;
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}
