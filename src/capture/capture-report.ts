import type { CaptureReport } from '../metrics/capture-figures.js';
import { roundTo } from '../metrics/collector.js';
import type { CaptureStats } from './capture-runner.js';

/** The report of a capture runner's figures now. */
export function captureReportOf(
  stats: CaptureStats,
  where: { readonly host: string; readonly pid: number },
  nowMs: number,
): CaptureReport {
  return {
    source: stats.streamKey,
    slot: stats.slot,
    kind: stats.kind,
    state: stats.state,
    host: where.host,
    pid: where.pid,
    started_at: new Date(stats.startedAtMs).toISOString(),
    lag_bytes: stats.lagBytes,
    lag_seconds: roundTo(stats.lagSeconds, 1),
    retained_bytes: stats.retainedBytes,
    events_per_second: stats.eventsPerSecond,
    activities: stats.activities,
    durable_activities: stats.durableActivities,
    position: stats.position,
    position_saved_at:
      stats.positionSavedAtMs === null ? null : new Date(stats.positionSavedAtMs).toISOString(),
    reported_at: new Date(nowMs).toISOString(),
  };
}
