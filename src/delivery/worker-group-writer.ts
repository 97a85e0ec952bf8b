import type { EventEmitter } from 'node:events';
import type { ActivityEventBus } from '../core/activity-events.js';
import { ActivityLogError, isErrorOfKind } from '../core/errors.js';
import type { CircuitBreaker } from '../resilience/breaker.js';
import type { Spool } from '../resilience/spool.js';
import type { RefusedActivity } from '../resilience/write-with-isolation.js';
import type { ActivityStore } from '../store/activity-store.js';
import { type GroupOutcome, jobsWithRefused, splitByOutcome, writeStatements } from './statement-packing.js';
import type { WorkerEvents, WorkerSummary } from './worker-events.js';
import { asActivityLogError, type HeldJob, type WorkerJobSource } from './worker-job-source.js';

/** The running totals a worker reports in its summary. */
export type WorkerCounts = {
  -readonly [K in Exclude<keyof WorkerSummary, 'reason' | 'seconds' | 'ratePerSecond'>]: WorkerSummary[K];
};

export function emptyWorkerCounts(): WorkerCounts {
  return {
    jobs: 0,
    activities: 0,
    inserted: 0,
    inserts: 0,
    failedJobs: 0,
    retriedJobs: 0,
    returnedJobs: 0,
    lostJobs: 0,
    refused: 0,
  };
}

export interface WorkerGroupWriterOptions {
  readonly store: ActivityStore;
  /** Every statement goes through it. */
  readonly breaker: CircuitBreaker;
  readonly source: WorkerJobSource;
  /** Where activities the store refuses as data are kept (`rejected.ndjson` in the spool directory). */
  readonly rejected: Spool;
  readonly events: EventEmitter<WorkerEvents>;
  /** Where `stored` and `writeFailed` are reported for metrics. */
  readonly bus: ActivityEventBus;
  /** Updated as jobs settle. */
  readonly counts: WorkerCounts;
  /** Most activities per statement. */
  readonly batchSize: number;
  /** An attempt that runs longer fails with `QUEUE_JOB_TIMEOUT`. */
  readonly timeoutMs: number;
  readonly tries: number;
  /** Called after jobs went back to the queue because the store was unavailable. */
  readonly onJobsReturned: () => void;
}

/**
 * Writes the groups of jobs a worker takes and settles each job with its source: complete,
 * fail (a try used) or hand back (the store is unavailable), emitting the worker's events and
 * keeping its counts as it goes.
 *
 * @example
 * const writer = new WorkerGroupWriter({ store, breaker, source, rejected, events, counts, ... });
 * await writer.write(group);
 */
export class WorkerGroupWriter {
  readonly #options: WorkerGroupWriterOptions;

  constructor(options: WorkerGroupWriterOptions) {
    this.#options = options;
  }

  /**
   * Stores the group and settles each of its jobs: completed when all its activities were stored
   * or refused, handed back when the store is unavailable, failed otherwise.
   */
  async write(group: readonly HeldJob[]): Promise<void> {
    const started = performance.now();
    try {
      let outcome: GroupOutcome;
      try {
        outcome = await this.#insertWithTimeout(group);
      } catch (error) {
        // Past --timeout: every job of the group is failed (the abandoned insert is idempotent).
        const coded = asActivityLogError(error);
        for (const held of group) await this.#fail(held, coded);
        return;
      }
      const { done, rest } = splitByOutcome(group, outcome);
      let completed = done;
      if (outcome.refused.length > 0) completed = await this.#keepRefused(done, outcome.refused);
      if (completed.length > 0) await this.#complete(completed, outcome, started);
      if (rest.length === 0) return;
      const coded = asActivityLogError(outcome.error);
      if (isErrorOfKind(coded, 'outage')) await this.#handBack(rest, coded);
      else for (const held of rest) await this.#fail(held, coded);
    } finally {
      this.#options.source.release(group);
    }
  }

