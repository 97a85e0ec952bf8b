import type { BreakerState } from '../resilience/breaker.js';
import type { WorkerStopReason } from './worker-events.js';

/** The options that decide when a worker stops on its own. */
export interface StopLimits {
  /** Handle the next job (if any) and stop. */
  readonly once: boolean;
  /** Stop when no job is waiting or delayed. */
  readonly stopWhenEmpty: boolean;
  /** Stop after taking this many jobs (`Infinity`: no limit). */
  readonly maxJobs: number;
  /** Stop taking jobs after this long (`Infinity`: no limit). */
  readonly maxTimeMs: number;
}

/**
 * Whether the worker drains the backlog and stops (`--once`, `--stop-when-empty`) rather than
 * waiting for more jobs for as long as it runs.
 */
export function drains(limits: StopLimits): boolean {
  return limits.once || limits.stopWhenEmpty;
}

/**
 * The reason a worker reports: the first stop asked for wins, so a signal that arrives while the
 * worker is stopping for `max-time` does not change what it says.
 */
export function firstStopReason(
  current: WorkerStopReason | null,
  requested: WorkerStopReason,
): WorkerStopReason {
  return current ?? requested;
}

/**
 * The limit a worker has reached before it takes more jobs, if any. Jobs count as they are
 * taken, so `--max-jobs=N` takes N jobs whatever becomes of them.
 */
export function limitReached(
  limits: StopLimits,
  progress: { readonly fetched: number; readonly elapsedMs: number },
): 'once' | 'max-jobs' | 'max-time' | null {
  if (progress.fetched >= limits.maxJobs) return limits.once ? 'once' : 'max-jobs';
  if (progress.elapsedMs >= limits.maxTimeMs) return 'max-time';
  return null;
}

/**
 * Whether `activity-log restart` ran after the worker started: a marker (for all queues, or for
 * this one) newer than the worker's start, both read from the Redis server's clock.
 */
export function restartRequested(markers: readonly (string | null)[], startedAtMs: number): boolean {
  return markers.some((marker) => marker !== null && Number(marker) > startedAtMs);
}

/**
 * What a worker does when it waited for a job and none came:
 * - `keep-waiting`: it runs until told to stop;
 * - `settle`: draining, but what is in flight may fail and come back delayed, so emptiness is
 *   judged after it has settled;
 * - `stop-once`: `--once` found nothing (or handled its job);
 * - `stop-if-empty`: `--stop-when-empty` stops if nothing is waiting or delayed either.
 */
export function whenNoJobCame(
  limits: StopLimits,
  inFlight: number,
): 'keep-waiting' | 'settle' | 'stop-once' | 'stop-if-empty' {
  if (!drains(limits)) return 'keep-waiting';
  if (inFlight > 0) return 'settle';
  return limits.once ? 'stop-once' : 'stop-if-empty';
}

/**
 * What a worker does before taking jobs, given the store's circuit breaker. While the breaker is
 * not closed the jobs stay in Redis with their tries intact:
 * - `take`: the breaker is closed;
 * - `settle-and-stop`: draining, the backlog cannot be drained now; once what is in flight has
 *   settled, the worker stops with `store-unavailable` unless the breaker closed meanwhile;
 * - `wait-for-one`: the probe goes alone, so what is in flight finishes first;
 * - `wait-for-probe`: the breaker is open and its cooldown has not passed;
 * - `probe`: the next group of jobs is the probe, and nothing else goes until it is decided.
 */
export function beforeTakingJobs(
  limits: StopLimits,
  breaker: { readonly state: BreakerState; readonly isAllowed: boolean },
  inFlight: number,
): 'take' | 'settle-and-stop' | 'wait-for-one' | 'wait-for-probe' | 'probe' {
  if (breaker.state === 'closed') return 'take';
  if (drains(limits)) return 'settle-and-stop';
  if (inFlight > 0) return 'wait-for-one';
  return breaker.isAllowed ? 'probe' : 'wait-for-probe';
}

/**
 * The reason a draining worker reports once the store turned its jobs away: it could not drain,
 * and says so (exit 1) even when it was about to stop anyway (`--once` after its one job, or an
 * empty queue). A worker stopping for any other reason keeps it.
 */
export function stopReasonAfterOutage(current: WorkerStopReason | null): WorkerStopReason {
  return current === null || current === 'once' || current === 'empty' ? 'store-unavailable' : current;
}
