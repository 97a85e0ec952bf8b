import { join } from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaMariaDb } from '@prisma/adapter-mariadb';
import { PrismaPg } from '@prisma/adapter-pg';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import {
  MARIADB,
  MYSQL_URL,
  POSTGRES,
  POSTGRES_URL,
  type ServiceInfo,
  uniqueSuffix,
} from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { PrismaClient as MysqlClient } from './generated/mysql/client.js';
import { PrismaClient as PostgresClient } from './generated/postgresql/client.js';
import { PrismaClient as SqliteClient } from './generated/sqlite/client.js';

/** Every generated client has the same models; the suites use the PostgreSQL one's type. */
export type TestPrismaClient = PostgresClient;

/** One driver adapter the Prisma suites run against. */
export interface PrismaTarget {
  readonly name: string;
  /** Null for SQLite, which needs no server. */
  readonly service: ServiceInfo | null;
  /** A client on a database of its own with empty `posts` and `comments` tables; `defer` drops it. */
  readonly connect: (defer: (cleanup: () => unknown) => void) => Promise<TestPrismaClient>;
}

const POSTGRES_TABLES = (schema: string) => [
  `CREATE SCHEMA "${schema}"`,
  `CREATE TABLE "${schema}".posts (id serial PRIMARY KEY, title varchar(100) NOT NULL, body varchar(500) NOT NULL DEFAULT '', secret_note varchar(100), deleted_at timestamp(3))`,
  `CREATE TABLE "${schema}".comments (id serial PRIMARY KEY, text varchar(200) NOT NULL, post_id int REFERENCES "${schema}".posts(id))`,
];

const MYSQL_TABLES = [
  `CREATE TABLE posts (id int AUTO_INCREMENT PRIMARY KEY, title varchar(100) NOT NULL, body varchar(500) NOT NULL DEFAULT '', secret_note varchar(100), deleted_at datetime(3))`,
  `CREATE TABLE comments (id int AUTO_INCREMENT PRIMARY KEY, text varchar(200) NOT NULL, post_id int, FOREIGN KEY (post_id) REFERENCES posts(id))`,
];

const SQLITE_TABLES = [
  `CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, body TEXT NOT NULL DEFAULT '', secret_note TEXT, deleted_at DATETIME)`,
  `CREATE TABLE comments (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, post_id INTEGER REFERENCES posts(id))`,
];

export const PRISMA_TARGETS: readonly PrismaTarget[] = [
  {
    name: 'PostgreSQL',
    service: POSTGRES,
    connect: async (defer) => {
      const schema = `prisma_${uniqueSuffix()}`;
      const admin = new pg.Client({ connectionString: POSTGRES_URL });
      await admin.connect();
      defer(async () => {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await admin.end();
      });
      for (const statement of POSTGRES_TABLES(schema)) await admin.query(statement);
      const prisma = new PostgresClient({
        adapter: new PrismaPg({ connectionString: POSTGRES_URL }, { schema }),
      });
      defer(() => prisma.$disconnect());
      return prisma;
    },
  },
  {
    name: 'MariaDB',
    service: MARIADB,
    connect: async (defer) => {
      const database = `prisma_${uniqueSuffix()}`;
      const admin = await mysql.createConnection(MYSQL_URL);
      defer(async () => {
        await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
        await admin.end();
      });
      await admin.query(`CREATE DATABASE \`${database}\``);
      await admin.query(`USE \`${database}\``);
      for (const statement of MYSQL_TABLES) await admin.query(statement);
      const adapter = new PrismaMariaDb({
        host: MARIADB.host,
        port: MARIADB.port,
        user: 'root',
        database,
        connectionLimit: 4,
      });
      const prisma = new MysqlClient({ adapter });
      defer(() => prisma.$disconnect());
      return prisma as unknown as TestPrismaClient;
    },
  },
  {
    name: 'SQLite',
    service: null,
    connect: async (defer) => {
      const file = join(await temporaryDirectory(defer, 'prisma-'), 'test.db');
      const db = new Database(file);
      for (const statement of SQLITE_TABLES) db.exec(statement);
      db.close();
      const prisma = new SqliteClient({ adapter: new PrismaBetterSqlite3({ url: `file:${file}` }) });
      defer(() => prisma.$disconnect());
      return prisma as unknown as TestPrismaClient;
    },
  },
];
