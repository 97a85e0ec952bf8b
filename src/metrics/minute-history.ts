import { emptyLagCounts, lagBucketIndex, lagQuantileMs } from './lag-histogram.js';

/** Minutes of history the snapshot shows. */
export const HISTORY_MINUTES = 60;

/** One minute of the snapshot's `history`. */
export interface HistoryMinute {
  /** Start of the minute, ISO-8601 UTC. */
  readonly minute: string;
  /** Activities stored in that minute. */
  readonly throughput: number;
  /** Failed write attempts in that minute. */
  readonly errors: number;
  /** Queue size last seen in that minute (null when nobody looked). */
  readonly queue_size: number | null;
  /** Median lag (ms) from `created_at` to the stored row of the activities stored that minute (null when none). */
  readonly lag_p50_ms: number | null;
  /** 99th percentile of the same lag (null when none). */
  readonly lag_p99_ms: number | null;
}

/** Raw per-minute values; `epochMinute` is `floor(ms / 60000)`. */
export interface MinuteValues {
  readonly epochMinute: number;
  readonly stored: number;
  readonly failures: number;
  readonly queueSize: number | null;
  /** Activities stored that minute per lag bucket, as the `counts` of a lag histogram. */
  readonly lagCounts: readonly number[];
}

interface Slot {
  epochMinute: number;
  stored: number;
  failures: number;
  queueSize: number | null;
  lagCounts: number[];
}

/** Per-minute throughput, errors, queue size and lag buckets for the last hour, in a fixed ring of 60 slots. */
export class MinuteHistory {
  readonly #slots: Slot[] = Array.from({ length: HISTORY_MINUTES }, () => ({
    epochMinute: -1,
    stored: 0,
    failures: 0,
    queueSize: null,
    lagCounts: emptyLagCounts(),
  }));

  addStored(count: number, nowMs: number): void {
    this.#slot(nowMs).stored += count;
  }

  /** Counts one stored activity whose row came `lagMs` after its `created_at`. */
  addLag(lagMs: number, nowMs: number): void {
    this.#slot(nowMs).lagCounts[lagBucketIndex(lagMs)]!++;
  }

  addFailures(count: number, nowMs: number): void {
    this.#slot(nowMs).failures += count;
  }

  recordQueueSize(queueSize: number, nowMs: number): void {
    this.#slot(nowMs).queueSize = queueSize;
  }

  values(nowMs: number): MinuteValues[] {
    const current = Math.floor(nowMs / 60_000);
    return this.#slots
      .filter((slot) => slot.epochMinute > current - HISTORY_MINUTES && slot.epochMinute <= current)
      .map((slot) => ({ ...slot, lagCounts: [...slot.lagCounts] }));
  }

  #slot(nowMs: number): Slot {
    const epochMinute = Math.floor(nowMs / 60_000);
    const slot = this.#slots[epochMinute % HISTORY_MINUTES]!;
    if (slot.epochMinute !== epochMinute) {
      slot.epochMinute = epochMinute;
      slot.stored = 0;
      slot.failures = 0;
      slot.queueSize = null;
      slot.lagCounts.fill(0);
    }
    return slot;
  }
}

/**
 * The snapshot's `history`: one entry per minute of the last hour, oldest first, the current
 * minute last; minutes without data show zeros. The lag quantiles come from the lag buckets of
 * every process added up, so they have the buckets' resolution.
 */
export function historyFromMinutes(values: readonly MinuteValues[], nowMs: number): HistoryMinute[] {
  const byMinute = new Map<number, MinuteValues>();
  for (const value of values) {
    const known = byMinute.get(value.epochMinute);
    byMinute.set(
      value.epochMinute,
      known === undefined
        ? value
        : {
            epochMinute: value.epochMinute,
            stored: known.stored + value.stored,
            failures: known.failures + value.failures,
            queueSize: value.queueSize ?? known.queueSize,
            lagCounts: addedLagCounts(known.lagCounts, value.lagCounts),
          },
    );
  }
  const current = Math.floor(nowMs / 60_000);
  const history: HistoryMinute[] = [];
  for (let epochMinute = current - HISTORY_MINUTES + 1; epochMinute <= current; epochMinute++) {
    const value = byMinute.get(epochMinute);
    const lagCounts = value?.lagCounts ?? [];
    const lag = { counts: lagCounts, count: lagCounts.reduce((sum, count) => sum + count, 0) };
    history.push({
      minute: new Date(epochMinute * 60_000).toISOString(),
      throughput: value?.stored ?? 0,
      errors: value?.failures ?? 0,
      queue_size: value?.queueSize ?? null,
      lag_p50_ms: lagQuantileMs(lag, 0.5),
      lag_p99_ms: lagQuantileMs(lag, 0.99),
    });
  }
  return history;
}

function addedLagCounts(a: readonly number[], b: readonly number[]): number[] {
  return emptyLagCounts().map((_, index) => (a[index] ?? 0) + (b[index] ?? 0));
}
