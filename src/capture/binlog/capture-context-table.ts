/**
 * The table an application writes its request context into, inside its own transaction, so the
 * binary log carries it beside the row changes it explains (PostgreSQL needs no table: a logical
 * message does the same there). One row per connection id, so it stays as small as the pool.
 */
export const CAPTURE_CONTEXT_TABLE = 'activity_log_capture_context';

export type CaptureContextDialect = 'mysql' | 'mariadb';

/**
 * `CREATE TABLE IF NOT EXISTS` for {@link CAPTURE_CONTEXT_TABLE}. `tag_count` goes up with every
 * tag, so even an upsert of the same context by the same connection changes the row and is
 * written to the binlog (an unchanged row is not).
 *
 * @example
 * await connection.query(captureContextTableSql('mariadb'));
 */
export function captureContextTableSql(dialect: CaptureContextDialect): string {
  // MariaDB's JSON is LONGTEXT with a JSON_VALID check; spelt out so the column reads the same
  // in SHOW CREATE TABLE on both servers' dumps.
  const contextColumn =
    dialect === 'mariadb'
      ? 'context LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL CHECK (JSON_VALID(context))'
      : 'context JSON NOT NULL';
  return [
    `CREATE TABLE IF NOT EXISTS ${CAPTURE_CONTEXT_TABLE} (`,
    '  connection_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,',
    `  ${contextColumn},`,
    '  tag_count BIGINT UNSIGNED NOT NULL DEFAULT 1,',
    '  updated_at DATETIME(6) NOT NULL',
    ') ENGINE=InnoDB',
  ].join('\n');
}

/**
 * The upsert that tags the current transaction with `context` (one JSON parameter). It must run
 * inside the transaction it tags, on the connection that runs it.
 */
export const CAPTURE_CONTEXT_UPSERT_SQL = [
  `INSERT INTO ${CAPTURE_CONTEXT_TABLE} (connection_id, context, tag_count, updated_at)`,
  'VALUES (CONNECTION_ID(), ?, 1, UTC_TIMESTAMP(6))',
  'ON DUPLICATE KEY UPDATE context = VALUES(context), tag_count = tag_count + 1, updated_at = VALUES(updated_at)',
].join('\n');
