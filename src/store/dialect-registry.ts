import type { DatabaseConfig, DbConnection } from '../config/config.js';
import { DATABASE_CONNECTIONS, type DatabaseConnection } from '../config/database-connections.js';
import type { StoreCapabilities } from './activity-store.js';
import { createMysqlDialect, MYSQL_CAPABILITIES } from './mysql/mysql-dialect.js';
import { createPostgresDialect, POSTGRES_CAPABILITIES } from './postgres/postgres-dialect.js';
import { createSqliteDialect, SQLITE_CAPABILITIES } from './sqlite/sqlite-dialect.js';
import type { StoreDialect } from './store-dialect.js';

/**
 * One `DB_CONNECTION` value as the store sees it: the URL schemes and defaults the configuration
 * reads (kept in `config/` as plain data, so reading the configuration loads no driver), what a
 * store on it can do, and how to build its dialect.
 */
export interface RegisteredDialect extends DatabaseConnection {
  readonly capabilities: StoreCapabilities;
  /** Builds the dialect; nothing connects until the store's first query. */
  create(config: DatabaseConfig): StoreDialect;
}

/**
 * Every supported database. Adding one is a folder with the three file roles
 * (`<d>-dialect.ts`, `<d>-pool.ts`, `<d>-errors.ts`; `<d>-partitions.ts` where the table can be
 * partitioned), an entry in `DATABASE_CONNECTIONS` and one here; nothing else asks which database
 * it runs on.
 */
export const DIALECT_REGISTRY: Readonly<Record<DbConnection, RegisteredDialect>> = Object.freeze({
  sqlite: Object.freeze({
    ...DATABASE_CONNECTIONS.sqlite,
    capabilities: SQLITE_CAPABILITIES,
    create: createSqliteDialect,
  }),
  // MariaDB speaks MySQL's protocol and SQL; one dialect serves both.
  mysql: Object.freeze({
    ...DATABASE_CONNECTIONS.mysql,
    capabilities: MYSQL_CAPABILITIES,
    create: createMysqlDialect,
  }),
  mariadb: Object.freeze({
    ...DATABASE_CONNECTIONS.mariadb,
    capabilities: MYSQL_CAPABILITIES,
    create: createMysqlDialect,
  }),
  pgsql: Object.freeze({
    ...DATABASE_CONNECTIONS.pgsql,
    capabilities: POSTGRES_CAPABILITIES,
    create: createPostgresDialect,
  }),
});
