import { describe, expect, it } from 'vitest';
import { captureReportOf } from '../../src/capture/capture-report.js';
import type { CaptureStats } from '../../src/capture/capture-runner.js';
import { CAPTURE_REPORT_STALE_MS, captureJsonOf } from '../../src/metrics/capture-figures.js';
import { captureLagVerdict } from '../../src/runtime/capture-lag-alert.js';

const stats: CaptureStats = {
  state: 'streaming',
  kind: 'postgres',
  streamKey: 'postgres:1/shop/activity_log',
  slot: 'activity_log',
  position: '0/10',
  positionSavedAtMs: Date.parse('2026-01-01T00:00:00.000Z'),
  startedAtMs: Date.parse('2025-12-31T23:00:00.000Z'),
  eventsPerSecond: 12.5,
  activities: 10,
  durableActivities: 5,
  lagSeconds: 0,
  lagBytes: 100,
  retainedBytes: 2048,
};

const thresholds = { lagSeconds: 300, retainedMb: 1024 };

describe('the capture_lag alert', () => {
  it('fires once the oldest change not yet durable is older than ACTIVITY_LOG_ALERT_CAPTURE_LAG_S', () => {
    expect(captureLagVerdict({ ...stats, lagSeconds: 299 }, thresholds).firing).toBe(false);
    const verdict = captureLagVerdict({ ...stats, lagSeconds: 301.4 }, thresholds);
    expect(verdict).toEqual({
      firing: true,
      message:
        'capture of slot activity_log is 301 s behind (ACTIVITY_LOG_ALERT_CAPTURE_LAG_S=300), 2048 bytes of WAL kept for the slot (ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB=1024)',
    });
  });

  it('fires once the WAL or binary log kept behind the slot passes ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB', () => {
    const mb = 1024 * 1024;
    expect(captureLagVerdict({ ...stats, retainedBytes: 1024 * mb }, thresholds).firing).toBe(false);
    expect(captureLagVerdict({ ...stats, retainedBytes: 1024 * mb + 1 }, thresholds).firing).toBe(true);
    const binlog = captureLagVerdict(
      { ...stats, kind: 'mariadb', retainedBytes: 3 * mb },
      { ...thresholds, retainedMb: 2 },
    );
    expect(binlog.firing).toBe(true);
    expect(binlog.message).toContain(`${3 * mb} bytes of binary log kept for the slot`);
    expect(
      captureLagVerdict({ ...stats, retainedBytes: null }, { ...thresholds, retainedMb: 1 }).firing,
    ).toBe(false);
  });
});

describe('the capture figures of the snapshot', () => {
  const nowMs = Date.parse('2026-01-01T00:01:00.000Z');
  const where = { host: 'db1', pid: 42 };

  it('shows fresh figures as live, with their events per second', () => {
    const [entry] = captureJsonOf([captureReportOf(stats, where, nowMs - 2000)], nowMs);
    expect(entry).toMatchObject({
      source: stats.streamKey,
      state: 'streaming',
      live: true,
      events_per_second: 12.5,
      retained_bytes: 2048,
      position: '0/10',
      position_saved_at: '2026-01-01T00:00:00.000Z',
      report_age_seconds: 2,
    });
  });

  it('shows figures past the staleness bound as stale, and a stopped capture as stopped, neither live', () => {
    const old = captureReportOf(stats, where, nowMs - CAPTURE_REPORT_STALE_MS - 1);
    expect(captureJsonOf([old], nowMs)[0]).toMatchObject({
      state: 'stale',
      live: false,
      events_per_second: 0,
    });
    const stopped = captureReportOf({ ...stats, state: 'stopped' }, where, nowMs - 1000);
    expect(captureJsonOf([stopped], nowMs)[0]).toMatchObject({ state: 'stopped', live: false });
  });

  it('keeps the freshest report of each stream and slot', () => {
    const older = captureReportOf({ ...stats, activities: 1 }, where, nowMs - 4000);
    const newer = captureReportOf({ ...stats, activities: 2 }, where, nowMs - 1000);
    const other = captureReportOf({ ...stats, slot: 'b' }, where, nowMs - 1000);
    const entries = captureJsonOf([newer, other, older], nowMs);
    expect(entries.map((entry) => [entry.slot, entry.activities])).toEqual([
      ['activity_log', 2],
      ['b', 10],
    ]);
  });
});
