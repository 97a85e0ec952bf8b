/**
 * Upper bounds (ms) of the lag buckets, from `log()` to the committed row. Fixed, so histograms of
 * different processes add up bucket by bucket; the last bucket (+Inf) is implicit.
 */
export const LAG_BUCKETS_MS: readonly number[] = Object.freeze([
  1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
]);

/** Recent quantiles cover this many minutes. */
export const LAG_WINDOW_MINUTES = 5;

/** A lag histogram in a form that serialises to JSON and merges across processes. */
export interface LagBuckets {
  /** Count per bucket of {@link LAG_BUCKETS_MS}, plus one last count for +Inf (not cumulative). */
  readonly counts: readonly number[];
  readonly sumMs: number;
  readonly count: number;
}

/** Bucket counts for every observation since start (Prometheus) and for the last few minutes (p50/p99). */
export interface LagReport {
  readonly total: LagBuckets;
  readonly recent: LagBuckets;
}

/** A zero count for every bucket of {@link LAG_BUCKETS_MS} and for +Inf. */
export function emptyLagCounts(): number[] {
  return new Array<number>(LAG_BUCKETS_MS.length + 1).fill(0);
}

/** The index in {@link LagBuckets.counts} of the bucket a lag falls in. */
export function lagBucketIndex(lagMs: number): number {
  for (let index = 0; index < LAG_BUCKETS_MS.length; index++) {
    if (lagMs <= LAG_BUCKETS_MS[index]!) return index;
  }
  return LAG_BUCKETS_MS.length;
}

interface MinuteSlot {
  minute: number;
  counts: number[];
  sumMs: number;
  count: number;
}

/**
 * The lag from `created_at` (when `log()` was called) to the commit of the row. Keeps the counts
 * since start and one slot per minute for the last {@link LAG_WINDOW_MINUTES} minutes.
 */
export class LagHistogram {
  readonly #total: MinuteSlot = { minute: 0, counts: emptyLagCounts(), sumMs: 0, count: 0 };
  readonly #minutes: MinuteSlot[] = Array.from({ length: LAG_WINDOW_MINUTES }, () => ({
    minute: -1,
    counts: emptyLagCounts(),
    sumMs: 0,
    count: 0,
  }));

  observe(lagMs: number, nowMs: number): void {
    const lag = Math.max(0, lagMs);
    const index = lagBucketIndex(lag);
    const minute = Math.floor(nowMs / 60_000);
    const slot = this.#minutes[minute % LAG_WINDOW_MINUTES]!;
    if (slot.minute !== minute) {
      slot.minute = minute;
      slot.counts.fill(0);
      slot.sumMs = 0;
      slot.count = 0;
    }
    for (const target of [this.#total, slot]) {
      target.counts[index]!++;
      target.sumMs += lag;
      target.count++;
    }
  }

  report(nowMs: number): LagReport {
    const minute = Math.floor(nowMs / 60_000);
    const recent = { counts: emptyLagCounts(), sumMs: 0, count: 0 };
    for (const slot of this.#minutes) {
      if (slot.minute <= minute - LAG_WINDOW_MINUTES || slot.minute > minute) continue;
      addInto(recent, slot);
    }
    return {
      total: { counts: [...this.#total.counts], sumMs: this.#total.sumMs, count: this.#total.count },
      recent,
    };
  }
}

function addInto(target: { counts: number[]; sumMs: number; count: number }, source: LagBuckets): void {
  for (let index = 0; index < target.counts.length; index++)
    target.counts[index]! += source.counts[index] ?? 0;
  target.sumMs += source.sumMs;
  target.count += source.count;
}

/** Adds histograms of several processes bucket by bucket. */
export function mergeLagBuckets(parts: readonly LagBuckets[]): LagBuckets {
  const merged = { counts: emptyLagCounts(), sumMs: 0, count: 0 };
  for (const part of parts) addInto(merged, part);
  return merged;
}

/**
 * The `q` quantile (0–1) in ms, interpolated linearly inside its bucket, as Prometheus'
 * `histogram_quantile` does; null without observations. Past the last finite bound it answers
 * that bound.
 */
export function lagQuantileMs(buckets: Pick<LagBuckets, 'counts' | 'count'>, q: number): number | null {
  if (buckets.count === 0) return null;
  const rank = q * buckets.count;
  let seen = 0;
  for (let index = 0; index < buckets.counts.length; index++) {
    const inBucket = buckets.counts[index] ?? 0;
    if (inBucket > 0 && seen + inBucket >= rank) {
      if (index === LAG_BUCKETS_MS.length) return LAG_BUCKETS_MS[LAG_BUCKETS_MS.length - 1]!;
      const lower = index === 0 ? 0 : LAG_BUCKETS_MS[index - 1]!;
      const upper = LAG_BUCKETS_MS[index]!;
      return Math.round(lower + ((upper - lower) * (rank - seen)) / inBucket);
    }
    seen += inBucket;
  }
  return LAG_BUCKETS_MS[LAG_BUCKETS_MS.length - 1]!;
}
