import { invalid } from '../core/activity.js';
import {
  CAPTURE_CONTEXT_TABLE,
  encodeTransactionTag,
  TRANSACTION_TAG_PREFIX,
  type TransactionTag,
} from '../core/transaction-tag.js';

/**
 * Something that runs one SQL statement inside the application's transaction: a function
 * `(sql, params) => Promise`, a client with `query(sql, params)` (a `pg` client, a mysql2
 * connection) or a Kysely transaction (anything with `executeQuery`).
 */
export type SqlExecutor =
  | ((sql: string, params: readonly unknown[]) => Promise<unknown>)
  | { query(sql: string, params: unknown[]): unknown }
  | {
      executeQuery(query: { sql: string; parameters: readonly unknown[]; query: unknown }): Promise<unknown>;
    };

/** Which SQL the tag is written with: the source database's kind. */
export type TagDialect = 'postgres' | 'mysql';

export interface TagTransactionOptions {
  /**
   * The application database's kind. Default: that of `ACTIVITY_LOG_CAPTURE_SOURCE`, else what the
   * executor looks like (a `pg` client is PostgreSQL), else PostgreSQL.
   */
  readonly dialect?: TagDialect;
  /** Who caused the transaction's changes, instead of the request context's causer. */
  readonly causer?: object | null;
}

/**
 * The statement that writes `tag` into the running transaction. PostgreSQL: a transactional
 * logical message, which exists only in the WAL and reaches the capture process in its
 * transaction. MariaDB/MySQL: one row per connection in `activity_log_capture_context`, whose row
 * event precedes the transaction's other changes in the binary log.
 */
export function tagStatement(tag: TransactionTag, dialect: TagDialect): { sql: string; params: unknown[] } {
  const json = encodeTransactionTag(tag);
  if (dialect === 'postgres') {
    return {
      sql: 'SELECT pg_logical_emit_message(true, $1, $2)',
      params: [TRANSACTION_TAG_PREFIX, json],
    };
  }
  return {
    sql: `INSERT INTO ${CAPTURE_CONTEXT_TABLE} (connection_id, context, updated_at) VALUES (CONNECTION_ID(), ?, NOW(3)) ON DUPLICATE KEY UPDATE context = VALUES(context), updated_at = VALUES(updated_at)`,
    params: [json],
  };
}

/** Runs the tag's statement through `executor`. */
export async function runTagStatement(
  executor: SqlExecutor,
  tag: TransactionTag,
  dialect: TagDialect | undefined,
): Promise<void> {
  const kind = dialect ?? dialectOf(executor);
  const { sql, params } = tagStatement(tag, kind);
  if (typeof executor === 'function') {
    await executor(sql, params);
    return;
  }
  if (typeof executor === 'object' && executor !== null) {
    if ('executeQuery' in executor && typeof executor.executeQuery === 'function') {
      // Kysely compiles placeholders per dialect; a raw query is passed through as written.
      await executor.executeQuery({ sql, parameters: params, query: { kind: 'RawNode' } });
      return;
    }
    if ('query' in executor && typeof executor.query === 'function') {
      await executor.query(sql, params);
      return;
    }
  }
  throw invalid(
    'executor',
    'must be a function (sql, params) => Promise, a client with query(sql, params), or a Kysely transaction',
  );
}

/** The kind of database a capture source URL names. */
export function tagDialectOfSource(source: string | null): TagDialect | undefined {
  if (source === null) return undefined;
  return /^postgres(ql)?:/.test(source) ? 'postgres' : 'mysql';
}

/** A `pg` client or pool client carries `connectionParameters`; a mysql2 connection `config` and `execute`. */
function dialectOf(executor: SqlExecutor): TagDialect {
  if (typeof executor === 'object' && executor !== null) {
    if ('connectionParameters' in executor) return 'postgres';
    if ('config' in executor && typeof (executor as { execute?: unknown }).execute === 'function')
      return 'mysql';
  }
  return 'postgres';
}
