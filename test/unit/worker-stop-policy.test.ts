import { describe, expect, it } from 'vitest';
import {
  beforeTakingJobs,
  drains,
  firstStopReason,
  limitReached,
  restartRequested,
  type StopLimits,
  stopReasonAfterOutage,
  whenNoJobCame,
} from '../../src/delivery/worker-stop-policy.js';
import type { BreakerState } from '../../src/resilience/breaker.js';

const runs: StopLimits = {
  once: false,
  stopWhenEmpty: false,
  maxJobs: Number.POSITIVE_INFINITY,
  maxTimeMs: Number.POSITIVE_INFINITY,
};
const once: StopLimits = { ...runs, once: true, maxJobs: 1 };
const untilEmpty: StopLimits = { ...runs, stopWhenEmpty: true };

describe('worker stop policy', () => {
  it('drains with --once or --stop-when-empty, and otherwise runs until told to stop', () => {
    expect(drains(runs)).toBe(false);
    expect(drains(once)).toBe(true);
    expect(drains(untilEmpty)).toBe(true);
  });

  it('keeps the first reason it was asked to stop for', () => {
    expect(firstStopReason(null, 'signal')).toBe('signal');
    expect(firstStopReason('max-time', 'signal')).toBe('max-time');
    expect(firstStopReason('signal', 'closed')).toBe('signal');
  });

  it('stops after --max-jobs jobs taken, and says once for --once', () => {
    const limits = { ...runs, maxJobs: 3 };
    expect(limitReached(limits, { fetched: 2, elapsedMs: 0 })).toBeNull();
    expect(limitReached(limits, { fetched: 3, elapsedMs: 0 })).toBe('max-jobs');
    expect(limitReached(once, { fetched: 0, elapsedMs: 0 })).toBeNull();
    expect(limitReached(once, { fetched: 1, elapsedMs: 0 })).toBe('once');
  });

  it('stops taking jobs after --max-time, the job limit winning when both are reached', () => {
    const limits = { ...runs, maxJobs: 5, maxTimeMs: 1000 };
    expect(limitReached(limits, { fetched: 0, elapsedMs: 999 })).toBeNull();
    expect(limitReached(limits, { fetched: 0, elapsedMs: 1000 })).toBe('max-time');
    expect(limitReached(limits, { fetched: 5, elapsedMs: 5000 })).toBe('max-jobs');
    expect(limitReached(runs, { fetched: 1e9, elapsedMs: 1e12 })).toBeNull();
  });

  it('restarts only for a marker newer than its start', () => {
    expect(restartRequested([], 1000)).toBe(false);
    expect(restartRequested([null, null], 1000)).toBe(false);
    expect(restartRequested(['1000', null], 1000)).toBe(false);
    expect(restartRequested(['999', '1001'], 1000)).toBe(true);
    expect(restartRequested([null, '1001'], 1000)).toBe(true);
  });

  it('decides what to do when no job came', () => {
    expect(whenNoJobCame(runs, 0)).toBe('keep-waiting');
    expect(whenNoJobCame(runs, 2)).toBe('keep-waiting');
    // What is in flight may fail and come back delayed: emptiness is judged after it.
    expect(whenNoJobCame(untilEmpty, 1)).toBe('settle');
    expect(whenNoJobCame(once, 1)).toBe('settle');
    expect(whenNoJobCame(untilEmpty, 0)).toBe('stop-if-empty');
    expect(whenNoJobCame(once, 0)).toBe('stop-once');
  });

  it('takes jobs while the store breaker is closed, whatever else holds', () => {
    const closed = { state: 'closed' as BreakerState, isAllowed: true };
    for (const limits of [runs, once, untilEmpty]) {
      expect(beforeTakingJobs(limits, closed, 0)).toBe('take');
      expect(beforeTakingJobs(limits, closed, 5)).toBe('take');
    }
  });

  it('lets a draining worker stop while the store breaker is not closed', () => {
    for (const state of ['open', 'half_open'] as const) {
      for (const isAllowed of [true, false]) {
        expect(beforeTakingJobs(untilEmpty, { state, isAllowed }, 0)).toBe('settle-and-stop');
        expect(beforeTakingJobs(once, { state, isAllowed }, 1)).toBe('settle-and-stop');
      }
    }
  });

  it('sends the probe alone once the cooldown has passed', () => {
    expect(beforeTakingJobs(runs, { state: 'open', isAllowed: true }, 1)).toBe('wait-for-one');
    expect(beforeTakingJobs(runs, { state: 'open', isAllowed: false }, 0)).toBe('wait-for-probe');
    expect(beforeTakingJobs(runs, { state: 'half_open', isAllowed: false }, 0)).toBe('wait-for-probe');
    expect(beforeTakingJobs(runs, { state: 'open', isAllowed: true }, 0)).toBe('probe');
  });

  it('reports store-unavailable after an outage unless stopping for a reason of its own', () => {
    expect(stopReasonAfterOutage(null)).toBe('store-unavailable');
    expect(stopReasonAfterOutage('once')).toBe('store-unavailable');
    expect(stopReasonAfterOutage('empty')).toBe('store-unavailable');
    for (const reason of ['signal', 'closed', 'restart', 'max-jobs', 'max-time'] as const) {
      expect(stopReasonAfterOutage(reason)).toBe(reason);
    }
  });
});
