import type { DatabaseConfig } from '../config/config.js';

/**
 * Which partitions a partitioned activity table should have, without I/O: one per month or per
 * day of `created_at` (UTC), named `pYYYYMM` or `pYYYYMMDD` after the period they hold, each
 * holding `from <= created_at < to`. The dialects (`<d>-partitions.ts`) turn these into DDL.
 */

/** `ACTIVITY_LOG_PARTITION` of a partitioned table. */
export type PartitionUnit = 'month' | 'day';

/** `ACTIVITY_LOG_PARTITION` as configured. */
export type PartitionSetting = DatabaseConfig['partition'];

/** A partition of one period: `from <= created_at < to`. */
export interface PartitionRange {
  readonly name: string;
  readonly from: Date;
  readonly to: Date;
}

/** The start of the period `date` falls in. */
export function periodStart(date: Date, unit: PartitionUnit): Date {
  return unit === 'month'
    ? new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1))
    : new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
}

/** The start of the period after the one starting at `start`. */
export function nextPeriod(start: Date, unit: PartitionUnit): Date {
  return unit === 'month'
    ? new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1))
    : new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate() + 1));
}

/** `p202612` (month) or `p20261203` (day). */
export function partitionName(start: Date, unit: PartitionUnit): string {
  const iso = start.toISOString();
  return `p${iso.slice(0, 4)}${iso.slice(5, 7)}${unit === 'day' ? iso.slice(8, 10) : ''}`;
}

/** The partition of the period starting at `start`. */
export function partitionOf(start: Date, unit: PartitionUnit): PartitionRange {
  return { name: partitionName(start, unit), from: start, to: nextPeriod(start, unit) };
}

/** The current period's partition and `ahead` more, oldest first. */
export function plannedPartitions(now: Date, unit: PartitionUnit, ahead: number): PartitionRange[] {
  const planned: PartitionRange[] = [];
  let start = periodStart(now, unit);
  for (let index = 0; index <= ahead; index++) {
    const range = partitionOf(start, unit);
    planned.push(range);
    start = range.to;
  }
  return planned;
}

/**
 * The partitions `ensure` adds to a table whose range partitions end at `lastTo` (null when it
 * has none): every planned one past `lastTo`, and the periods between `lastTo` and the planned
 * ones (so a table left alone for months has no gap), oldest first.
 */
export function missingPartitions(
  lastTo: Date | null,
  now: Date,
  unit: PartitionUnit,
  ahead: number,
): PartitionRange[] {
  const planned = plannedPartitions(now, unit, ahead);
  const end = planned.at(-1)!.to;
  const missing: PartitionRange[] = [];
  let start = lastTo === null ? planned[0]!.from : lastTo;
  while (start < end) {
    const range = partitionOf(periodStart(start, unit), unit);
    // A period boundary not on this unit's grid (the unit was changed): start from it as is.
    const from = start;
    missing.push({ name: partitionName(from, unit), from, to: range.to });
    start = range.to;
  }
  return missing;
}
