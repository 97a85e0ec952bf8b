import { describe, expect, it } from 'vitest';
import { activityToJson } from '../../src/core/activity-json.js';
import {
  activityJobId,
  activityJobOptions,
  decodeActivityJob,
  encodeActivityJob,
} from '../../src/delivery/queue-job.js';
import { QUEUE_PREFIX, restartMarkerKey, storedCounterKey } from '../../src/delivery/queue-keys.js';
import { defaultTimeoutSeconds, packStatements, workerTimings } from '../../src/delivery/worker.js';
import { builtActivities } from '../helpers/activity-factory.js';

describe('queue jobs', () => {
  it('round-trips activities through the job payload with every field intact', () => {
    const activities = builtActivities(5);
    const data = JSON.parse(JSON.stringify(encodeActivityJob(activities)));
    expect(decodeActivityJob(data)).toEqual(activities);
  });

  it('derives the job id from the activity ids, so a retried enqueue is the same job', () => {
    const activities = builtActivities(10);
    expect(activityJobId(activities)).toBe(activityJobId([...activities]));
    expect(activityJobId(activities)).not.toBe(activityJobId(activities.slice(1)));
    // Never starts with `-`, which `activity-log retry <id>` would read as a flag.
    expect(activityJobId(activities)).toMatch(/^[0-9a-f]{32}$/);
  });

  it('refuses payloads this library did not write, naming what is wrong', () => {
    expect(() => decodeActivityJob({ something: 'else' })).toThrow(/not an activity-log job/);
    expect(() => decodeActivityJob({ v: 1 })).toThrow(/no activities array/);
    expect(() => decodeActivityJob({ v: 1, activities: [{ id: 'x' }] })).toThrow(/activities\[0\]/);
    const [valid] = decodeActivityJob({ v: 1, activities: [activityToJson(builtActivities(1)[0]!)] });
    const json = activityToJson(valid!);
    for (const bad of [
      { ...json, id: 'x'.repeat(300) },
      { ...json, created_at: 'yesterday' },
    ]) {
      expect(() => decodeActivityJob({ v: 1, activities: [json, bad] })).toThrow(
        expect.objectContaining({
          code: 'QUEUE_JOB_INVALID',
          message: expect.stringMatching(/activities\[1\]/),
        }),
      );
    }
  });

  it('gives jobs their tries, jittered exponential backoff and keeps failed ones', () => {
    expect(activityJobOptions(4)).toMatchObject({
      attempts: 4,
      backoff: { type: 'exponential', jitter: 0.5 },
      removeOnFail: false,
    });
  });

  it('keeps every key under one cluster hash tag', () => {
    expect(QUEUE_PREFIX).toBe('{activity-log}');
    for (const key of [restartMarkerKey(), restartMarkerKey('q'), storedCounterKey('q')]) {
      expect(key.startsWith('{activity-log}:')).toBe(true);
    }
  });
});

describe('worker timings', () => {
  it('hands over a dead worker’s job within retry-after and renews live locks well before expiry', () => {
    const timings = workerTimings(90);
    expect(timings.lockDurationMs).toBe(45_000);
    expect(timings.lockRenewMs).toBeLessThan(timings.lockDurationMs);
    // Worst case: lock expiry plus one stalled-check interval.
    expect(timings.lockDurationMs + timings.stalledIntervalMs).toBeLessThanOrEqual(90_000);
  });

  it('defaults --timeout below retry-after', () => {
    expect(defaultTimeoutSeconds(90)).toBe(60);
    expect(defaultTimeoutSeconds(3)).toBe(2);
    expect(defaultTimeoutSeconds(1)).toBe(1);
  });
});

describe('packStatements', () => {
  const jobs = (...sizes: number[]) => {
    let offset = 0;
    return sizes.map((size) => {
      const activities = builtActivities(size, offset);
      offset += size;
      return { activities };
    });
  };

  it('packs whole jobs in order, up to the batch size per statement', () => {
    const group = jobs(25, 25, 25, 25, 25);
    const statements = packStatements(group, 100);
    expect(statements.map((s) => s.length)).toEqual([100, 25]);
    expect(statements.flat()).toEqual(group.flatMap((job) => job.activities));
  });

  it('never shares a statement between part of a job and another job', () => {
    // One that does not fit starts the next statement; one larger than the batch is split on its own.
    expect(packStatements(jobs(3, 3), 5).map((s) => s.length)).toEqual([3, 3]);
    const group = jobs(2, 12, 2);
    const statements = packStatements(group, 5);
    expect(statements.map((s) => s.length)).toEqual([2, 5, 5, 2, 2]);
    expect(statements.flat()).toEqual(group.flatMap((job) => job.activities));
    expect(packStatements([], 5)).toEqual([]);
  });
});
