import type { ProcessReport } from '../../src/metrics/collector.js';
import { LAG_BUCKETS_MS } from '../../src/metrics/lag-histogram.js';
import {
  composeSnapshot,
  type IntegrityJson,
  type PerformanceData,
  TOTAL_NAMES,
  type VerifyJson,
} from '../../src/metrics/snapshot.js';

const T0 = Date.UTC(2026, 11, 3, 6, 0, 0);

/** The snapshot of one idle process, with `integrity` as given. */
export function idlePerformanceData(integrity: IntegrityJson | null = null): PerformanceData {
  const empty = { counts: new Array(LAG_BUCKETS_MS.length + 1).fill(0), sumMs: 0, count: 0 };
  const report: ProcessReport = {
    id: 'p1',
    roles: ['app'],
    host: 'h',
    pid: 1,
    started_at_ms: T0,
    heartbeat_at_ms: T0,
    counters: {
      accepted: 0,
      enqueued: 0,
      stored: 0,
      dequeued: 0,
      writeAttempts: 0,
      writeFailures: 0,
      retries: 0,
      spooled: 0,
      replayed: 0,
      dropped: 0,
      failedJobs: 0,
    },
    stored_last_minute: 0,
    attempts_last_5m: 0,
    failures_last_5m: 0,
    buffered: 0,
    spool: null,
    breakers: [],
    lag: { total: empty, recent: empty },
    history: [],
    memory_mb: 10,
  };
  return composeSnapshot({
    method: 'batch',
    source: 'process',
    reports: [report],
    totals: Object.fromEntries(TOTAL_NAMES.map((name) => [name, 0])) as PerformanceData['totals'],
    queue: null,
    history: [],
    memoryMb: 12.5,
    nowMs: T0,
    integrity,
  }).data;
}

/** `integrity` of a chain of 4 seals and 2000 rows, checkpoint at the head, with this verification. */
export function integrityWith(verify: VerifyJson, overrides: Partial<IntegrityJson> = {}): IntegrityJson {
  return {
    seals_written: 4,
    rows_sealed: 2000,
    read_error: null,
    checkpoint: null,
    checkpoint_behind_seconds: null,
    verify,
    ...overrides,
  };
}
