import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { loadConfig } from '../../src/config/config.js';
import { createStore } from '../../src/store/create-store.js';
import { MARIADB, MYSQL_URL, POSTGRES, POSTGRES_URL, type ServiceInfo, uniqueSuffix } from './services.js';

/** Descriptions starting with this are refused by the database itself (a CHECK or a trigger). */
export const REFUSED_PREFIX = 'refused by the database';

/** A migrated activity table whose database refuses some rows, as a user's own constraint would. */
export interface RefusingTable {
  readonly table: string;
  /** `DATABASE_URL` and `ACTIVITY_LOG_TABLE` for it. */
  readonly env: Record<string, string>;
  ids(): Promise<Set<string>>;
  drop(): Promise<void>;
}

export interface RefusingTarget {
  readonly name: string;
  /** The server it needs; none for SQLite. */
  readonly service: ServiceInfo | undefined;
  create(label: string): Promise<RefusingTable>;
}

async function migrate(env: Record<string, string>): Promise<void> {
  const store = createStore(loadConfig({ env }).database);
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
}

function tableName(label: string): string {
  return `refusing_${label}_${uniqueSuffix()}`.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 60);
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-log-refusing-'));

/** MariaDB, PostgreSQL and SQLite, each refusing rows whose description starts with {@link REFUSED_PREFIX}. */
export const REFUSING_TARGETS: readonly RefusingTarget[] = [
  {
    name: 'MariaDB',
    service: MARIADB,
    async create(label) {
      const table = tableName(label);
      const env = { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: table };
      await migrate(env);
      const db = await mysql.createConnection(MYSQL_URL);
      await db.query(
        `ALTER TABLE \`${table}\` ADD CONSTRAINT \`${table}_refuses\` CHECK (description NOT LIKE '${REFUSED_PREFIX}%')`,
      );
      return {
        table,
        env,
        async ids() {
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
    },
  },
  {
    name: 'PostgreSQL',
    service: POSTGRES,
    async create(label) {
      const table = tableName(label);
      const env = { DATABASE_URL: POSTGRES_URL, ACTIVITY_LOG_TABLE: table };
      await migrate(env);
      const db = new pg.Client({ connectionString: POSTGRES_URL });
      await db.connect();
      await db.query(
        `ALTER TABLE "${table}" ADD CONSTRAINT "${table}_refuses" CHECK (description NOT LIKE '${REFUSED_PREFIX}%')`,
      );
      return {
        table,
        env,
        async ids() {
          const { rows } = await db.query<{ id: string }>(`SELECT id FROM "${table}"`);
          return new Set(rows.map((row) => row.id));
        },
        async drop() {
          await db.query(`DROP TABLE IF EXISTS "${table}"`);
          await db.query(
            `DROP TABLE IF EXISTS "${table}_migrations", "${table}_seals", "${table}_seals_pruned"`,
          );
          await db.end();
        },
      };
    },
  },
  {
    name: 'SQLite',
    service: undefined,
    async create(label) {
      const table = tableName(label);
      const file = join(sqliteDir, `${table}.sqlite`);
      const env = { DATABASE_URL: `sqlite:${file}`, ACTIVITY_LOG_TABLE: table };
      await migrate(env);
      const db = new Database(file);
      // SQLite cannot add a CHECK to an existing table; a trigger refuses the row the same way.
      db.exec(
        `CREATE TRIGGER "${table}_refuses" BEFORE INSERT ON "${table}" WHEN NEW.description LIKE '${REFUSED_PREFIX}%' BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END`,
      );
      return {
        table,
        env,
        async ids() {
          const rows = db.prepare(`SELECT id FROM "${table}"`).all() as { id: string }[];
          return new Set(rows.map((row) => row.id));
        },
        async drop() {
          db.close();
          for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
        },
      };
    },
  },
];
