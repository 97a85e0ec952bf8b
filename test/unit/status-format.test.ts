import { describe, expect, it } from 'vitest';
import { captureReportOf } from '../../src/capture/capture-report.js';
import { formatStatus } from '../../src/cli/commands/status.js';
import { captureJsonOf } from '../../src/metrics/capture-figures.js';
import { composeSnapshot, TOTAL_NAMES, type TotalName, type VerifyJson } from '../../src/metrics/snapshot.js';
import { integrityWith } from '../helpers/performance-data.js';

const T0 = Date.UTC(2026, 10, 29, 2, 0, 0);
const empty = { counts: new Array(19).fill(0), sumMs: 0, count: 0 };
const totals = Object.fromEntries(TOTAL_NAMES.map((name) => [name, 0])) as Record<TotalName, number>;

function data(state: 'closed' | 'open') {
  return composeSnapshot({
    method: 'queue',
    source: 'redis',
    reports: [
      {
        id: 'web-1-4711-abcdef',
        roles: ['worker'],
        host: 'web-1',
        pid: 4711,
        started_at_ms: T0,
        heartbeat_at_ms: T0 + 1000,
        counters: {
          accepted: 0,
          enqueued: 0,
          stored: 42,
          dequeued: 42,
          writeAttempts: 1,
          writeFailures: 0,
          retries: 0,
          spooled: 0,
          replayed: 0,
          dropped: 0,
          failedJobs: 0,
        },
        stored_last_minute: 42,
        attempts_last_5m: 1,
        failures_last_5m: 0,
        buffered: 0,
        spool: null,
        breakers: [
          {
            name: 'store',
            state,
            failure_count: state === 'open' ? 5 : 0,
            is_allowed: state !== 'open',
            not_closed_since_ms: state === 'open' ? T0 : null,
          },
        ],
        lag: { total: empty, recent: empty },
        history: [],
        memory_mb: 50,
      },
    ],
    totals,
    queue: { waiting: 0, delayed: 0, active: 0, failed: 2, storedActivities: 42 },
    history: [],
    memoryMb: 61.5,
    nowMs: T0 + 2000,
  }).data;
}

describe('status output', () => {
  it('shows every snapshot field, the breaker state in capitals and the workers', () => {
    const text = formatStatus(data('closed'), { color: false });
    expect(text).toMatch(/circuit breaker\s+CLOSED \(0 consecutive failures\)/);
    expect(text).toMatch(/total processed\s+42/);
    expect(text).toMatch(/failed jobs\s+2/);
    expect(text).toMatch(/memory\s+61.5 MB/);
    expect(text).toContain('workers (1)');
    expect(text).toMatch(/web-1-4711-abcdef\s+web-1\s+4711\s+2026-11-29T02:00:00.000Z/);
    expect(text).not.toContain('\u001b[');
  });

  it('paints an open breaker red on a terminal and says it refuses writes', () => {
    const text = formatStatus(data('open'), { color: true });
    expect(text).toContain('\u001b[31;1mOPEN\u001b[0m (5 consecutive failures, refusing writes)');
  });

  it('shows the seal chain: seals, the newest checkpoint and the last verify, a failure in red', () => {
    expect(formatStatus(data('closed'), { color: false })).not.toContain('last verify');
    const verify: VerifyJson = {
      status: 'failed',
      at: '2026-11-29T02:00:00.000Z',
      duration_ms: 120,
      seals: 20,
      rows: 10_000,
      problems: 2,
      first_problem: 'rows of seal 3 are missing',
      interval_seconds: 3600,
      running: false,
      error: null,
    };
    const text = formatStatus(
      {
        ...data('closed'),
        integrity: integrityWith(verify, {
          seals_written: 20,
          rows_sealed: 10_000,
          checkpoint: { seq: 18, issued_at: '2026-11-29T01:00:00.000Z', age_seconds: 3602, source: 'dir' },
          checkpoint_behind_seconds: 300,
        }),
      },
      { color: true },
    );
    expect(text).toMatch(/seals\s+20 seals, 10000 rows sealed/);
    expect(text).toMatch(
      /checkpoint\s+seal 18, 3602 s old \(in ACTIVITY_LOG_CHECKPOINT_DIR\); the newest seals 300 s without one/,
    );
    expect(text).toContain(
      '\u001b[31;1mNOT INTACT\u001b[0m at 2026-11-29T02:00:00.000Z: 2 problems, first: rows of seal 3 are missing',
    );
  });

  it('shows each captured stream: streaming with its rate and lag, or STALE with the age of its figures', () => {
    const nowMs = T0 + 2000;
    const report = (reportedAtMs: number) =>
      captureReportOf(
        {
          state: 'streaming',
          kind: 'postgres',
          streamKey: 'postgres:1/shop/activity_log',
          slot: 'activity_log',
          position: '0/10',
          positionSavedAtMs: T0,
          startedAtMs: T0 - 60_000,
          eventsPerSecond: 12.5,
          activities: 10,
          durableActivities: 10,
          lagSeconds: 0.4,
          lagBytes: 0,
          retainedBytes: 2048,
        },
        { host: 'db-1', pid: 99 },
        reportedAtMs,
      );
    const live = formatStatus(
      { ...data('closed'), capture: captureJsonOf([report(nowMs - 1000)], nowMs) },
      { color: false },
    );
    expect(live).toMatch(
      /capture activity_log\s+STREAMING 12.5 changes\/s, 0.4 s behind, 2.0 KiB kept behind the slot/,
    );
    const stale = formatStatus(
      { ...data('closed'), capture: captureJsonOf([report(nowMs - 60_000)], nowMs) },
      { color: false },
    );
    expect(stale).toMatch(/capture activity_log\s+STALE \(figures 60 s old, pid 99 on db-1\)/);
  });
});
