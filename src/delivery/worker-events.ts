import type { Activity } from '../core/activity.js';
import type { ActivityLogError } from '../core/errors.js';

/** Why a worker stopped. */
export type WorkerStopReason =
  /** `close()` or `stop()` was called. */
  | 'closed'
  /** SIGTERM / SIGINT. */
  | 'signal'
  /** `activity-log restart` ran after this worker started. */
  | 'restart'
  /** `--once`: the next job was handled (or there was none). */
  | 'once'
  | 'max-jobs'
  | 'max-time'
  /** `--stop-when-empty`: nothing was waiting or delayed. */
  | 'empty'
  /**
   * `--once` / `--stop-when-empty`: the store's circuit breaker opened, so the backlog cannot be
   * drained now; the jobs are left waiting in Redis with their tries intact.
   */
  | 'store-unavailable';

/** What a worker did, reported when it stops. */
export interface WorkerSummary {
  readonly reason: WorkerStopReason;
  /** Jobs stored and completed. */
  readonly jobs: number;
  /** Activities in those jobs. */
  readonly activities: number;
  /** Rows that were new (a re-delivered job inserts none). */
  readonly inserted: number;
  /** Multi-row INSERT statements that succeeded. */
  readonly inserts: number;
  /** Jobs this worker moved to the failed set (out of tries, or not activity jobs). */
  readonly failedJobs: number;
  /** Failed attempts whose job will be tried again. */
  readonly retriedJobs: number;
  /** Jobs handed back to the queue, tries untouched, because the store was unavailable. */
  readonly returnedJobs: number;
  /** Jobs whose lock expired while this worker held them (another worker takes them over). */
  readonly lostJobs: number;
  /** Activities the store refused as data, kept in the spool's `rejected.ndjson` (their jobs completed). */
  readonly refused: number;
  readonly seconds: number;
  /** Activities per second over the worker's lifetime. */
  readonly ratePerSecond: number;
}

export interface StoredEvent {
  readonly jobIds: readonly string[];
  /** Activities written. */
  readonly count: number;
  /** Of those, new rows. */
  readonly inserted: number;
  /** INSERT statements used. */
  readonly inserts: number;
  readonly durationMs: number;
  /** The activities written (their `createdAt` gives the lag from `log()` to the stored row). */
  readonly activities: readonly Activity[];
}

export interface JobFailedEvent {
  readonly jobId: string;
  /** 1-based attempt that failed. */
  readonly attempt: number;
  readonly count: number;
  readonly error: ActivityLogError;
  /** False when the job went to the failed set. */
  readonly willRetry: boolean;
}

/** Activities the store refused as data; kept in `rejected.ndjson`, their jobs completed. */
export interface JobsRefusedEvent {
  readonly jobIds: readonly string[];
  readonly count: number;
  /** Of those, not kept because the spool was full (counted as drops). */
  readonly dropped: number;
  readonly error: ActivityLogError;
}

/** Jobs put back at the head of the queue, tries untouched, because the store was unavailable. */
export interface JobsReturnedEvent {
  readonly jobIds: readonly string[];
  readonly count: number;
  readonly error: ActivityLogError;
}

export interface WorkerWarning {
  readonly message: string;
  readonly cause?: unknown;
}

/** Typed worker events; metrics and the CLI subscribe, the worker never knows who listens. */
export interface WorkerEvents {
  /** A group of jobs (one or more) was stored with multi-row INSERTs and completed. */
  stored: [event: StoredEvent];
  /** A job attempt failed. */
  jobFailed: [event: JobFailedEvent];
  /** The store refused some activities of stored jobs as data. */
  refused: [event: JobsRefusedEvent];
  /** The store was unavailable: the jobs went back to the queue without using a try. */
  jobsReturned: [event: JobsReturnedEvent];
  /** Something worth a line on stderr that did not fail a job (Redis outage, eviction policy, lost lock). */
  warning: [warning: WorkerWarning];
  stopped: [summary: WorkerSummary];
}
