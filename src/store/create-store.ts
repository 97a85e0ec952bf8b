import type { DatabaseConfig } from '../config/config.js';
import type { ActivityStore } from './activity-store.js';
import { KyselyStore } from './kysely-store.js';
import { createMysqlDialect } from './mysql/mysql-dialect.js';
import { createPostgresDialect } from './postgres/postgres-dialect.js';
import { createSqliteDialect } from './sqlite/sqlite-dialect.js';
import type { StoreDialect } from './store-dialect.js';

const DIALECTS: Readonly<Record<DatabaseConfig['connection'], (config: DatabaseConfig) => StoreDialect>> = {
  mysql: createMysqlDialect,
  mariadb: createMysqlDialect,
  pgsql: createPostgresDialect,
  sqlite: createSqliteDialect,
};

/**
 * The store for the configured database. Nothing connects until the first call; call
 * `migrate()` once before writing and `close()` to release the connections.
 *
 * @example
 * const store = createStore(loadConfig().database);
 * await store.migrate();
 * await store.insertMany(activities);
 * await store.close();
 */
export function createStore(config: DatabaseConfig): ActivityStore {
  return new KyselyStore(DIALECTS[config.connection](config), config.table);
}
