import { CompiledQuery, type Kysely, MysqlDialect, sql } from 'kysely';
import type { DatabaseConfig } from '../../config/config.js';
import type { StoreCapabilities } from '../activity-store.js';
import { type ActivityDatabase, INSERT_COLUMN_COUNT } from '../activity-table.js';
import { driverErrorFields } from '../driver-error.js';
import { waitForMigrationLock } from '../migrations/wait-for-migration-lock.js';
import { fromSqlTimestamp, toSqlTimestamp } from '../sql-timestamp.js';
import type { StoreDialect } from '../store-dialect.js';
import { mapMysqlError } from './mysql-errors.js';
import { MYSQL_PARTITIONS } from './mysql-partitions.js';
import { createMysqlPool } from './mysql-pool.js';

/** mysql2 expands placeholders client-side, but a prepared-statement path would be held to 65,535. */
const MAX_PLACEHOLDERS = 65_535;

/** What a store on MySQL or MariaDB can do, known before anything connects. */
export const MYSQL_CAPABILITIES: StoreCapabilities = Object.freeze({
  dialect: 'mysql',
  maxRowsPerInsert: Math.floor(MAX_PLACEHOLDERS / INSERT_COLUMN_COUNT),
});

/**
 * Statement text per INSERT, in characters. Values travel inside the text, so it must stay under
 * max_allowed_packet (16 MiB on MariaDB, 64 MiB on MySQL 8) even when every character takes three
 * bytes and escaping doubles some: 2 Mi characters is at most 12 MiB.
 */
const MAX_INSERT_CHARS = 2 * 1024 * 1024;

const ER_LOCK_DEADLOCK = 1213;

/**
 * MariaDB (10.2+) and MySQL (8+) through mysql2: a pool sized and timed from the config, UTC
 * DATETIME(3) text, utf8mb4 with a binary collation so exact-match filters behave as on the other
 * dialects (under utf8mb4_general_ci 'Orders' = 'orders' and every emoji equals every other).
 */
export function createMysqlDialect(config: DatabaseConfig): StoreDialect {
  const server = `MySQL at ${config.host}:${config.port}/${config.database}`;
  const quote = (name: string) => `\`${name.replaceAll('`', '``')}\``;
  let version: Promise<string> | undefined;
  const serverVersion = (db: Kysely<ActivityDatabase>) => {
    version ??= sql<{ version: string }>`SELECT VERSION() AS version`
      .execute(db)
      .then(({ rows }) => String(rows[0]?.version ?? ''));
    return version;
  };
  return {
    capabilities: MYSQL_CAPABILITIES,
    createKyselyDialect: (options) =>
      new MysqlDialect({
        pool: async () => createMysqlPool(config, options?.jsonAsText === true),
        onCreateConnection: async (connection) => {
          // Strict mode makes an over-long value an error instead of a silent truncation; the
          // executable comment sets a server-side statement timeout on MariaDB only.
          await connection.executeQuery(
            CompiledQuery.raw(
              `SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'` +
                ` /*M!100108 , max_statement_time = ${config.queryTimeoutMs / 1000} */`,
            ),
          );
        },
      }),
    maxInsertChars: MAX_INSERT_CHARS,
    placeholder: () => '?',
    quoteIdentifier: quote,
    // Not INSERT IGNORE: that would also turn bad data into warnings and store it truncated.
    // With CLIENT_FOUND_ROWS off, a skipped duplicate counts 0 affected rows, a new row 1.
    skipDuplicateIdClause: 'ON DUPLICATE KEY UPDATE `id` = `id`',
    skipDuplicateKeyClause: (column) => `ON DUPLICATE KEY UPDATE ${quote(column)} = ${quote(column)}`,
    lockRowsClause: 'FOR UPDATE',
    insertReturning: (db) => serverVersion(db).then(returnsInsertedRows),
    overlapSealedInserts: (db) => serverVersion(db).then(skipsLockedRows),
    encodeTimestamp: toSqlTimestamp,
    decodeTimestamp: fromSqlTimestamp,
    schema: Object.freeze({
      columnTypes: Object.freeze({
        uuid: 'CHAR(36) CHARACTER SET ascii COLLATE ascii_bin',
        name: 'VARCHAR(191)',
        text: 'TEXT',
        json: 'JSON',
        ipAddress: 'VARCHAR(45)',
        url: 'VARCHAR(2048)',
        method: 'VARCHAR(16)',
        userAgent: 'VARCHAR(1024)',
        timestamp: 'DATETIME(3)',
        sequence: 'BIGINT',
        salt: 'CHAR(32) CHARACTER SET ascii COLLATE ascii_bin',
        hash: 'CHAR(64) CHARACTER SET ascii COLLATE ascii_bin',
        commitments: 'TEXT',
      }),
      // A binary NO PAD collation, spelled per server through executable comments (MariaDB runs
      // /*M!…*/ and skips /*!80000…*/; MySQL 8 does the opposite): with PAD SPACE, 'paid ' = 'paid'.
      tableOptions:
        ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=/*M!100202 utf8mb4_nopad_bin */ /*!80000 utf8mb4_0900_bin */',
      indexNamesArePerTable: true,
      indexesInCreateTable: true,
      // InnoDB keys stop at 3072 bytes; 191 utf8mb4 characters (764 bytes) fit any row format.
      indexPrefixLengths: Object.freeze({ url: 191 }),
      indexMethods: Object.freeze({}),
    }),
    withMigrationLock: (db, lockName, migrate) =>
      db.connection().execute(async (connection) => {
        await waitForMigrationLock(async () => {
          const { rows } = await sql<{
            locked: number | null;
          }>`SELECT GET_LOCK(${lockName}, 0) AS locked`.execute(connection);
          return Number(rows[0]?.locked) === 1;
        }, lockName);
        try {
          return await migrate(connection);
        } finally {
          // The lock also ends with the session, so a failed release must not hide the real outcome.
          await sql`SELECT RELEASE_LOCK(${lockName})`.execute(connection).catch(() => undefined);
        }
      }),
    mapError: (error) => mapMysqlError(error, server),
    isDeadlock: (error) => driverErrorFields(error).errno === ER_LOCK_DEADLOCK,
    partitions: MYSQL_PARTITIONS,
  };
}

/** MariaDB has `INSERT … RETURNING` from 10.5 (`10.11.6-MariaDB`); MySQL (`8.0.36`) has none. */
export function returnsInsertedRows(version: string): boolean {
  const match = /^(\d+)\.(\d+)/.exec(version);
  if (match === null || !/mariadb/i.test(version)) return false;
  const major = Number(match[1]);
  return major > 10 || (major === 10 && Number(match[2]) >= 5);
}

/** `SELECT … FOR UPDATE SKIP LOCKED`: MariaDB from 10.6 (`10.11.6-MariaDB`), MySQL from 8.0 (`8.0.36`). */
export function skipsLockedRows(version: string): boolean {
  const match = /^(\d+)\.(\d+)/.exec(version);
  if (match === null) return false;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  if (/mariadb/i.test(version)) return major > 10 || (major === 10 && minor >= 6);
  return major >= 8;
}
