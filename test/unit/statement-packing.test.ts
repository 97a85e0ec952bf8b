import { describe, expect, it } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { ActivityLogError } from '../../src/core/errors.js';
import {
  jobsWithRefused,
  packStatements,
  splitByOutcome,
  writeStatements,
} from '../../src/delivery/statement-packing.js';
import { builtActivities } from '../helpers/activity-factory.js';

/** Jobs of the given sizes with distinct activities, in order. */
function jobs(...sizes: number[]): { readonly name: string; readonly activities: Activity[] }[] {
  let offset = 0;
  return sizes.map((size, index) => {
    const activities = builtActivities(size, offset);
    offset += size;
    return { name: `job-${index}`, activities };
  });
}

const ids = (activities: readonly Activity[]) => activities.map((activity) => activity.id);

describe('packStatements', () => {
  it('merges small jobs into one statement and starts the next with the job that does not fit', () => {
    expect(packStatements(jobs(2, 2, 1), 5).map((s) => s.length)).toEqual([5]);
    expect(packStatements(jobs(2, 2, 2), 5).map((s) => s.length)).toEqual([4, 2]);
  });

  it('gives a job of exactly the batch size a statement of its own', () => {
    expect(packStatements(jobs(1, 5, 1), 5).map((s) => s.length)).toEqual([1, 5, 1]);
  });

  it('puts one job per statement with a batch size of one', () => {
    const group = jobs(1, 1, 1);
    expect(packStatements(group, 1)).toEqual(group.map((job) => job.activities));
  });
});

describe('writeStatements', () => {
  it('writes every statement in order and sums new rows and statements', async () => {
    const group = jobs(3, 3, 2);
    const written: string[][] = [];
    const outcome = await writeStatements(group, 6, async (statement) => {
      written.push(ids(statement));
      return statement.length - 1;
    });
    expect(written).toEqual(packStatements(group, 6).map(ids));
    expect(outcome).toEqual({ inserted: 6, inserts: 2, refused: [], processed: 8 });
  });

  it('isolates activities the store refuses as data and stores the rest of their statement', async () => {
    const group = jobs(2, 2);
    const bad = group[1]!.activities[0]!.id;
    const outcome = await writeStatements(group, 4, async (statement) => {
      if (statement.some((activity) => activity.id === bad)) {
        throw new ActivityLogError('STORE_DATA_TOO_LONG', 'too long');
      }
      return statement.length;
    });
    expect(outcome.refused.map(({ activity }) => activity.id)).toEqual([bad]);
    expect(outcome.inserted).toBe(3);
    expect(outcome.processed).toBe(4);
    expect(outcome.error).toBeUndefined();
  });

  it('stops at the statement the store fails, reporting how far it got and why', async () => {
    const group = jobs(2, 2, 2);
    const down = new ActivityLogError('STORE_CONNECTION_REFUSED', 'down');
    let calls = 0;
    const outcome = await writeStatements(group, 2, async (statement) => {
      calls++;
      if (calls === 2) throw down;
      return statement.length;
    });
    expect(calls).toBe(2);
    expect(outcome).toEqual({ inserted: 2, inserts: 1, refused: [], processed: 2, error: down });
  });

  it('writes nothing for an empty group', async () => {
    const outcome = await writeStatements([], 5, async () => {
      throw new Error('no statement expected');
    });
    expect(outcome).toEqual({ inserted: 0, inserts: 0, refused: [], processed: 0 });
  });
});

describe('splitByOutcome', () => {
  it('counts a job done only when every one of its activities was processed', () => {
    const group = jobs(2, 3, 1);
    const names = (list: readonly { name: string }[]) => list.map((job) => job.name);
    const at = (processed: number) => {
      const { done, rest } = splitByOutcome(group, { processed });
      return [names(done), names(rest)];
    };
    expect(at(0)).toEqual([[], ['job-0', 'job-1', 'job-2']]);
    expect(at(2)).toEqual([['job-0'], ['job-1', 'job-2']]);
    expect(at(4)).toEqual([['job-0'], ['job-1', 'job-2']]);
    expect(at(6)).toEqual([['job-0', 'job-1', 'job-2'], []]);
  });

  it('returns the jobs themselves, so a worker settles the very jobs it holds', () => {
    const group = jobs(1, 1);
    const { done } = splitByOutcome(group, { processed: 2 });
    expect(done[0]).toBe(group[0]);
    expect(done[1]).toBe(group[1]);
  });
});

describe('jobsWithRefused', () => {
  it('picks the jobs carrying at least one refused activity', () => {
    const group = jobs(2, 2, 2);
    const error = new ActivityLogError('STORE_DATA_INVALID', 'bad');
    const refused = [group[0]!.activities[1]!, group[2]!.activities[0]!].map((activity) => ({
      activity,
      error,
    }));
    expect(jobsWithRefused(group, refused).map((job) => job.name)).toEqual(['job-0', 'job-2']);
    expect(jobsWithRefused(group, [])).toEqual([]);
  });
});
