import { rmSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { loadConfig } from '../../src/config/config.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { createStore } from '../../src/store/create-store.js';
import { MARIADB_TARGET, POSTGRES_TARGET, type ServiceInfo, uniqueSuffix } from './services.js';

/** A dialect a store suite runs against, reached on a table of the test's own. */
export interface StoreTarget {
  readonly name: string;
  /** The server it needs, or none for SQLite. */
  readonly service: ServiceInfo | undefined;
  /** The DATABASE_URL of a store on `table`. */
  databaseUrl(table: string): string;
  /** Removes `table` and its migrations table. */
  drop(table: string): Promise<void>;
}

/** SQLite, one database file per table in `dir` (the suite's temporary directory). */
export function sqliteStoreTarget(dir: string): StoreTarget {
  return {
    name: 'SQLite',
    service: undefined,
    databaseUrl: (table) => `sqlite:${join(dir, `${table}.sqlite`)}`,
    drop: async (table) => {
      for (const suffix of ['', '-wal', '-shm'])
        rmSync(join(dir, `${table}.sqlite${suffix}`), { force: true });
    },
  };
}

/** MariaDB's test database. */
export const MARIADB_STORE_TARGET: StoreTarget = {
  name: MARIADB_TARGET.name,
  service: MARIADB_TARGET.service,
  databaseUrl: () => MARIADB_TARGET.url,
  drop: async (table) => {
    const admin = await mysql.createConnection(MARIADB_TARGET.url);
    try {
      await admin.query(
        `DROP TABLE IF EXISTS \`${table}\`, \`${table}_migrations\`, \`${table}_seals\`, \`${table}_seals_pruned\``,
      );
    } finally {
      await admin.end();
    }
  },
};

/** PostgreSQL's test database. */
export const POSTGRES_STORE_TARGET: StoreTarget = {
  name: POSTGRES_TARGET.name,
  service: POSTGRES_TARGET.service,
  databaseUrl: () => POSTGRES_TARGET.url,
  drop: async (table) => {
    const admin = new pg.Client({ connectionString: POSTGRES_TARGET.url });
    await admin.connect();
    try {
      await admin.query(
        `DROP TABLE IF EXISTS "${table}", "${table}_migrations", "${table}_seals", "${table}_seals_pruned"`,
      );
    } finally {
      await admin.end();
    }
  },
};

/** Every dialect, SQLite in `sqliteDir`. */
export function storeTargets(sqliteDir: string): readonly StoreTarget[] {
  return [sqliteStoreTarget(sqliteDir), MARIADB_STORE_TARGET, POSTGRES_STORE_TARGET];
}

/**
 * A migrated store on a table of its own (`label_<suffix>`); `defer` closes it and drops the
 * table after the test.
 */
export async function migratedStore(
  defer: (cleanup: () => unknown) => void,
  target: StoreTarget,
  label: string,
): Promise<{ store: ActivityStore; table: string }> {
  const table = `${label}_${uniqueSuffix()}`;
  const config = loadConfig({ env: { DATABASE_URL: target.databaseUrl(table), ACTIVITY_LOG_TABLE: table } });
  const store = createStore(config.database);
  defer(async () => {
    await store.close();
    await target.drop(table);
  });
  await store.migrate();
  return { store, table };
}