  /**
   * Keeps the activities the store refused as data in the spool's `rejected.ndjson` on this host,
   * so their jobs complete with every honest activity stored. A job whose refused activities
   * cannot be kept there is failed instead (tries used), so they stay in Redis.
   */
  async #keepRefused(jobs: readonly HeldJob[], refused: readonly RefusedActivity[]): Promise<HeldJob[]> {
    const withRefused = jobsWithRefused(jobs, refused);
    try {
      const { dropped } = await this.#options.rejected.reject(refused);
      this.#options.counts.refused += refused.length;
      this.#options.events.emit('refused', {
        jobIds: withRefused.map((held) => held.job.id!),
        count: refused.length,
        dropped,
        error: asActivityLogError(refused[0]!.error),
      });
      return [...jobs];
    } catch (error) {
      const coded = asActivityLogError(error);
      for (const held of withRefused) await this.#fail(held, coded);
      return jobs.filter((held) => !withRefused.includes(held));
    }
  }

  /**
   * Inserts the group's jobs (see {@link writeStatements}), each statement through the store
   * breaker (a statement slower than `DB_QUERY_TIMEOUT_MS` counts as a failure); fails with
   * `QUEUE_JOB_TIMEOUT` past `--timeout`. New rows are counted as each statement commits.
   */
  async #insertWithTimeout(group: readonly HeldJob[]): Promise<GroupOutcome> {
    const activities = group.reduce((sum, held) => sum + held.activities.length, 0);
    const insert = writeStatements(group, this.#options.batchSize, async (statement) => {
      const added = await this.#options.breaker.execute(() => this.#options.store.insertMany(statement));
      this.#countInserted(added);
      return added;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new ActivityLogError(
            'QUEUE_JOB_TIMEOUT',
            `storing ${activities} activities took longer than --timeout=${this.#options.timeoutMs / 1000}s`,
          ),
        );
      }, this.#options.timeoutMs);
    });
    // The abandoned insert may still finish or fail later; it is idempotent, so either is harmless.
    insert.catch(() => {});
    try {
      return await Promise.race([insert, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #complete(
    group: readonly HeldJob[],
    result: { readonly inserted: number; readonly inserts: number },
    started: number,
  ): Promise<void> {
    await this.#options.source.recordStored(group);
    const completed = await Promise.all(
      group.map(async (held) => {
        if (await this.#options.source.complete(held)) {
          this.#options.counts.jobs++;
          this.#options.counts.activities += held.activities.length;
          return held;
        }
        this.#options.counts.lostJobs++;
        return null;
      }),
    );
    // Only the jobs completed here: a job another worker took over is counted by that worker.
    const mine = completed.filter((held): held is HeldJob => held !== null);
    if (mine.length === 0) return;
    const count = mine.reduce((sum, held) => sum + held.activities.length, 0);
    const durationMs = performance.now() - started;
    const activities = mine.length === 1 ? mine[0]!.activities : mine.flatMap((held) => held.activities);
    this.#options.events.emit('stored', {
      jobIds: mine.map((held) => held.job.id!),
      count,
      inserted: result.inserted,
      inserts: result.inserts,
      durationMs,
      activities,
    });
    this.#options.bus.emit('stored', {
      sink: 'worker',
      destination: 'store',
      by: 'worker',
      count,
      durationMs,
      replayed: false,
      activities,
    });
  }

  #countInserted(inserted: number): void {
    this.#options.counts.inserted += inserted;
    this.#options.counts.inserts++;
    if (inserted > 0) this.#options.source.countStored(inserted);
  }

  async #fail(held: HeldJob, error: ActivityLogError): Promise<void> {
    const { attempt, willRetry, recorded } = await this.#options.source.fail(
      held,
      error,
      this.#options.tries,
    );
    if (!recorded) this.#options.counts.lostJobs++;
    else if (willRetry) this.#options.counts.retriedJobs++;
    else this.#options.counts.failedJobs++;
    this.#options.events.emit('jobFailed', {
      jobId: held.job.id!,
      attempt,
      count: held.activities.length,
      error,
      willRetry,
    });
    this.#reportFailure(held.activities.length, error, willRetry);
  }

  /** A job that holds no activities the worker can read: failed for good, no try used on the store. */
  failInvalid(invalid: {
    readonly jobId: string;
    readonly attempt: number;
    readonly error: ActivityLogError;
  }): void {
    const { jobId, attempt, error } = invalid;
    this.#options.counts.failedJobs++;
    this.#options.events.emit('jobFailed', { jobId, attempt, count: 0, error, willRetry: false });
    this.#reportFailure(0, error, false);
  }

  /** `writeFailed` on the bus: a job given up on (`willRetry` false) counts as one failed job. */
  #reportFailure(count: number, error: ActivityLogError, willRetry: boolean): void {
    this.#options.bus.emit('writeFailed', {
      sink: 'worker',
      destination: 'store',
      by: 'worker',
      count,
      error,
      willRetry,
      failedJobs: willRetry ? 0 : 1,
    });
  }

  /**
   * The store is unavailable, not the jobs bad: put them back at the head of the queue with their
   * tries untouched. The breaker keeps the worker from taking them again until a probe succeeds.
   */
  async #handBack(group: readonly HeldJob[], error: ActivityLogError): Promise<void> {
    const returned: string[] = [];
    for (const held of group) {
      if (await this.#options.source.handBack(held)) {
        returned.push(held.job.id!);
        this.#options.counts.returnedJobs++;
      } else {
        this.#options.counts.lostJobs++;
      }
    }
    const count = group.reduce((sum, held) => sum + held.activities.length, 0);
    this.#options.events.emit('jobsReturned', { jobIds: returned, count, error });
    this.#reportFailure(count, error, true);
    this.#options.onJobsReturned();
  }
}
