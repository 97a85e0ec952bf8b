import mysql from 'mysql2/promise';
import { loadConfig } from '../../src/config/config.js';
import { createStore } from '../../src/store/create-store.js';
import { MYSQL_URL, uniqueSuffix } from './services.js';

/** A migrated activity table on the test MariaDB, with a connection to read it. */
export interface MigratedTable {
  /** The table's name, unique to this test. */
  readonly table: string;
  /** A direct connection to the test database, closed by {@link MigratedTable.drop}. */
  readonly db: mysql.Connection;
  /** Rows in the table (`n`) and distinct ids among them (`d`). */
  count(): Promise<{ n: number; d: number }>;
  /** Every id in the table. */
  storedIds(): Promise<Set<string>>;
  /** Drops the table with its `_migrations`, `_seals` and `_seals_pruned` tables and closes the connection. */
  drop(): Promise<void>;
}

/**
 * Creates the activity table `<prefix>_<unique suffix>` on the test MariaDB with the library's
 * migrations (so with the full index set). Pass `drop` to the test's clean-ups.
 */
export async function migratedTable(prefix: string): Promise<MigratedTable> {
  const table = `${prefix}_${uniqueSuffix()}`;
  const migrator = createStore(
    loadConfig({ env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: table } }).database,
  );
  await migrator.migrate();
  await migrator.close();
  const db = await mysql.createConnection(MYSQL_URL);
  return {
    table,
    db,
    async count() {
      const [rows] = await db.query(`SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM \`${table}\``);
      const row = (rows as { n: number | string; d: number | string }[])[0]!;
      return { n: Number(row.n), d: Number(row.d) };
    },
    async storedIds() {
      const [rows] = await db.query(`SELECT id FROM \`${table}\``);
      return new Set((rows as { id: string }[]).map((row) => row.id));
    },
    async drop() {
      await db.query(`DROP TABLE IF EXISTS \`${table}\``);
      await db.query(
        `DROP TABLE IF EXISTS \`${table}_migrations\`, \`${table}_seals\`, \`${table}_seals_pruned\``,
      );
      await db.end();
    },
  };
}
