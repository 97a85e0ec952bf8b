import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChainProblem, ChainReport } from '../../src/integrity/verify-chain.js';
import { AlertNotifier, MemoryAlertState } from '../../src/metrics/alerts.js';
import { VerifyScheduler } from '../../src/runtime/verify-scheduler.js';
import { idlePerformanceData, integrityWith } from '../helpers/performance-data.js';

const INTERVAL_MS = 10_000;

function report(problems: readonly ChainProblem[] = [], moreProblems = 0): ChainReport {
  return {
    intact: problems.length === 0,
    fromSeq: 1,
    seals: 4,
    rows: 2000,
    unsealedRows: 0,
    head: null,
    pruned: null,
    partlyPrunedSeals: 0,
    problems,
    moreProblems,
  };
}

const ALTERED: ChainProblem = {
  kind: 'row-altered',
  seq: 3,
  message: 'row 01a2 of seal 3 does not match its seal (description altered)',
  ids: ['01a2'],
};

/** A verification that ends when the test says so. */
function controlledVerify() {
  const runs: {
    resolve: (report: ChainReport) => void;
    reject: (error: Error) => void;
    signal: AbortSignal;
  }[] = [];
  const verify = vi.fn(
    (signal: AbortSignal) =>
      new Promise<ChainReport>((resolve, reject) => {
        runs.push({ resolve, reject, signal });
        signal.addEventListener('abort', () => reject(signal.reason as Error));
      }),
  );
  return { verify, runs };
}

describe('VerifyScheduler', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 3, 6, 0, 0) });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('never starts a verification while one runs, and schedules the next an interval after it ends', async () => {
    const { verify, runs } = controlledVerify();
    const scheduler = new VerifyScheduler({ verify, intervalMs: INTERVAL_MS, firstRunDelayMs: 1000 });
    scheduler.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(verify).toHaveBeenCalledTimes(1);
    expect(scheduler.json().running).toBe(true);
    // A long verification: intervals pass and a manual run joins the one in progress.
    const joined = scheduler.runOnce();
    await vi.advanceTimersByTimeAsync(5 * INTERVAL_MS);
    expect(verify).toHaveBeenCalledTimes(1);
    runs[0]!.resolve(report());
    expect((await joined)?.report.intact).toBe(true);
    await vi.advanceTimersByTimeAsync(INTERVAL_MS - 1);
    expect(verify).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(verify).toHaveBeenCalledTimes(2);
    runs[1]!.resolve(report());
    await scheduler.stop();
  });

  it('keeps the last result: never, then ok, then failed with the first problem and the count', async () => {
    const { verify, runs } = controlledVerify();
    const results: string[] = [];
    const scheduler = new VerifyScheduler({
      verify,
      intervalMs: INTERVAL_MS,
      onResult: ({ report: { intact }, previousStatus }) => results.push(`${previousStatus}→${intact}`),
    });
    expect(scheduler.json()).toMatchObject({ status: 'never', at: null, problems: 0, first_problem: null });
    const first = scheduler.runOnce();
    await vi.advanceTimersByTimeAsync(1500);
    runs[0]!.resolve(report());
    await first;
    expect(scheduler.json()).toMatchObject({
      status: 'ok',
      at: '2026-12-03T06:00:01.500Z',
      duration_ms: 1500,
      seals: 4,
      rows: 2000,
      problems: 0,
      interval_seconds: 10,
      running: false,
      error: null,
    });
    const second = scheduler.runOnce();
    runs[1]!.resolve(report([ALTERED], 2));
    await second;
    expect(scheduler.json()).toMatchObject({ status: 'failed', problems: 3, first_problem: ALTERED.message });
    expect(results).toEqual(['never→true', 'ok→false']);
  });

  it('keeps the last result when a verification cannot run, and says why', async () => {
    const { verify, runs } = controlledVerify();
    const errors: unknown[] = [];
    const scheduler = new VerifyScheduler({
      verify,
      intervalMs: INTERVAL_MS,
      onError: (e) => errors.push(e),
    });
    const first = scheduler.runOnce();
    runs[0]!.resolve(report([ALTERED]));
    await first;
    const second = scheduler.runOnce();
    runs[1]!.reject(new Error('connect ECONNREFUSED 127.0.0.1:3306'));
    expect(await second).toBeNull();
    expect(errors).toHaveLength(1);
    expect(scheduler.json()).toMatchObject({
      status: 'failed',
      first_problem: ALTERED.message,
      error: 'connect ECONNREFUSED 127.0.0.1:3306',
    });
  });

  it('stops a verification in progress on stop() without recording it as an error', async () => {
    const { verify, runs } = controlledVerify();
    const scheduler = new VerifyScheduler({ verify, intervalMs: INTERVAL_MS, firstRunDelayMs: 0 });
    scheduler.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(1);
    await scheduler.stop();
    expect(runs[0]!.signal.aborted).toBe(true);
    expect(scheduler.json()).toMatchObject({ status: 'never', error: null, running: false });
    await vi.advanceTimersByTimeAsync(5 * INTERVAL_MS);
    expect(verify).toHaveBeenCalledTimes(1);
  });

  it('raises verify_failed through the alert rules on a failure and resolves it once the chain verifies', async () => {
    const { verify, runs } = controlledVerify();
    const scheduler = new VerifyScheduler({ verify, intervalMs: INTERVAL_MS });
    const lines: string[] = [];
    const alerts = new AlertNotifier({
      settings: {
        webhookUrl: null,
        errorRatePercent: 5,
        queueSize: 100,
        breakerOpenSeconds: 60,
        lagP99Ms: 1000,
        cooldownSeconds: 300,
      },
      state: new MemoryAlertState(),
      queueName: 'activity-logs',
      log: (line) => lines.push(line),
    });
    const check = () => alerts.check(idlePerformanceData(integrityWith(scheduler.json())));
    expect(await check()).toEqual([]);
    const failing = scheduler.runOnce();
    runs[0]!.resolve(report([ALTERED]));
    await failing;
    const fired = await check();
    expect(fired.map((alert) => [alert.rule, alert.status])).toEqual([['verify_failed', 'firing']]);
    expect(fired[0]!.text).toBe(
      `[activity-log] FIRING verify_failed: seal chain verification found 1 problem at ${scheduler.json().at}, first: ${ALTERED.message}; run \`activity-log verify --json\` for the full report`,
    );
    expect(lines).toHaveLength(1);
    // Still failing: deduplicated within the cooldown.
    expect(await check()).toEqual([]);
    const intact = scheduler.runOnce();
    runs[1]!.resolve(report());
    await intact;
    expect((await check()).map((alert) => [alert.rule, alert.status])).toEqual([
      ['verify_failed', 'resolved'],
    ]);
  });
});
