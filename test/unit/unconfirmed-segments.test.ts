import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { defaultModelResolver } from '../../src/core/activity.js';
import { buildActivity } from '../../src/core/build-activity.js';
import { UnconfirmedSegments } from '../../src/resilience/unconfirmed-segments.js';
import type { WriteFate } from '../../src/resilience/write-acknowledgement.js';

const buildOptions = { resolveModel: defaultModelResolver, isSecretKey: () => false };
const batch = (count: number): Activity[] =>
  Array.from({ length: count }, (_, i) =>
    buildActivity({ description: `confirm ${i}` }, undefined, buildOptions),
  );

const POLL_MS = 1000;

/** A destination whose answer for each key (its activity id) the test sets; unknown keys are pending. */
function setup() {
  const fates = new Map<string, WriteFate>();
  const asked: string[][] = [];
  const released: string[] = [];
  const rewound: string[] = [];
  const lost: string[] = [];
  const failures: unknown[] = [];
  let rewinds = 0;
  let checkError: unknown = null;
  let releaseError: unknown = null;
  const unconfirmed = new UnconfirmedSegments({
    acknowledgement: {
      keysOf: (activities) => activities.map((activity) => activity.id),
      check: async (keys) => {
        asked.push([...keys]);
        if (checkError !== null) throw checkError;
        return new Map(keys.map((key) => [key, fates.get(key) ?? 'pending']));
      },
    },
    spool: {
      release: async (segment) => {
        if (releaseError !== null) throw releaseError;
        released.push(segment);
      },
      rewind: (segment) => {
        rewound.push(segment);
      },
    },
    pollMs: POLL_MS,
    onLost: (segment) => lost.push(segment),
    onFailed: (error) => failures.push(error),
    onRewound: () => {
      rewinds++;
    },
  });
  const settle = (activities: readonly Activity[], fate: WriteFate) => {
    for (const activity of activities) fates.set(activity.id, fate);
  };
  return {
    unconfirmed,
    settle,
    asked,
    released,
    rewound,
    lost,
    failures,
    rewinds: () => rewinds,
    failChecks: (error: unknown) => {
      checkError = error;
    },
    failReleases: (error: unknown) => {
      releaseError = error;
    },
  };
}

describe('UnconfirmedSegments', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('asks about every key of a segment once pollMs has passed, not before', async () => {
    const t = setup();
    const [first, second] = [batch(2), batch(1)];
    t.unconfirmed.add('seg-1', [first, second]);
    await vi.advanceTimersByTimeAsync(POLL_MS - 1);
    expect(t.asked).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(t.asked).toEqual([[...first, ...second].map((activity) => activity.id)]);
  });

  it('releases a segment once every key is stored or failed for good, and then stops polling', async () => {
    const t = setup();
    const [stored, failed] = [batch(2), batch(1)];
    t.unconfirmed.add('seg-1', [stored, failed]);
    t.settle(stored, 'stored');
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(t.released).toEqual([]);
    t.settle(failed, 'failed');
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(t.released).toEqual(['seg-1']);
    expect(t.rewinds()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(POLL_MS * 5);
    expect(t.asked).toHaveLength(2);
  });

  it('asks again only about the keys not yet confirmed', async () => {
    const t = setup();
    const [stored, pending] = [batch(2), batch(1)];
    t.unconfirmed.add('seg-1', [stored, pending]);
    t.settle(stored, 'stored');
    await vi.advanceTimersByTimeAsync(POLL_MS * 2);
    expect(t.asked[1]).toEqual(pending.map((activity) => activity.id));
  });

  it('rewinds a segment with a lost key, reports it, and asks for a replay once per check', async () => {
    const t = setup();
    const [lostOne, lostTwo, kept] = [batch(1), batch(1), batch(1)];
    t.unconfirmed.add('seg-1', [lostOne]);
    t.unconfirmed.add('seg-2', [lostTwo]);
    t.unconfirmed.add('seg-3', [kept]);
    t.settle(lostOne, 'lost');
    t.settle(lostTwo, 'lost');
    t.settle(kept, 'stored');
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(t.rewound).toEqual(['seg-1', 'seg-2']);
    expect(t.lost).toEqual(['seg-1', 'seg-2']);
    expect(t.released).toEqual(['seg-3']);
    expect(t.rewinds()).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('adds the keys of a later batch of the same segment to those it waits for', async () => {
    const t = setup();
    const [early, late] = [batch(1), batch(1)];
    t.unconfirmed.add('seg-1', [early]);
    t.unconfirmed.add('seg-1', [late]);
    t.settle(early, 'stored');
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(t.released).toEqual([]);
    t.settle(late, 'stored');
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(t.released).toEqual(['seg-1']);
  });

  it('reports a destination that cannot be asked, keeps the segment and asks again later', async () => {
    const t = setup();
    const activities = batch(1);
    t.unconfirmed.add('seg-1', [activities]);
    const unreachable = new Error('redis down');
    t.failChecks(unreachable);
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(t.failures).toEqual([unreachable]);
    expect(t.released).toEqual([]);
    expect(t.rewound).toEqual([]);
    t.failChecks(null);
    t.settle(activities, 'stored');
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(t.released).toEqual(['seg-1']);
  });

  it('reports a segment the spool could not release', async () => {
    const t = setup();
    const activities = batch(1);
    t.unconfirmed.add('seg-1', [activities]);
    t.settle(activities, 'stored');
    const diskError = new Error('EIO');
    t.failReleases(diskError);
    await vi.advanceTimersByTimeAsync(POLL_MS);
    expect(t.failures).toEqual([diskError]);
  });

  it('stops polling on close(), leaving the segments held', async () => {
    const t = setup();
    t.unconfirmed.add('seg-1', [batch(1)]);
    t.unconfirmed.close();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(POLL_MS * 5);
    expect(t.asked).toEqual([]);
    expect(t.released).toEqual([]);
  });
});
