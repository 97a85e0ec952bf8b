import type { Command } from 'commander';
import { loadConfig } from '../../config/config.js';
import type { MigrateResult } from '../../store/activity-store.js';
import { createStore } from '../../store/create-store.js';
import { describeDatabase } from '../describe-database.js';
import { ignoredPartitionNote } from '../partition-upkeep.js';

/** `activity-log migrate`: creates or upgrades the table and its indexes; safe to run again. */
export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('create or upgrade the activity table and its indexes (idempotent)')
    .action(async () => {
      const config = loadConfig();
      const note = ignoredPartitionNote(config.database);
      if (note !== null) process.stderr.write(`${note}\n`);
      const store = createStore(config.database);
      try {
        const result = await store.migrate();
        process.stdout.write(
          `${migrationLine(config.database.table, describeDatabase(config.database), result)}\n`,
        );
      } finally {
        await store.close();
      }
    });
}

/** `migrated activity_log on sqlite ./x.sqlite: schema version 0 → 1`, or that it was up to date. */
export function migrationLine(table: string, database: string, result: MigrateResult): string {
  return result.from === result.to
    ? `${table} on ${database} is already up to date (schema version ${result.to})`
    : `migrated ${table} on ${database}: schema version ${result.from} → ${result.to}`;
}
