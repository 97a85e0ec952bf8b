import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { defaultModelResolver } from '../../src/core/activity.js';
import type { ActivitySink } from '../../src/core/activity-sink.js';
import { buildActivity } from '../../src/core/build-activity.js';
import { ActivityLogError } from '../../src/core/errors.js';
import { BatchDelivery } from '../../src/delivery/batch.js';
import { SyncDelivery } from '../../src/delivery/sync.js';
import { CircuitBreaker } from '../../src/resilience/breaker.js';
import { JournaledDelivery } from '../../src/resilience/journaled-delivery.js';
import {
  ResilientSink,
  type ResilientSinkOptions,
  resilienceOf,
} from '../../src/resilience/resilient-sink.js';
import { Spool } from '../../src/resilience/spool.js';
import { MemorySink } from '../helpers/memory-sink.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const buildOptions = { resolveModel: defaultModelResolver, isSecretKey: () => false };

function activities(count: number, offset = 0): Activity[] {
  return Array.from({ length: count }, (_, i) =>
    buildActivity({ description: `activity ${offset + i}`, logName: 'orders' }, undefined, buildOptions),
  );
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the condition');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sortedIds = (list: readonly Activity[]) => list.map((activity) => activity.id).sort();

describe('ResilientSink', () => {
  let dir: string;

  /** A sink spooling to `dir`, closed through `defer` (tests pass `deferQuietly`: some close it or break its spool). */
  function resilient(
    defer: TestScope['defer'],
    target: ActivitySink,
    options: Partial<ResilientSinkOptions> = {},
  ): ResilientSink {
    const sink = new ResilientSink({
      target,
      breaker: new CircuitBreaker({
        name: target.name,
        failureThreshold: 3,
        cooldownMs: 150,
        timeoutMs: 200,
      }),
      spool: new Spool({ dir, maxBytes: 1024 * 1024, warn: () => undefined }),
      replayBatchSize: 50,
      replayRetryMs: 20,
      ...options,
    });
    defer(() => sink.close());
    return sink;
  }

  beforeEach(async ({ onTestFinished }) => {
    const parent = await mkdtemp(join(tmpdir(), 'activity-log-resilient-'));
    // Runs after the fixtures' teardown, so after every sink of the test was closed.
    onTestFinished(() => rm(parent, { recursive: true, force: true }));
    dir = join(parent, 'spool');
  });

  it('writes straight to the destination while it is healthy, leaving no spool behind', async ({
    deferQuietly,
  }) => {
    const target = new MemorySink();
    const sink = resilient(deferQuietly, target);
    await sink.write(activities(10));
    expect(target.stored).toHaveLength(10);
    await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
  });

  it('spools a failed write, resolves, and replays it once the destination answers again', async ({
    deferQuietly,
  }) => {
    const target = new MemorySink();
    const sink = resilient(deferQuietly, target);
    const spooled: string[] = [];
    sink.bus.on('spooled', (event) => spooled.push(event.reason));
    target.failNext = 1;
    const sent = activities(20);
    await sink.write(sent);
    expect(spooled).toEqual(['write_failed']);
    expect(sink.pending()).toBe(20);
    await waitFor(() => sink.pending() === 0);
    expect(sortedIds(target.stored)).toEqual(sortedIds(sent));
  });

  it('opens the breaker, spools without touching the destination, and probes with the spool after the cooldown', async ({
    deferQuietly,
  }) => {
    const target = new MemorySink();
    const sink = resilient(deferQuietly, target);
    const transitions: string[] = [];
    sink.breaker.events.on('stateChange', ({ from, to }) => transitions.push(`${from}→${to}`));
    target.failNext = Number.POSITIVE_INFINITY;
    const sent = activities(100);
    for (let i = 0; i < 100; i += 10) await sink.write(sent.slice(i, i + 10));
    expect(sink.breaker.state).toBe('open');
    const attemptsWhileOpen = target.failNext;
    await sink.write(activities(1, 1000));
    expect(target.failNext).toBe(attemptsWhileOpen);

    target.failNext = 0;
    await waitFor(() => sink.breaker.state === 'closed' && sink.pending() === 0);
    expect(target.stored).toHaveLength(101);
    expect(new Set(target.stored.map((a) => a.id)).size).toBe(101);
    expect(transitions).toEqual(['closed→open', 'open→half_open', 'half_open→closed']);
  });

  it('counts a hung destination as failing and never makes the caller wait past the timeout', async ({
    deferQuietly,
  }) => {
    let hang = true;
    const stored: Activity[] = [];
    const target: ActivitySink = {
      name: 'store',
      write: (batch) =>
        hang
          ? new Promise(() => undefined)
          : Promise.resolve().then(() => {
              stored.push(...batch);
            }),
      close: async () => undefined,
    };
    // A cooldown longer than the loop, so no probe (which may hang for the timeout) runs inside it.
    const sink = resilient(deferQuietly, target, {
      breaker: new CircuitBreaker({ name: 'store', failureThreshold: 3, cooldownMs: 1000, timeoutMs: 200 }),
    });
    const sent = activities(40);
    const durations: number[] = [];
    for (let i = 0; i < 40; i += 4) {
      const started = performance.now();
      await sink.write(sent.slice(i, i + 4));
      durations.push(performance.now() - started);
    }
    expect(Math.max(...durations)).toBeLessThan(400);
    expect(durations.slice(3).every((ms) => ms < 100)).toBe(true);
    hang = false;
    await waitFor(() => sink.pending() === 0);
    expect(sortedIds(stored)).toEqual(sortedIds(sent));
  });

  it('sets aside activities the destination refuses as bad data and writes the rest of their batch', async ({
    deferQuietly,
  }) => {
    const sent = activities(9);
    const poison = sent[5]!.id;
    const stored: Activity[] = [];
    const target: ActivitySink = {
      name: 'store',
      async write(batch) {
        if (batch.some((activity) => activity.id === poison)) {
          throw new ActivityLogError('STORE_DATA_TOO_LONG', 'Data too long for column url');
        }
        stored.push(...batch);
      },
      close: async () => undefined,
    };
    const sink = resilient(deferQuietly, target);
    await sink.write(sent);
    expect(sortedIds(stored)).toEqual(sortedIds(sent.filter((a) => a.id !== poison)));
    const rejected = (await readFile(join(dir, 'rejected.ndjson'), 'utf8')).trim().split('\n');
    expect(rejected.map((line) => (JSON.parse(line) as { activity: { id: string } }).activity.id)).toEqual([
      poison,
    ]);
    expect(sink.breaker.state).toBe('closed');
  });

  it('keeps a refused activity once when its replayed batch stopped on another failure and came back', async ({
    deferQuietly,
  }) => {
    const sent = activities(8);
    const poison = sent[1]!.id;
    const stored = new Set<string>();
    let connectionFailures = 1;
    const target: ActivitySink = {
      name: 'store',
      async write(batch) {
        if (batch.some((activity) => activity.id === poison)) {
          throw new ActivityLogError('STORE_DATA_TOO_LONG', 'Data too long for column url');
        }
        // The second half of the first split finds the destination gone for a moment.
        if (batch.some((activity) => activity.id === sent[7]!.id) && connectionFailures-- > 0) {
          throw new ActivityLogError('STORE_CONNECTION_REFUSED', 'connect ECONNREFUSED');
        }
        for (const activity of batch) stored.add(activity.id);
      },
      close: async () => undefined,
    };
    const sink = resilient(deferQuietly, target, { replayOnStart: false });
    await sink.spill(sent);
    await sink.replayNow();
    await waitFor(() => sink.pending() === 0);
    expect([...stored].sort()).toEqual(sortedIds(sent.filter((a) => a.id !== poison)));
    const rejected = (await readFile(join(dir, 'rejected.ndjson'), 'utf8')).trim().split('\n');
    expect(rejected.map((line) => (JSON.parse(line) as { activity: { id: string } }).activity.id)).toEqual([
      poison,
    ]);
  });

  it('with callerWaits (sync), rejects with the error when the destination refuses the data itself', async ({
    deferQuietly,
  }) => {
    const target: ActivitySink = {
      name: 'store',
      write: () => Promise.reject(new ActivityLogError('STORE_DATA_INVALID', 'NUL in text')),
      close: async () => undefined,
    };
    const delivery = new SyncDelivery(resilient(deferQuietly, target, { callerWaits: true }));
    await expect(delivery.deliver(activities(1)[0]!)).rejects.toMatchObject({ code: 'STORE_DATA_INVALID' });
    await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
  });

  it('rejects with SPOOL_FAILED only when the spool cannot be written either', async ({ deferQuietly }) => {
    await writeFile(join(dir, '..', 'spool'), 'not a directory');
    const target = new MemorySink();
    target.failNext = 1;
    const sink = resilient(deferQuietly, target);
    await expect(sink.write(activities(1))).rejects.toMatchObject({ code: 'SPOOL_FAILED' });
  });

  it('with callerWaits (sync), tells the caller that its activity could not be kept', async ({
    deferQuietly,
  }) => {
    const target = new MemorySink();
    target.failNext = Number.POSITIVE_INFINITY;
    const sink = resilient(deferQuietly, target, {
      callerWaits: true,
      spool: new Spool({ dir, maxBytes: 2048, warn: () => undefined }),
    });
    const delivery = new SyncDelivery(sink);
    const outcomes = [];
    for (const activity of activities(20)) {
      outcomes.push(
        await delivery.deliver(activity).then(
          () => 'ok',
          (error: ActivityLogError) => error.code,
        ),
      );
    }
    expect(outcomes[0]).toBe('ok');
    expect(outcomes.at(-1)).toBe('SPOOL_FULL');
    expect(sink.spool.droppedTotal).toBe(outcomes.filter((o) => o === 'SPOOL_FULL').length);
  });

  it('replays what an earlier run left in the spool as soon as it starts', async ({ deferQuietly }) => {
    const down = new MemorySink();
    down.failNext = Number.POSITIVE_INFINITY;
    const first = resilient(deferQuietly, down);
    const sent = activities(30);
    await first.write(sent);
    await first.close();

    const target = new MemorySink();
    resilient(deferQuietly, target);
    await waitFor(() => target.stored.length === 30);
    expect(sortedIds(target.stored)).toEqual(sortedIds(sent));
  });

  it('batch: close() with the destination down ends with everything in the spool', async ({
    deferQuietly,
  }) => {
    const down = new MemorySink();
    down.failNext = Number.POSITIVE_INFINITY;
    const delivery = new BatchDelivery(resilient(deferQuietly, down), { batchSize: 25, flushIntervalMs: 5 });
    const sent = activities(110);
    for (const activity of sent) delivery.deliver(activity);
    await delivery.close();
    expect(down.stored).toHaveLength(0);

    const spool = new Spool({ dir, maxBytes: 1024 * 1024 });
    deferQuietly(() => spool.close());
    const replayed: Activity[] = [];
    await spool.replay(
      async (batch) => {
        replayed.push(...batch);
      },
      { batchSize: 100 },
    );
    expect(sortedIds(replayed)).toEqual(sortedIds(sent));
  });

  it('sync: log() resolves while the destination is down, and the activities arrive after recovery', async ({
    deferQuietly,
  }) => {
    const target = new MemorySink();
    target.failNext = Number.POSITIVE_INFINITY;
    const delivery = new SyncDelivery(resilient(deferQuietly, target));
    const sent = activities(12);
    for (const activity of sent) await delivery.deliver(activity);
    target.failNext = 0;
    await waitFor(() => target.stored.length === 12);
    expect(sortedIds(target.stored)).toEqual(sortedIds(sent));
    expect(resilienceOf(delivery)?.breaker.state).toBe('closed');
  });

  it('probes again after the cooldown when the breaker opened while a replay pass was still running', async ({
    deferQuietly,
  }) => {
    // The replay's first write hangs past the timeout; meanwhile a live write fails and opens the
    // breaker, whose cooldown (shorter than the timeout) ends while that pass still runs.
    let mode: 'hang-once' | 'down' | 'up' = 'hang-once';
    const stored: Activity[] = [];
    const target: ActivitySink = {
      name: 'store',
      async write(batch) {
        if (mode === 'hang-once') {
          mode = 'down';
          await new Promise((resolve) => setTimeout(resolve, 2000));
        }
        if (mode === 'down') throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        stored.push(...batch);
      },
      close: async () => undefined,
    };
    const sink = resilient(deferQuietly, target, {
      breaker: new CircuitBreaker({ name: 'store', failureThreshold: 1, cooldownMs: 50, timeoutMs: 300 }),
      replayOnStart: false,
    });
    const earlier = activities(2);
    await sink.spool.append(earlier);
    const pass = sink.replayNow();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const live = activities(1, 100);
    await sink.write(live);
    expect(sink.breaker.state).toBe('open');
    await pass;
    mode = 'up';
    // No new activities arrive: only the sink's own schedule can bring the spool back.
    await waitFor(() => sink.breaker.state === 'closed' && sink.pending() === 0);
    expect(sortedIds(stored)).toEqual(sortedIds([...earlier, ...live]));
  });

  it('close() replays what this process spooled while the destination answers', async ({ deferQuietly }) => {
    const target = new MemorySink();
    const sink = resilient(deferQuietly, target, { replayOnStart: false });
    const spilled = activities(120);
    await sink.spill(spilled);
    expect(sink.pending()).toBe(120);
    await sink.close();
    expect(sortedIds(target.stored)).toEqual(sortedIds(spilled));
    expect(await readdir(dir).then((names) => names.filter((n) => n.endsWith('.seg')))).toEqual([]);
  });

  it('stops counting a segment another process claimed, so replay does not spin on it', async ({
    deferQuietly,
  }) => {
    const target = new MemorySink();
    const sink = resilient(deferQuietly, target, { replayOnStart: false });
    await sink.spool.append(activities(2));
    // What a claim by another live process does: rename the segment to its owner.
    for (const name of await readdir(dir)) {
      if (name.endsWith('.seg')) {
        await rename(join(dir, name), join(dir, name.replace(/@.*\.seg$/, '@1-0badcafe.seg')));
      }
    }
    await writeFile(join(dir, '1-0badcafe.owner'), '');
    expect(sink.pending()).toBe(2);
    const result = await sink.replayNow();
    expect(result?.complete).toBe(true);
    expect(sink.pending()).toBe(0);
    expect(target.stored).toHaveLength(0);
  });

  it('batch: a destination slower than the stream of activities spills the backlog to the spool instead of memory', async ({
    deferQuietly,
  }) => {
    let slow = true;
    const stored: Activity[] = [];
    const target: ActivitySink = {
      name: 'store',
      async write(batch) {
        if (slow) await new Promise((resolve) => setTimeout(resolve, 100));
        stored.push(...batch);
      },
      close: async () => undefined,
    };
    const sink = resilient(deferQuietly, target, { replayBatchSize: 10 });
    const spooled: string[] = [];
    sink.bus.on('spooled', (event) => spooled.push(event.reason));
    const delivery = new BatchDelivery(sink, {
      batchSize: 10,
      flushIntervalMs: 5,
      maxBufferedActivities: 30,
    });
    const sent = activities(500);
    let peak = 0;
    for (let i = 0; i < sent.length; i += 10) {
      for (const activity of sent.slice(i, i + 10)) delivery.deliver(activity);
      await new Promise((resolve) => setTimeout(resolve, 2));
      peak = Math.max(peak, delivery.pending() - sink.spool.pending());
    }
    // Held back in memory: about the limit plus the batches in flight, not the whole backlog
    // (the destination wrote fewer than 40 of the 500 in this time).
    expect(peak).toBeLessThan(150);
    expect(spooled.length).toBeGreaterThan(0);
    expect(new Set(spooled)).toEqual(new Set(['backlog']));
    slow = false;
    // flush() writes the spilled backlog too while the destination is healthy.
    await delivery.flush();
    expect(sink.pending()).toBe(0);
    expect(stored).toHaveLength(500);
    expect(sortedIds(stored)).toEqual(sortedIds(sent));
    expect(sink.breaker.state).toBe('closed');
  });
});

describe('JournaledDelivery (durability=disk)', () => {
  let dir: string;

  /** A journaled delivery spooling to `dir`, closed through `defer` (tests pass `deferQuietly`: some close it first). */
  function journaled(defer: TestScope['defer'], target: ActivitySink): JournaledDelivery {
    const sink = new ResilientSink({
      target,
      breaker: new CircuitBreaker({
        name: target.name,
        failureThreshold: 2,
        cooldownMs: 100,
        timeoutMs: 200,
      }),
      spool: new Spool({ dir, maxBytes: 1024 * 1024, warn: () => undefined }),
      replayBatchSize: 100,
      replayRetryMs: 20,
    });
    const delivery = new JournaledDelivery(sink, { flushIntervalMs: 20 });
    defer(() => delivery.close());
    return delivery;
  }

  beforeEach(async ({ onTestFinished }) => {
    const parent = await mkdtemp(join(tmpdir(), 'activity-log-journal-'));
    // Runs after the fixtures' teardown, so after every delivery of the test was closed.
    onTestFinished(() => rm(parent, { recursive: true, force: true }));
    dir = join(parent, 'spool');
  });

  it('resolves deliver() once the activity is on disk, then drains it into the destination', async ({
    deferQuietly,
  }) => {
    const target = new MemorySink();
    const delivery = journaled(deferQuietly, target);
    const sent = activities(300);
    await Promise.all(sent.map((activity) => delivery.deliver(activity)));
    const onDisk = (await readdir(dir)).filter((name) => name.endsWith('.seg'));
    expect(onDisk.length).toBeGreaterThan(0);
    await waitFor(() => target.stored.length === 300);
    expect(target.stored.map((a) => a.id)).toEqual(sent.map((a) => a.id));
    expect(Math.max(...target.writes.map((w) => w.length))).toBeGreaterThan(1);
    await waitFor(() => delivery.pending() === 0);
  });

  it('journals the activities of one deliverMany all together, or refuses them all when the spool is full', async ({
    deferQuietly,
  }) => {
    const down = new MemorySink();
    down.failNext = Number.POSITIVE_INFINITY;
    const delivery = journaled(deferQuietly, down);
    await delivery.deliverMany(activities(10));
    // 1 MiB of spool: a group too large for what is left is refused whole, nothing of it kept.
    const tooMany = activities(5000, 10);
    await expect(delivery.deliverMany(tooMany)).rejects.toMatchObject({ code: 'SPOOL_FULL' });
    expect(delivery.pending()).toBe(10);
  });

  it('keeps journaled activities across a restart while the destination is down', async ({
    deferQuietly,
  }) => {
    const down = new MemorySink();
    down.failNext = Number.POSITIVE_INFINITY;
    const first = journaled(deferQuietly, down);
    const sent = activities(50);
    await Promise.all(sent.map((activity) => first.deliver(activity)));
    await first.close();
    expect(down.stored).toHaveLength(0);

    const target = new MemorySink();
    journaled(deferQuietly, target);
    await waitFor(() => target.stored.length === 50);
    expect(sortedIds(target.stored)).toEqual(sortedIds(sent));
  });

  it('flush() drains everything journaled so far', async ({ deferQuietly }) => {
    const target = new MemorySink();
    const delivery = journaled(deferQuietly, target);
    for (const activity of activities(10)) await delivery.deliver(activity);
    await delivery.flush();
    expect(target.stored).toHaveLength(10);
  });
});
