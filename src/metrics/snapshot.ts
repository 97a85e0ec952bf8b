import type { BreakerState } from '../resilience/breaker.js';
import type { CaptureJson } from './capture-figures.js';
import { type BreakerReport, type ProcessReport, RATE_WINDOW_SECONDS, roundTo } from './collector.js';
import { type LagBuckets, lagQuantileMs, mergeLagBuckets } from './lag-histogram.js';
import { type HistoryMinute, historyFromMinutes, type MinuteValues } from './minute-history.js';

/** `circuit_breaker` and each entry of `breakers`. */
export interface BreakerJson {
  readonly state: BreakerState;
  readonly failure_count: number;
  readonly is_allowed: boolean;
}

/** One entry of `breakers`: the worst of the breakers of that name across processes. */
export interface NamedBreakerJson extends BreakerJson {
  /** Processes with a breaker of this name. */
  readonly processes: number;
  /** Seconds since the breaker last was closed, null while closed. */
  readonly open_for_seconds: number | null;
}

/** One live worker process. */
export interface WorkerJson {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** ISO-8601. */
  readonly started: string;
  /** ISO-8601. */
  readonly last_heartbeat: string;
  /** Activities this worker stored since it started. */
  readonly stored: number;
  /** Activities per second over the last minute. */
  readonly current_rate: number;
}

/** `integrity.checkpoint`: the newest signed checkpoint of the chain. */
export interface CheckpointJson {
  readonly seq: number;
  /** ISO-8601, as signed. */
  readonly issued_at: string;
  readonly age_seconds: number;
  /** Where it was found: `dir` (`ACTIVITY_LOG_CHECKPOINT_DIR`) or `published` (by this process). */
  readonly source: 'dir' | 'published';
}

/** `integrity.verify`: the last scheduled verification of the chain (`ACTIVITY_LOG_VERIFY_INTERVAL_S`). */
export interface VerifyJson {
  /** `ok` (intact), `failed` (problems found) or `never` (none finished yet, or none scheduled). */
  readonly status: 'ok' | 'failed' | 'never';
  /** ISO-8601: when the last verification finished; null before the first. */
  readonly at: string | null;
  readonly duration_ms: number | null;
  /** Seals and rows the last verification checked. */
  readonly seals: number;
  readonly rows: number;
  /** Problems it found (listed and beyond). */
  readonly problems: number;
  /** The first problem's line, null when intact. */
  readonly first_problem: string | null;
  /** The schedule in seconds; null when none is set. */
  readonly interval_seconds: number | null;
  /** A verification is in progress. */
  readonly running: boolean;
  /** Why the last attempt could not run (the database did not answer…); null when it ran. */
  readonly error: string | null;
}

/** `integrity`: tamper evidence as the answering process sees it (null where it watches none). */
export interface IntegrityJson {
  /** Seals in the chain (`seq` of the head of `<table>_seals`). */
  readonly seals_written: number;
  /** Rows those seals close. */
  readonly rows_sealed: number;
  /** Why the seal figures could not be read now (they are the last ones read); null when they were. */
  readonly read_error: string | null;
  /** The newest checkpoint known; null when none is. */
  readonly checkpoint: CheckpointJson | null;
  /**
   * How long the oldest seal no checkpoint covers has gone without one (counted from this
   * process's start at most); 0 when the newest checkpoint is at the head; null when no
   * checkpoints are kept (no `ACTIVITY_LOG_CHECKPOINT_DIR`, nothing published here).
   */
  readonly checkpoint_behind_seconds: number | null;
  readonly verify: VerifyJson;
}

