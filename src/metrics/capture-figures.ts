/**
 * Where a capture is: `streaming` (reading, keeping up or catching up), `reconnecting` (the source
 * connection is being re-established), `stalled` (changes wait and nothing was made durable for
 * 30 s: the activity database or the delivery does not take them), `starting`, `stopping`,
 * `stopped`.
 */
export type CaptureState = 'starting' | 'streaming' | 'reconnecting' | 'stalled' | 'stopping' | 'stopped';

/** A capture process writes its figures this often. */
export const CAPTURE_REPORT_INTERVAL_MS = 5000;
/** Figures older than this are not live: their process stopped reporting (it died, or cannot write). */
export const CAPTURE_REPORT_STALE_MS = 3 * CAPTURE_REPORT_INTERVAL_MS;

/** What a capture process writes about one stream (`activity_log_capture_stats.report`). */
export interface CaptureReport {
  /** The stream: which server, database and slot. */
  readonly source: string;
  readonly slot: string;
  /** `postgres` or `mariadb`. */
  readonly kind: string;
  readonly state: CaptureState;
  readonly host: string;
  readonly pid: number;
  /** ISO-8601. */
  readonly started_at: string;
  /** Change stream written by the source and not yet confirmed durable, bytes. */
  readonly lag_bytes: number | null;
  /** Seconds since the commit of the oldest change not yet durable; 0 when caught up. */
  readonly lag_seconds: number;
  /** WAL (PostgreSQL) or binary log (MariaDB/MySQL) the source keeps behind the slot, bytes. */
  readonly retained_bytes: number | null;
  /** Row changes made into activities per second, mean of the last 60 s. */
  readonly events_per_second: number;
  /** Activities made from row changes since the process started, and of those the durable ones. */
  readonly activities: number;
  readonly durable_activities: number;
  /** The last position saved as durable, and when (ISO-8601). */
  readonly position: string | null;
  readonly position_saved_at: string | null;
  /** When the process wrote these figures (ISO-8601). */
  readonly reported_at: string;
}

/** One entry of the snapshot's `capture`: a report, and whether it is live. */
export interface CaptureJson extends Omit<CaptureReport, 'state'> {
  /**
   * The reported state while the figures are fresh; `stale` once they are older than
   * {@link CAPTURE_REPORT_STALE_MS} (the process stopped reporting without saying it stopped);
   * `stopped` when the process said so.
   */
  readonly state: CaptureState | 'stale';
  /** Whether the figures are fresh and the process is reading (not stopped, not stale). */
  readonly live: boolean;
  readonly report_age_seconds: number;
}

/**
 * The snapshot's `capture`: one entry per stream and slot (the freshest report of each), sorted,
 * with figures past the staleness bound shown as `stale` (or `stopped`) and no longer as reading.
 */
export function captureJsonOf(reports: readonly CaptureReport[], nowMs: number): CaptureJson[] {
  const freshest = new Map<string, CaptureReport>();
  for (const report of reports) {
    const key = `${report.source}\u0000${report.slot}`;
    const known = freshest.get(key);
    if (known === undefined || Date.parse(report.reported_at) > Date.parse(known.reported_at))
      freshest.set(key, report);
  }
  return [...freshest.values()]
    .sort((a, b) => a.source.localeCompare(b.source) || a.slot.localeCompare(b.slot))
    .map((report) => {
      const ageMs = Math.max(0, nowMs - Date.parse(report.reported_at));
      const stale = ageMs > CAPTURE_REPORT_STALE_MS;
      const state = report.state === 'stopped' ? 'stopped' : stale ? 'stale' : report.state;
      const live = state !== 'stopped' && state !== 'stale';
      return {
        ...report,
        state,
        live,
        events_per_second: live ? report.events_per_second : 0,
        report_age_seconds: Math.round(ageMs / 1000),
      };
    });
}

/** A report read back from JSON text, or null when it is not one. */
export function parseCaptureReport(text: string): CaptureReport | null {
  try {
    const value = JSON.parse(text) as Partial<CaptureReport> | null;
    if (value === null || typeof value.source !== 'string' || typeof value.reported_at !== 'string')
      return null;
    return value as CaptureReport;
  } catch {
    return null;
  }
}
