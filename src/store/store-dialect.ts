import type { Dialect, Kysely, RawBuilder } from 'kysely';
import type { ActivityLogError } from '../core/errors.js';
import type { StoreCapabilities } from './activity-store.js';
import type { ActivityColumn, ActivityDatabase, ColumnKind, SealColumn } from './activity-table.js';
import type { PartitionRange } from './partition-plan.js';

/** How one dialect lays out the activity table. */
export interface DialectSchema {
  readonly columnTypes: Readonly<Record<ColumnKind, string>>;
  /** Appended after the closing parenthesis of CREATE TABLE (engine, character set). */
  readonly tableOptions: string;
  /** Index names are scoped to their table (MySQL) rather than to the whole schema (PostgreSQL, SQLite). */
  readonly indexNamesArePerTable: boolean;
  /**
   * Indexes are declared inside CREATE TABLE. Where DDL is not transactional (MySQL) this keeps a
   * crash half-way through a migration from leaving a table without its indexes.
   */
  readonly indexesInCreateTable: boolean;
  /** Key-prefix lengths for columns too long to index whole. */
  readonly indexPrefixLengths: Readonly<Partial<Record<ActivityColumn | SealColumn, number>>>;
  /** Index access methods other than the default b-tree, by DESIGN.md index name. */
  readonly indexMethods: Readonly<Partial<Record<string, string>>>;
}

/**
 * Everything that differs between SQL dialects, in one object per dialect, so that
 * {@link KyselyStore} holds the shared SQL and never asks which dialect it runs on. Each is built
 * by its folder's `<d>-dialect.ts`, found through `dialect-registry.ts`; the folder's `<d>-pool.ts`
 * makes the driver's connections and `<d>-errors.ts` says what its errors mean.
 */
export interface StoreDialect {
  readonly capabilities: StoreCapabilities;
  /**
   * Builds the Kysely dialect, and with it the connection pool. Called once per store. With
   * `jsonAsText`, a driver that would parse JSON columns returns their text as stored (what
   * `verify` hashes); decoding a row takes either.
   */
  createKyselyDialect(options?: { readonly jsonAsText?: boolean }): Dialect;
  /**
   * Estimated characters one INSERT may carry before it is split, for drivers that send values
   * inside the statement text (MySQL's max_allowed_packet); `Infinity` where only the number of
   * parameters is limited.
   */
  readonly maxInsertChars: number;
  /** Placeholder for the parameter at the 0-based `index`. */
  placeholder(index: number): string;
  quoteIdentifier(name: string): string;
  /** Appended to a multi-row INSERT so that a row whose id exists is skipped, not an error. */
  readonly skipDuplicateIdClause: string;
  /** Appended to an INSERT so that a row whose `column` (a unique key) exists is skipped. */
  skipDuplicateKeyClause(column: string): string;
  /**
   * Appended to a SELECT to lock the rows it reads until the transaction ends (`FOR UPDATE`), or
   * empty where a transaction that has written already excludes every other writer (SQLite).
   */
  readonly lockRowsClause: string;
  /**
   * Whether the server answers `INSERT … RETURNING`: PostgreSQL and SQLite do, MariaDB from 10.5,
   * MySQL not. Asked once per store, the first time a sealed insert needs to know which rows it
   * stored; without it the store looks them up in the same transaction.
   */
  insertReturning(db: Kysely<ActivityDatabase>): Promise<boolean>;
  /**
   * Whether a sealed insert that finds the chain head held by another writer may store its rows
   * first and stamp their `seal_seq` once it holds the head, so that its INSERT runs beside the
   * holder's instead of after it. True on MariaDB from 10.6 and MySQL from 8.0: they answer
   * `FOR UPDATE SKIP LOCKED`, and InnoDB rewrites a stamped row's one column and one index entry.
   * False on PostgreSQL, where an UPDATE writes a new version of the row into every index (as dear
   * as the INSERT), and on SQLite, which has one writer. Asked once per store, like
   * {@link insertReturning}.
   */
  overlapSealedInserts(db: Kysely<ActivityDatabase>): Promise<boolean>;
  encodeTimestamp(date: Date): string;
  decodeTimestamp(value: unknown): Date;
  readonly schema: DialectSchema;
  /**
   * Runs `migrate` on one connection while holding a lock named `lockName`, so two processes
   * migrating at once apply each step once. Inside a transaction where DDL is transactional.
   */
  withMigrationLock<T>(
    db: Kysely<ActivityDatabase>,
    lockName: string,
    migrate: (connection: Kysely<ActivityDatabase>) => Promise<T>,
  ): Promise<T>;
  /** Driver error → coded error; an {@link ActivityLogError} passes through unchanged. */
  mapError(error: unknown): ActivityLogError;
  /** Whether a driver error says the server rolled the transaction back to break a deadlock. */
  isDeadlock(error: unknown): boolean;
  /** How the activity table is partitioned by `created_at`; absent where it cannot be (SQLite). */
  readonly partitions?: PartitionDialect;
}

/** A partition of the activity table as the database holds it. */
export interface StoredPartition {
  /** As the database names it: `p202612`, `pmax` (MySQL); `<table>_p202612`, `<table>_default` (PostgreSQL). */
  readonly name: string;
  /** Lower bound; null for the first range partition (it holds everything older) and the catch-all. */
  readonly from: Date | null;
  /** Upper bound, exclusive; null for the catch-all. */
  readonly to: Date | null;
  /** The partition of rows no range partition holds: PostgreSQL's DEFAULT, MySQL's `pmax`. */
  readonly catchAll: boolean;
  /** The server's estimate (statistics), not a count. */
  readonly rowEstimate: number;
  /** Data and indexes. */
  readonly bytes: number;
}

/**
 * Partitioning by RANGE of `created_at`, with one catch-all partition so that a row whose
 * partition does not exist yet is stored all the same, and split out later by {@link add}.
 */
export interface PartitionDialect {
  /**
   * Whether range partitions must follow one another without gaps (MySQL: each is bounded only
   * above, and new ones are split out of `pmax`), rather than leaving gaps to the catch-all.
   */
  readonly contiguous: boolean;
  /** Appended to CREATE TABLE of a partitioned table (the first `ranges` already inside, where the dialect declares them there). */
  createTableClause(table: string, ranges: readonly PartitionRange[]): RawBuilder<unknown>;
  /** Run after CREATE TABLE: partitions the dialect creates as tables of their own. */
  afterCreateTable(
    db: Kysely<ActivityDatabase>,
    table: string,
    ranges: readonly PartitionRange[],
  ): Promise<void>;
  /** Every partition, range partitions by bound, the catch-all last; empty when the table is not partitioned. */
  list(db: Kysely<ActivityDatabase>, table: string): Promise<StoredPartition[]>;
  /** The oldest `created_at` in the catch-all at or after `from`, or null. */
  oldestInCatchAll(db: Kysely<ActivityDatabase>, table: string, from: Date | null): Promise<Date | null>;
  /**
   * Adds range partitions (in order, none overlapping an existing one), moving rows of their
   * periods out of the catch-all. Resolves to the rows moved.
   */
  add(
    db: Kysely<ActivityDatabase>,
    table: string,
    ranges: readonly PartitionRange[],
    existing: readonly StoredPartition[],
  ): Promise<number>;
  /** Drops a range partition and its rows, in one statement. */
  drop(db: Kysely<ActivityDatabase>, table: string, partition: StoredPartition): Promise<void>;
}