/** `data` of `GET /api/backoffice/activity-logs/performance` and `activity-log status --json`. */
export interface PerformanceData {
  /** Activities accepted but not yet stored: buffers + queue + spool. */
  readonly queue_size: number;
  /** Activities stored per second, mean of the last 60 s. */
  readonly processing_rate: number;
  /** Percent of write attempts that failed in the last 5 minutes. */
  readonly error_rate: number;
  /** Activities stored (the queue's counter in Redis, across processes and restarts, with the queue). */
  readonly total_processed: number;
  /** Queue jobs waiting, delayed ones included. */
  readonly pending_jobs: number;
  /** Queue jobs failed (see `activity-log failed`). */
  readonly failed_jobs: number;
  /** Resident memory of the reporting process, MB. */
  readonly memory_usage: number;
  /** The store breaker (of the workers with the queue), worst state first. */
  readonly circuit_breaker: BreakerJson;
  readonly spool: {
    readonly activities: number;
    readonly bytes: number;
    readonly oldest_age_seconds: number | null;
  };
  readonly dropped_total: number;
  /** Lag from `log()` to the committed row over the last 5 minutes, ms (null without data). */
  readonly lag_ms: { readonly p50: number | null; readonly p99: number | null };
  readonly workers: readonly WorkerJson[];
  readonly breakers: Readonly<Record<string, NamedBreakerJson>>;
  /** Per minute, the last 60 minutes, oldest first. */
  readonly history: readonly HistoryMinute[];
  /** Extras: the delivery method, where the figures come from, and the totals they are made of. */
  readonly method: string;
  readonly source: 'redis' | 'process';
  readonly processes: number;
  readonly generated_at: string;
  readonly totals: Readonly<Record<TotalName, number>>;
  /** Seals, checkpoints and verification; null where this process watches no seal chain. */
  readonly integrity: IntegrityJson | null;
  /** Change capture, one entry per stream and slot (`activity-log capture`); empty when none ran. */
  readonly capture: readonly CaptureJson[];
}

/** The whole answer: `{ success: true, data }`. */
export interface PerformanceSnapshot {
  readonly success: true;
  readonly data: PerformanceData;
}

/** Totals the snapshot and `/metrics` carry (Redis keeps them across restarts with the queue). */
export const TOTAL_NAMES = [
  'accepted',
  'enqueued',
  'stored',
  'dequeued',
  'write_attempts',
  'write_failures',
  'retries',
  'spooled',
  'replayed',
  'dropped',
] as const;
export type TotalName = (typeof TOTAL_NAMES)[number];

/** Turns collector counters into the totals' names. */
export function totalsOf(report: ProcessReport): Record<TotalName, number> {
  const c = report.counters;
  return {
    accepted: c.accepted,
    enqueued: c.enqueued,
    stored: c.stored,
    dequeued: c.dequeued,
    write_attempts: c.writeAttempts,
    write_failures: c.writeFailures,
    retries: c.retries,
    spooled: c.spooled,
    replayed: c.replayed,
    dropped: c.dropped,
  };
}

/** The queue's figures, read from Redis (null without the queue). */
export interface QueueFigures {
  readonly waiting: number;
  readonly delayed: number;
  readonly active: number;
  readonly failed: number;
  /** The workers' stored-activities counter. */
  readonly storedActivities: number;
}

export interface SnapshotInput {
  readonly method: string;
  readonly source: 'redis' | 'process';
  /** Every live process's report (with the queue) or this process's alone. */
  readonly reports: readonly ProcessReport[];
  /** Totals across processes and restarts (Redis), or this process's. */
  readonly totals: Readonly<Record<TotalName, number>>;
  readonly queue: QueueFigures | null;
  readonly history: readonly MinuteValues[];
  readonly memoryMb: number;
  readonly nowMs: number;
  /** From the process's integrity watch, when it has one. */
  readonly integrity?: IntegrityJson | null;
  /** The capture processes' figures (`activity_log_capture_stats`). */
  readonly capture?: readonly CaptureJson[];
}

const STATE_RANK: Readonly<Record<BreakerState, number>> = { closed: 0, half_open: 1, open: 2 };

function worse(a: BreakerReport, b: BreakerReport): BreakerReport {
  if (STATE_RANK[b.state] !== STATE_RANK[a.state]) return STATE_RANK[b.state] > STATE_RANK[a.state] ? b : a;
  return b.failure_count > a.failure_count ? b : a;
}

/**
 * Builds the performance snapshot from process reports and the queue's figures. Pure, so the
 * field definitions are tested without services.
 */
