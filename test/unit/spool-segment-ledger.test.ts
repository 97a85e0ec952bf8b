import { describe, expect, it } from 'vitest';
import { SerialQueue } from '../../src/resilience/serial-queue.js';
import { SpoolSegmentLedger } from '../../src/resilience/spool-segment-ledger.js';

describe('SpoolSegmentLedger', () => {
  it('counts the records not yet replayed across segments', () => {
    const ledger = new SpoolSegmentLedger();
    ledger.track('a.seg', 10).replayed = 4;
    ledger.track('b.seg', 3);
    expect(ledger.pending()).toBe(9);
    ledger.forget('b.seg');
    expect(ledger.pending()).toBe(6);
  });

  it('never counts a segment replayed past what it holds as negative', () => {
    const ledger = new SpoolSegmentLedger();
    ledger.track('a.seg', 2).replayed = 5;
    ledger.track('b.seg', 1);
    expect(ledger.pending()).toBe(1);
  });

  it('lists the held segments', () => {
    const ledger = new SpoolSegmentLedger();
    ledger.track('a.seg', 1).held = true;
    ledger.track('b.seg', 1);
    expect(ledger.held()).toEqual(['a.seg']);
  });

  it('forgets segments known before the directory was read that it no longer holds, except the one being written', () => {
    const ledger = new SpoolSegmentLedger();
    for (const name of ['gone.seg', 'active.seg', 'present.seg']) ledger.track(name, 1);
    const known = ledger.names();
    ledger.track('made-while-listing.seg', 1);

    ledger.forgetVanished(known, new Set(['present.seg']), 'active.seg');

    expect(ledger.names()).toEqual(['active.seg', 'present.seg', 'made-while-listing.seg']);
  });
});

describe('SerialQueue', () => {
  it('runs operations one at a time in the order they were queued', async () => {
    const queue = new SerialQueue();
    const order: string[] = [];
    let releaseFirst = () => {};
    const gate = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    const first = queue.run(async () => {
      order.push('first started');
      await gate;
      order.push('first ended');
    });
    const second = queue.run(async () => {
      order.push('second');
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(order).toEqual(['first started']);
    releaseFirst();
    await Promise.all([first, second]);
    expect(order).toEqual(['first started', 'first ended', 'second']);
  });

  it('gives each caller its own failure and goes on with the next operation', async () => {
    const queue = new SerialQueue();
    const failed = queue.run(async () => {
      throw new Error('disk full');
    });
    const next = queue.run(async () => {});
    await expect(failed).rejects.toThrow('disk full');
    await expect(next).resolves.toBeUndefined();
    await expect(queue.idle()).resolves.toBeUndefined();
  });
});
