import mysql from 'mysql2/promise';
import { ActivityLogError } from '../../core/errors.js';
import { CAPTURE_CONTEXT_TABLE } from '../../core/transaction-tag.js';
import { captureSourceUnreachable } from '../capture-source.js';
import { assertRowBinlog, connectionOptionsOf } from './mysql-capture-source.js';

/** The table `tagTransaction` upserts into, one row per connection, in the application database. */
export const CONTEXT_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${CAPTURE_CONTEXT_TABLE} (connection_id BIGINT UNSIGNED NOT NULL PRIMARY KEY, context TEXT NOT NULL, updated_at DATETIME(3) NOT NULL) ENGINE=InnoDB`;

/** Rows of connections that tagged nothing for this long are removed (the table stays small). */
const STALE_CONTEXT_HOURS = 24;

async function withConnection<T>(url: string, fn: (connection: mysql.Connection) => Promise<T>): Promise<T> {
  let connection: mysql.Connection;
  try {
    connection = await mysql.createConnection(connectionOptionsOf(url));
  } catch (error) {
    throw captureSourceUnreachable(error);
  }
  try {
    return await fn(connection);
  } finally {
    await connection.end().catch(() => undefined);
  }
}

function settingsCheck(connection: mysql.Connection): Promise<void> {
  return assertRowBinlog(async (sql) => {
    const [rows] = await connection.query(sql);
    return rows as Record<string, unknown>[];
  });
}

/** The listed tables, each checked to exist in the source database; `*` = all but the log's own. */
async function resolveTables(
  connection: mysql.Connection,
  names: readonly string[],
  isOwn: (name: string) => boolean,
): Promise<string[]> {
  if (names.length === 0) {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      'ACTIVITY_LOG_CAPTURE_TABLES is not set: expected * or comma-separated table names',
      { field: 'ACTIVITY_LOG_CAPTURE_TABLES' },
    );
  }
  const [rows] = await connection.query(
    `SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'`,
  );
  const existing = new Set((rows as { name: string }[]).map((row) => row.name));
  if (names.includes('*')) return [...existing].filter((name) => !isOwn(name)).sort();
  for (const name of names) {
    const bare = name.split('.').at(-1)!;
    if (!existing.has(bare)) {
      throw new ActivityLogError(
        'CAPTURE_SOURCE_UNSUITABLE',
        `ACTIVITY_LOG_CAPTURE_TABLES names ${name}, which is not a table of the capture source's database`,
        { field: 'ACTIVITY_LOG_CAPTURE_TABLES' },
      );
    }
  }
  return names.map((name) => name.split('.').at(-1)!);
}

/** `capture --setup` on MariaDB/MySQL: checks the binlog settings and creates the context table. */
export async function setUpMysqlCapture(
  url: string,
  options: { readonly tables: readonly string[]; readonly isOwn: (name: string) => boolean },
  print: (line: string) => void,
): Promise<string[]> {
  return withConnection(url, async (connection) => {
    await settingsCheck(connection);
    const tables = await resolveTables(connection, options.tables, options.isOwn);
    print(`${CONTEXT_TABLE_DDL};`);
    await connection.query(CONTEXT_TABLE_DDL);
    return tables;
  });
}

/** Checks the settings and the tables before `capture` reads; removes stale context rows. */
export async function prepareMysqlCapture(
  url: string,
  options: {
    readonly tables: readonly string[];
    readonly isOwn: (name: string) => boolean;
    readonly warn?: (line: string) => void;
  },
): Promise<string[]> {
  return withConnection(url, async (connection) => {
    await settingsCheck(connection);
    const [metadata] = await connection
      .query('SELECT @@binlog_row_metadata AS value')
      .catch(() => [[{ value: null }]] as unknown as [unknown]);
    const rowMetadata = (metadata as { value: string | null }[])[0]?.value ?? null;
    if (rowMetadata !== null && rowMetadata.toUpperCase() !== 'FULL') {
      options.warn?.(
        `capture: binlog_row_metadata is ${rowMetadata}: rows written before an ALTER TABLE that capture has not read yet are named with the columns the table has when they are read (right for columns added at the end); set binlog_row_metadata=FULL so that each event names its own`,
      );
    }
    const tables = await resolveTables(connection, options.tables, options.isOwn);
    await connection.query(CONTEXT_TABLE_DDL);
    await connection.query(
      `DELETE FROM ${CAPTURE_CONTEXT_TABLE} WHERE updated_at < NOW(3) - INTERVAL ${STALE_CONTEXT_HOURS} HOUR`,
    );
    return tables;
  });
}

export interface MysqlCaptureState {
  readonly settings: Readonly<Record<string, string>>;
  readonly binlogFile: string | null;
  readonly binlogPosition: number | null;
  readonly gtidPosition: string | null;
}

export async function mysqlCaptureState(url: string): Promise<MysqlCaptureState> {
  return withConnection(url, async (connection) => {
    const [settings] = await connection.query(
      'SELECT @@log_bin AS log_bin, @@binlog_format AS binlog_format, @@binlog_row_image AS binlog_row_image, @@server_id AS server_id',
    );
    const [status] = await connection.query('SHOW MASTER STATUS');
    const [gtid] = await connection
      .query('SELECT @@gtid_binlog_pos AS gtid')
      .catch(() => [[{ gtid: null }]] as unknown as [unknown]);
    const row = (status as { File?: string; Position?: number }[])[0];
    const values = (settings as Record<string, unknown>[])[0] ?? {};
    return {
      settings: Object.fromEntries(Object.entries(values).map(([key, value]) => [key, String(value)])),
      binlogFile: row?.File ?? null,
      binlogPosition: row?.Position ?? null,
      gtidPosition: ((gtid as { gtid: string | null }[])[0]?.gtid as string | null) ?? null,
    };
  });
}
