import type { TransactionTag } from '../core/transaction-tag.js';

/**
 * What happened to a row: the activity's `event`; `truncated` is the whole table emptied by one
 * `TRUNCATE`, recorded once for the table (neither stream lists the rows it removed).
 */
export type RowEvent = 'created' | 'updated' | 'deleted' | 'truncated';

/** Column name → value, as the source decoded it. */
export type RowImage = Readonly<Record<string, unknown>>;

/** One row change read from a source's change stream. */
export interface RowChange {
  /** The schema (PostgreSQL) or database (MariaDB/MySQL) of the table. */
  readonly schema: string;
  readonly table: string;
  readonly event: RowEvent;
  /** The row before the change; null when the source sent none (inserts, truncates; no full replica identity). */
  readonly old: RowImage | null;
  /** The row after the change; null for deletes and truncates. */
  readonly new: RowImage | null;
  /**
   * Columns whose value the source did not send because the change left them as they were
   * (PostgreSQL's unchanged TOAST values): unchanged, never null.
   */
  readonly unchanged: readonly string[];
  /** The primary key's columns, in key order; empty when the table has none. */
  readonly keyColumns: readonly string[];
}

/**
 * What the change stream says of who wrote a transaction, for one the application did not tag.
 * PostgreSQL's pgoutput carries no user: only the transaction id and, where the session set one,
 * its replication origin. The binary log carries a connection id on MySQL (its `BEGIN` event)
 * and on MariaDB 11.5 and later (its GTID event), not on MariaDB 10.x.
 */
export interface TransactionOrigin {
  /** The database user, where the stream (or a look-up of its live connection) gives it. */
  readonly user?: string;
  /** PostgreSQL: the transaction id, as server logs name it (`%x` in `log_line_prefix`). */
  readonly xid?: number;
  /** PostgreSQL: the replication origin the writing session had set. */
  readonly replicationOrigin?: string;
  /** MariaDB/MySQL: the connection (thread) id that wrote it (`CONNECTION_ID()`). */
  readonly connectionId?: number;
}

/**
 * Row changes of one committed source transaction, or of a stretch of one too large to hold
 * whole (`complete` false until its last stretch).
 */
export interface CapturedTransaction {
  /** Where the transaction sits in the stream (the commit LSN, a GTID, file+offset): ids derive from it. */
  readonly position: string;
  /** The position to resume after, once this transaction's activities are durable; null for a stretch. */
  readonly resumePosition: string | null;
  readonly commitTime: Date;
  /** The context the application tagged the transaction with, if it did. */
  readonly tag: TransactionTag | null;
  /** Who wrote it, as far as the stream says (sources that know something fill it in). */
  readonly origin?: TransactionOrigin;
  readonly changes: readonly RowChange[];
  /** The index of `changes[0]` within the whole transaction. */
  readonly firstIndex: number;
}

/** The one change a `TRUNCATE` of `schema.table` is recorded as. */
export function truncationOf(schema: string, table: string): RowChange {
  return { schema, table, event: 'truncated', old: null, new: null, unchanged: [], keyColumns: [] };
}
