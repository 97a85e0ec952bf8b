import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { DatabaseConfig } from '../../config/config.js';

/**
 * The one connection behind Kysely's SqliteDialect: the file (and its directory) created on first
 * use, WAL mode so readers do not block the writer, and `queryTimeoutMs` as the busy timeout.
 */
export function openSqliteDatabase(config: DatabaseConfig): Database.Database {
  const inMemory = config.filename === ':memory:';
  if (!inMemory) mkdirSync(dirname(resolve(config.filename)), { recursive: true });
  const database = new Database(config.filename, { timeout: config.queryTimeoutMs });
  if (!inMemory) database.pragma('journal_mode = WAL');
  return database;
}
