import type { Activity } from '../core/activity.js';
import { type RefusedActivity, writeWithIsolation } from '../resilience/write-with-isolation.js';

/** What a worker merges into statements: a job's activities, in order. */
export interface ActivitiesOfJob {
  readonly activities: readonly Activity[];
}

/**
 * The insert statements for a group of jobs: whole jobs, packed in order, up to `batchSize` rows
 * per statement. A statement never holds part of a job together with another job, so a statement
 * that fails leaves none of the jobs merged with it half-stored; a job larger than `batchSize` is
 * split into statements of its own (a retry of that job stores the rest, idempotently).
 */
export function packStatements(group: readonly ActivitiesOfJob[], batchSize: number): Activity[][] {
  const statements: Activity[][] = [];
  let current: Activity[] = [];
  for (const { activities } of group) {
    if (current.length > 0 && current.length + activities.length > batchSize) {
      statements.push(current);
      current = [];
    }
    if (activities.length > batchSize) {
      for (let start = 0; start < activities.length; start += batchSize) {
        statements.push(activities.slice(start, start + batchSize));
      }
      continue;
    }
    for (const activity of activities) current.push(activity);
  }
  if (current.length > 0) statements.push(current);
  return statements;
}

/** What storing a group of jobs did: rows, statements, refused activities, how far it got. */
export interface GroupOutcome {
  /** New rows (a re-delivered job inserts none). */
  readonly inserted: number;
  /** Statements that stored their activities. */
  readonly inserts: number;
  readonly refused: readonly RefusedActivity[];
  /** Activities of the group, in order, that were stored or refused before the store failed. */
  readonly processed: number;
  /** The store failure that stopped it, if one did. */
  readonly error?: unknown;
}

/**
 * Stores a group of jobs in the statements {@link packStatements} packs, in order, each through
 * `write`. A statement the store refuses as data is split until the refused activities stand
 * alone ({@link writeWithIsolation}), so one bad activity never fails the honest ones merged
 * with it. A failure of the store itself stops at that statement; what was written before it is
 * reported, so its jobs can still complete.
 *
 * @example
 * const outcome = await writeStatements(jobs, 500, (part) => store.insertMany(part));
 * const { done, rest } = splitByOutcome(jobs, outcome);
 */
export async function writeStatements(
  group: readonly ActivitiesOfJob[],
  batchSize: number,
  write: (statement: readonly Activity[]) => Promise<number>,
): Promise<GroupOutcome> {
  let inserted = 0;
  let inserts = 0;
  let processed = 0;
  const refused: RefusedActivity[] = [];
  for (const statement of packStatements(group, batchSize)) {
    const result = await writeWithIsolation(statement, write);
    inserted += result.inserted;
    inserts += result.stored.length;
    refused.push(...result.refused);
    processed += statement.length - result.unwritten.length;
    if (result.unwritten.length > 0) return { inserted, inserts, refused, processed, error: result.error };
  }
  return { inserted, inserts, refused, processed };
}

/**
 * The jobs all of whose activities were processed (stored or refused), and the rest, which the
 * store failure stopped: a job is done only when none of its activities is left unwritten.
 */
export function splitByOutcome<Job extends ActivitiesOfJob>(
  group: readonly Job[],
  outcome: Pick<GroupOutcome, 'processed'>,
): { done: Job[]; rest: Job[] } {
  const done: Job[] = [];
  const rest: Job[] = [];
  let end = 0;
  for (const job of group) {
    end += job.activities.length;
    (end <= outcome.processed ? done : rest).push(job);
  }
  return { done, rest };
}

/** The jobs that carry at least one of the refused activities. */
export function jobsWithRefused<Job extends ActivitiesOfJob>(
  jobs: readonly Job[],
  refused: readonly RefusedActivity[],
): Job[] {
  const ids = new Set(refused.map(({ activity }) => activity.id));
  return jobs.filter((job) => job.activities.some((activity) => ids.has(activity.id)));
}
