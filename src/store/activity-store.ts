import type { Activity } from '../core/activity.js';
import type { FilterValues } from '../core/activity-fields.js';

/**
 * Filters of the query API: an exact match on each filter field of {@link ACTIVITY_FIELDS}
 * (`logName`, `subjectType`, …, every one an indexed column), and a range on `created_at`.
 */
export interface ActivityFilter extends FilterValues {
  /** Inclusive lower bound on `created_at`. */
  readonly from?: Date | undefined;
  /** Exclusive upper bound on `created_at`. */
  readonly to?: Date | undefined;
}

export interface ActivityQuery extends ActivityFilter {
  /** Rows per page, 1..500 (default 50). */
  readonly limit?: number | undefined;
  /** Opaque keyset cursor from a previous page's `nextCursor`. */
  readonly cursor?: string | undefined;
}

export interface ActivityPage {
  /** Newest first. */
  readonly data: readonly Activity[];
  /** Pass as `cursor` for the next (older) page; null when there is none. */
  readonly nextCursor: string | null;
  /**
   * Ids of the page's activities whose personal data was erased (`activity-log erase`): sealed
   * rows that keep commitments in place of their values. Absent from a store that cannot tell.
   */
  readonly erasedIds?: ReadonlySet<string> | undefined;
}

export interface PruneOptions {
  /** Rows with `created_at` strictly before this are deleted. */
  readonly before: Date;
  readonly logName?: string | undefined;
  /** Rows deleted per statement (default 1000), so no delete holds locks for long. */
  readonly chunkSize?: number | undefined;
  /** Count what would be deleted, delete nothing. */
  readonly dryRun?: boolean | undefined;
  /** Called after each chunk with the running total. */
  readonly onProgress?: ((deletedSoFar: number) => void) | undefined;
  /**
   * Called for each partition dropped whole (with `dryRun`, that would be), with the rows it held;
   * they count in the total.
   */
  readonly onPartition?: ((partition: { readonly name: string; readonly rows: number }) => void) | undefined;
  /**
   * On a table with seals: the newest seal pruned whole (0 for none), and the rows older than the
   * cutoff kept because their seal also holds newer rows (a seal is pruned whole or not at all).
   */
  readonly onSeals?:
    | ((seals: { readonly prunedToSeq: number; readonly keptRows: number }) => void)
    | undefined;
}

export interface MigrateResult {
  /** Schema version before and after. */
  readonly from: number;
  readonly to: number;
}

/** Dialect facts callers may need; differences live here, not in `if (dialect === …)` at call sites. */
export interface StoreCapabilities {
  readonly dialect: 'sqlite' | 'mysql' | 'postgres';
  /** Most rows one INSERT statement carries before it is split. */
  readonly maxRowsPerInsert: number;
}

/**
 * Where activities are kept. One implementation per SQL dialect; every method maps driver
 * errors to coded {@link ActivityLogError}s. Stores never retry: resilience is wrapped around them.
 */
export interface ActivityStore {
  readonly capabilities: StoreCapabilities;
  /** Creates or upgrades the table and indexes. Idempotent. */
  migrate(): Promise<MigrateResult>;
  /** Multi-row, idempotent insert (duplicate ids are ignored). Resolves to the number of new rows. */
  insertMany(activities: readonly Activity[]): Promise<number>;
  query(query?: ActivityQuery): Promise<ActivityPage>;
  /**
   * Deletes old activities: partitions wholly older than `before` dropped in one statement each,
   * the rest in chunks; on a sealed table whole seals only. Resolves to the number deleted (or
   * that would be, with `dryRun`).
   */
  prune(options: PruneOptions): Promise<number>;
  /** Cheap round-trip for health checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const MAX_QUERY_LIMIT = 500;
/** Rows one prune DELETE may remove at most, so no statement holds its locks for long. */
export const MAX_PRUNE_CHUNK = 10_000;
export const DEFAULT_QUERY_LIMIT = 50;
