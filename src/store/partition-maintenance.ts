import { Kysely } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';
import type { ActivityDatabase } from './activity-table.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import {
  missingPartitions,
  type PartitionRange,
  type PartitionUnit,
  partitionOf,
  periodStart,
} from './partition-plan.js';
import type { StoreDialect, StoredPartition } from './store-dialect.js';

/** Most partitions one `ensure` adds for rows in the catch-all (MySQL allows 8192 per table). */
const MAX_SPLIT_PARTITIONS = 1000;
const HOUR_MS = 60 * 60 * 1000;

export interface PartitionStatus {
  /** The dialect partitions at all (not SQLite). */
  readonly supported: boolean;
  /** Every partition, range partitions by bound, the catch-all last; empty when the table is not partitioned. */
  readonly partitions: readonly StoredPartition[];
}

export interface EnsureResult {
  readonly added: readonly PartitionRange[];
  /** Rows moved out of the catch-all into the partitions added. */
  readonly moved: number;
}

/**
 * Creating partitions ahead and listing them, over a connection pool of its own, for
 * `activity-log partitions` and the timer of `serve` and `work`.
 *
 * @example
 * const partitions = openPartitionMaintenance(config.database);
 * try { await partitions.ensure(); } finally { await partitions.close(); }
 */
export class PartitionMaintenance {
  readonly #dialect: StoreDialect;
  readonly #table: string;
  readonly #unit: PartitionUnit | null;
  readonly #ahead: number;
  readonly #db: Kysely<ActivityDatabase>;

  constructor(
    dialect: StoreDialect,
    config: Pick<DatabaseConfig, 'table' | 'partition' | 'partitionsAhead'>,
  ) {
    this.#dialect = dialect;
    this.#table = config.table;
    this.#unit = config.partition === 'none' ? null : config.partition;
    this.#ahead = config.partitionsAhead;
    this.#db = new Kysely<ActivityDatabase>({ dialect: dialect.createKyselyDialect() });
  }

  status(): Promise<PartitionStatus> {
    return this.#run(async () => {
      const partitions = this.#dialect.partitions;
      if (partitions === undefined) return { supported: false, partitions: [] };
      return { supported: true, partitions: await partitions.list(this.#db, this.#table) };
    });
  }

  /**
   * Adds the partitions of the current period and `ACTIVITY_LOG_PARTITIONS_AHEAD` more that are
   * missing, and splits the catch-all's rows out into partitions of their periods (on MySQL every
   * period up to theirs, as partitions there have no gaps). Nothing on an unpartitioned table.
   */
  ensure(now: Date = new Date()): Promise<EnsureResult> {
    return this.#run(async () => {
      const partitions = this.#dialect.partitions;
      const unit = this.#unit;
      if (partitions === undefined || unit === null) return { added: [], moved: 0 };
      const existing = await partitions.list(this.#db, this.#table);
      if (existing.length === 0) return { added: [], moved: 0 };
      const ranges = existing.filter((partition) => !partition.catchAll);
      const lastTo = ranges.reduce<Date | null>(
        (latest, partition) =>
          partition.to !== null && (latest === null || partition.to > latest) ? partition.to : latest,
        null,
      );
      const covered = (range: PartitionRange) =>
        ranges.some(
          (partition) =>
            (partition.from === null || partition.from < range.to) &&
            partition.to !== null &&
            partition.to > range.from,
        );
      // Periods the catch-all holds rows of.
      const held: PartitionRange[] = [];
      let from: Date | null = partitions.contiguous ? lastTo : null;
      while (held.length < MAX_SPLIT_PARTITIONS) {
        const oldest = await partitions.oldestInCatchAll(this.#db, this.#table, from);
        if (oldest === null) break;
        const range = partitionOf(periodStart(oldest, unit), unit);
        if (!covered(range)) held.push(range);
        from = range.to;
      }
      let added: PartitionRange[];
      if (partitions.contiguous) {
        const heldTo = held.at(-1)?.to.getTime() ?? 0;
        const planned = missingPartitions(lastTo, now, unit, this.#ahead);
        const plannedTo = planned.at(-1)?.to.getTime() ?? 0;
        added = heldTo > plannedTo ? missingPartitions(lastTo, new Date(heldTo - 1), unit, 0) : planned;
        if (added.length > MAX_SPLIT_PARTITIONS) added = planned;
      } else {
        const planned = missingPartitions(null, now, unit, this.#ahead).filter((range) => !covered(range));
        added = [...planned, ...held.filter((range) => !planned.some((p) => p.name === range.name))].sort(
          (a, b) => a.from.getTime() - b.from.getTime(),
        );
      }
      if (added.length === 0) return { added: [], moved: 0 };
      const moved = await partitions.add(this.#db, this.#table, added, existing);
      return { added, moved };
    });
  }

  close(): Promise<void> {
    return this.#db.destroy();
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw error instanceof ActivityLogError ? error : this.#dialect.mapError(error);
    }
  }
}

/** A {@link PartitionMaintenance} for the configured database; `close()` it when done. */
export function openPartitionMaintenance(config: DatabaseConfig): PartitionMaintenance {
  return new PartitionMaintenance(DIALECT_REGISTRY[config.connection].create(config), config);
}

export interface PartitionSchedulerOptions {
  readonly maintenance: PartitionMaintenance;
  /** Time between passes (default one hour). */
  readonly intervalMs?: number;
  /** Time from `start()` to the first pass (default five seconds). */
  readonly firstRunDelayMs?: number;
  /** After a pass that added partitions. */
  readonly onEnsured?: (result: EnsureResult) => void;
  /** A pass failed; the next one is tried at the next interval. */
  readonly onError?: (error: unknown) => void;
}

/**
 * Runs {@link PartitionMaintenance.ensure} on a timer, as `serve` and `work` do: a first pass
 * shortly after `start()`, then one per interval. Passes never overlap; several processes may
 * each run one (a partition another one added is no longer missing, and a clash is one failed
 * pass, tried again at the next interval).
 */
export class PartitionScheduler {
  readonly #options: PartitionSchedulerOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(options: PartitionSchedulerOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#schedule(this.#options.firstRunDelayMs ?? 5000);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => undefined);
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#running = this.#options.maintenance
        .ensure()
        .then((result) => {
          if (result.added.length > 0) this.#options.onEnsured?.(result);
        })
        .catch((error: unknown) => this.#options.onError?.(error))
        .finally(() => {
          this.#running = null;
          if (!this.#stopped) this.#schedule(this.#options.intervalMs ?? HOUR_MS);
        });
    }, delayMs);
    this.#timer.unref();
  }
}
