import mysql from 'mysql2/promise';
import { ActivityLogError } from '../../core/errors.js';
import { binlogConnectionOptions } from './binlog-connection.js';

/** The server variables change capture depends on, as `SHOW GLOBAL VARIABLES` reports them. */
export interface BinlogSettings {
  readonly log_bin?: string;
  readonly binlog_format?: string;
  readonly binlog_row_image?: string;
  readonly binlog_row_metadata?: string;
}

const FIX = 'set it in my.cnf under [mysqld] and restart the server';

/**
 * What keeps this server's binary log from serving change capture, as one line naming the setting
 * and the fix, or null when it can. Row images must be full: an update's before-image and every
 * column of a delete are what the activity's `old` values are made of.
 */
export function binlogSettingsProblem(settings: BinlogSettings): string | null {
  if (settings.log_bin?.toUpperCase() !== 'ON') {
    return `log_bin is ${settings.log_bin ?? 'unknown'}, capture needs the binary log: ${FIX} (log_bin=mysql-bin, server_id=1)`;
  }
  if (settings.binlog_format?.toUpperCase() !== 'ROW') {
    return `binlog_format is ${settings.binlog_format ?? 'unknown'}, capture needs ROW: ${FIX} (binlog_format=ROW)`;
  }
  if (settings.binlog_row_image?.toUpperCase() !== 'FULL') {
    return `binlog_row_image is ${settings.binlog_row_image ?? 'unknown'}, capture needs FULL: ${FIX} (binlog_row_image=FULL)`;
  }
  return null;
}

/**
 * Advice for a server that can serve capture but not as well as it could, or null. Without
 * `binlog_row_metadata=FULL` the binlog carries no column names or keys: the reader reads them from
 * information_schema when it meets a table, so a reader running behind an ALTER TABLE of that
 * table reads older rows with the newer definition.
 */
export function binlogSettingsAdvice(settings: BinlogSettings): string | null {
  if (settings.binlog_row_metadata === undefined || settings.binlog_row_metadata.toUpperCase() === 'FULL')
    return null;
  return `binlog_row_metadata is ${settings.binlog_row_metadata}: column names and primary keys are read from information_schema, so rows read behind an ALTER TABLE get the new definition; set binlog_row_metadata=FULL (MariaDB 10.5+, MySQL 8.0.1+) to carry them in the binlog`;
}

/**
 * Reads the source server's binary log settings and refuses with `CAPTURE_SOURCE_UNFIT` when they
 * cannot serve capture; {@link binlogSettingsAdvice} says what would serve it better.
 *
 * @example
 * await checkBinlogSettings('mysql://capture:secret@db:3306/shop');
 */
export async function checkBinlogSettings(url: string): Promise<BinlogSettings> {
  const connection = await mysql.createConnection(binlogConnectionOptions(url));
  try {
    const [rows] = await connection.query(
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata')",
    );
    const settings: Record<string, string> = {};
    for (const row of rows as { Variable_name: string; Value: string }[]) {
      settings[row.Variable_name.toLowerCase()] = row.Value;
    }
    const problem = binlogSettingsProblem(settings);
    if (problem !== null) {
      throw new ActivityLogError('CAPTURE_SOURCE_UNFIT', problem, {
        field: problem.slice(0, problem.indexOf(' ')),
        details: settings,
      });
    }
    return settings;
  } finally {
    await connection.end();
  }
}
