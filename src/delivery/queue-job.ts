import { createHash } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import { type Activity, isUuid } from '../core/activity.js';
import { type ActivityJson, activityFromJson, activityToJson } from '../core/activity-json.js';
import { ActivityLogError } from '../core/errors.js';

/** Payload of one queue job: many activities, as JSON (format version 1). */
export interface ActivityJobData {
  readonly v: 1;
  readonly activities: readonly ActivityJson[];
}

/** First retry of a failed job after about this long; doubles per attempt, with jitter. */
export const JOB_BACKOFF_DELAY_MS = 1000;

/**
 * Completed jobs kept for inspection. A job carries up to `ACTIVITY_LOG_BATCH_SIZE` activities
 * (a few hundred KB), so only a few recent ones are kept; the stored total is a counter.
 */
export const KEEP_COMPLETED = Object.freeze({ count: 100, age: 3600 });

/**
 * The job data for `activities`. Properties stay objects here: BullMQ writes the job as JSON once,
 * and a text made earlier could only be carried as a string it would escape all over again.
 */
export function encodeActivityJob(activities: readonly Activity[]): ActivityJobData {
  return { v: 1, activities: activities.map(activityToJson) };
}

/**
 * The job id: a hash of the activity ids it carries. An enqueue that timed out on the client
 * but reached Redis is retried with the same id, and BullMQ keeps the first job instead of
 * queueing the batch twice. Hex, so an id never starts with `-` and reads as a flag in
 * `activity-log retry <id>`.
 */
export function activityJobId(activities: readonly Activity[]): string {
  const hash = createHash('sha256');
  for (const activity of activities) hash.update(activity.id);
  return hash.digest('hex').slice(0, 32);
}

/** Options of every activity job: `tries` attempts, exponential backoff with jitter, failed jobs kept. */
export function activityJobOptions(tries: number): JobsOptions {
  return {
    attempts: tries,
    backoff: { type: 'exponential', delay: JOB_BACKOFF_DELAY_MS, jitter: 0.5 },
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: false,
  };
}

/**
 * Restores the activities of a job this library wrote. They were validated when logged, so only
 * the envelope is checked here; anything else in the queue is refused with `QUEUE_JOB_INVALID`.
 */
export function decodeActivityJob(data: unknown): Activity[] {
  const envelope = data as Partial<ActivityJobData> | null;
  if (typeof envelope !== 'object' || envelope === null || envelope.v !== 1) {
    throw new ActivityLogError(
      'QUEUE_JOB_INVALID',
      'the job is not an activity-log job (expected { v: 1, activities: [...] })',
    );
  }
  const activities = envelope.activities;
  if (!Array.isArray(activities)) {
    throw new ActivityLogError('QUEUE_JOB_INVALID', 'the job has no activities array');
  }
  return activities.map((json: unknown, index) => {
    const candidate = json as Partial<ActivityJson> | null;
    if (
      typeof candidate !== 'object' ||
      candidate === null ||
      typeof candidate.id !== 'string' ||
      !isUuid(candidate.id) ||
      typeof candidate.description !== 'string' ||
      typeof candidate.created_at !== 'string' ||
      Number.isNaN(Date.parse(candidate.created_at))
    ) {
      throw new ActivityLogError(
        'QUEUE_JOB_INVALID',
        `activities[${index}] is not an activity (expected a UUID id, a description and an ISO created_at)`,
      );
    }
    return activityFromJson(candidate as ActivityJson);
  });
}

/** Activities in a job's data without restoring them (for listings). */
export function countJobActivities(data: unknown): number {
  const activities = (data as Partial<ActivityJobData> | null)?.activities;
  return Array.isArray(activities) ? activities.length : 0;
}