export function composeSnapshot(input: SnapshotInput): PerformanceSnapshot {
  const { reports, queue, nowMs } = input;
  const storedLastMinute = sum(reports, (report) => report.stored_last_minute);
  const attempts = sum(reports, (report) => report.attempts_last_5m);
  const failures = sum(reports, (report) => report.failures_last_5m);

  // A spool directory shared by several processes on one host is counted once.
  const spools = new Map<string, { bytes: number; oldest: number | null }>();
  let spooledActivities = 0;
  for (const report of reports) {
    if (report.spool === null) continue;
    spooledActivities += report.spool.activities;
    const key = `${report.host}:${report.spool.dir}`;
    const known = spools.get(key);
    const oldest = minOf(known?.oldest ?? null, report.spool.oldest_at_ms);
    spools.set(key, { bytes: Math.max(known?.bytes ?? 0, report.spool.bytes), oldest });
  }
  let spoolBytes = 0;
  let oldestSpooled: number | null = null;
  for (const spool of spools.values()) {
    spoolBytes += spool.bytes;
    oldestSpooled = minOf(oldestSpooled, spool.oldest);
  }

  const buffered = sum(reports, (report) => report.buffered);
  const queued =
    queue === null
      ? 0
      : Math.max(
          input.totals.enqueued - input.totals.dequeued,
          // Every job holds at least one activity, whoever enqueued it.
          queue.waiting + queue.delayed + queue.active,
        );

  const breakers = namedBreakers(reports, nowMs);
  const store = breakers.store;

  const lag: LagBuckets = mergeLagBuckets(reports.map((report) => report.lag.recent));
  const workers = reports
    .filter((report) => report.roles.includes('worker'))
    .map(
      (report): WorkerJson => ({
        id: report.id,
        host: report.host,
        pid: report.pid,
        started: new Date(report.started_at_ms).toISOString(),
        last_heartbeat: new Date(report.heartbeat_at_ms).toISOString(),
        stored: report.counters.stored,
        current_rate: roundTo(report.stored_last_minute / RATE_WINDOW_SECONDS, 2),
      }),
    );

  return {
    success: true,
    data: {
      queue_size: buffered + queued + spooledActivities,
      processing_rate: roundTo(storedLastMinute / RATE_WINDOW_SECONDS, 2),
      error_rate: attempts === 0 ? 0 : roundTo((100 * failures) / attempts, 2),
      total_processed: queue === null ? input.totals.stored : queue.storedActivities,
      pending_jobs: queue === null ? 0 : queue.waiting + queue.delayed,
      failed_jobs: queue?.failed ?? 0,
      memory_usage: input.memoryMb,
      circuit_breaker:
        store === undefined
          ? { state: 'closed', failure_count: 0, is_allowed: true }
          : { state: store.state, failure_count: store.failure_count, is_allowed: store.is_allowed },
      spool: {
        activities: spooledActivities,
        bytes: spoolBytes,
        oldest_age_seconds:
          oldestSpooled === null ? null : Math.max(0, Math.round((nowMs - oldestSpooled) / 1000)),
      },
      dropped_total: input.totals.dropped,
      lag_ms: { p50: lagQuantileMs(lag, 0.5), p99: lagQuantileMs(lag, 0.99) },
      workers,
      breakers,
      history: historyFromMinutes(input.history, nowMs),
      method: input.method,
      source: input.source,
      processes: reports.length,
      generated_at: new Date(nowMs).toISOString(),
      totals: input.totals,
      integrity: input.integrity ?? null,
      capture: input.capture ?? [],
    },
  };
}

function namedBreakers(reports: readonly ProcessReport[], nowMs: number): Record<string, NamedBreakerJson> {
  const byName = new Map<string, { worst: BreakerReport; processes: Set<string>; since: number | null }>();
  for (const report of reports) {
    for (const breaker of report.breakers) {
      const known = byName.get(breaker.name);
      if (known === undefined) {
        byName.set(breaker.name, {
          worst: breaker,
          processes: new Set([report.id]),
          since: breaker.not_closed_since_ms,
        });
        continue;
      }
      known.worst = worse(known.worst, breaker);
      known.processes.add(report.id);
      known.since = minOf(known.since, breaker.not_closed_since_ms);
    }
  }
  const result: Record<string, NamedBreakerJson> = {};
  for (const [name, { worst, processes, since }] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    result[name] = {
      state: worst.state,
      failure_count: worst.failure_count,
      is_allowed: worst.is_allowed,
      processes: processes.size,
      open_for_seconds:
        worst.state === 'closed' || since === null ? null : Math.max(0, Math.round((nowMs - since) / 1000)),
    };
  }
  return result;
}

function sum<T>(items: readonly T[], value: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += value(item);
  return total;
}

function minOf(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}
