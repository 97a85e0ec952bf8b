import { describe, expect, it } from 'vitest';
import { runWithContext } from '../../src/core/context.js';
import { isActivityLogError } from '../../src/core/errors.js';
import { type ActivityLog, createActivityLog } from '../../src/runtime/create-activity-log.js';
import { MemoryStore } from '../helpers/memory-sink.js';

function syncLog(): { activityLog: ActivityLog; store: MemoryStore } {
  const store = new MemoryStore();
  return { activityLog: createActivityLog({ env: {}, store, config: { method: 'sync' } }), store };
}

const descriptions = (store: MemoryStore) => [...store.rows.values()].map((row) => row.description).sort();

describe('activityLog.transaction()', () => {
  it('delivers the activities logged inside only when the function resolves', async () => {
    const { activityLog, store } = syncLog();
    let seenInside = -1;
    const result = await activityLog.transaction(async () => {
      await activityLog.log({ description: 'first' });
      await activityLog.logMany([{ description: 'second' }, { description: 'third' }]);
      await activityLog.activity('orders').event('updated').log('fourth');
      seenInside = store.rows.size;
      return 'done';
    });
    expect(result).toBe('done');
    expect(seenInside).toBe(0);
    expect(descriptions(store)).toEqual(['first', 'fourth', 'second', 'third']);
  });

  it('discards everything logged inside when the function throws, and rethrows', async () => {
    const { activityLog, store } = syncLog();
    await expect(
      activityLog.transaction(async () => {
        await activityLog.log({ description: 'rolled back' });
        throw new Error('payment declined');
      }),
    ).rejects.toThrow('payment declined');
    await activityLog.log({ description: 'outside' });
    expect(descriptions(store)).toEqual(['outside']);
  });

  it('fixes id, timestamp and request context when log() is called, not at commit', async () => {
    const { activityLog, store } = syncLog();
    let loggedId = '';
    await runWithContext({ ipAddress: '203.0.113.4', causer: { type: 'User', id: 1 } }, () =>
      activityLog.transaction(async () => {
        const activity = await activityLog.log({ description: 'inside' });
        loggedId = activity.id;
      }),
    );
    expect(store.rows.get(loggedId)).toMatchObject({ ipAddress: '203.0.113.4', causerId: '1' });
  });

  it('lets a nested transaction join the outer one: its activities wait for the outer commit', async () => {
    const { activityLog, store } = syncLog();
    await expect(
      activityLog.transaction(async () => {
        await activityLog.transaction(async () => {
          await activityLog.log({ description: 'nested' });
        });
        expect(store.rows.size).toBe(0);
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
    expect(store.rows.size).toBe(0);

    await activityLog.transaction(async () => {
      await activityLog.log({ description: 'kept' });
      await activityLog
        .transaction(async () => {
          await activityLog.log({ description: 'inner rolled back' });
          throw new Error('inner fails');
        })
        .catch(() => undefined);
    });
    expect(descriptions(store)).toEqual(['kept']);
  });

  it('delivers at once what a timer started inside logs after the transaction has settled', async () => {
    const { activityLog, store } = syncLog();
    let later: Promise<unknown> = Promise.resolve();
    await activityLog.transaction(async () => {
      await activityLog.log({ description: 'in the transaction' });
      later = new Promise((resolve) => setTimeout(resolve, 5)).then(() =>
        Promise.all([
          activityLog.log({ description: 'from a timer, after commit' }),
          activityLog.logMany([{ description: 'many, after commit' }]),
        ]),
      );
    });
    await later;
    expect(descriptions(store)).toEqual([
      'from a timer, after commit',
      'in the transaction',
      'many, after commit',
    ]);
  });

  it('keeps concurrent transactions apart', async () => {
    const { activityLog, store } = syncLog();
    let releaseFailing!: () => void;
    const failingMayThrow = new Promise<void>((resolve) => {
      releaseFailing = resolve;
    });
    const failing = activityLog.transaction(async () => {
      await activityLog.log({ description: 'from the failing one' });
      await failingMayThrow;
      throw new Error('no');
    });
    const passing = activityLog.transaction(async () => {
      await activityLog.log({ description: 'from the passing one' });
      releaseFailing();
    });
    await Promise.allSettled([failing, passing]);
    expect(descriptions(store)).toEqual(['from the passing one']);
  });

  it('rejects a bad activity inside at log() time, as outside', async () => {
    const { activityLog } = syncLog();
    await activityLog.transaction(async () => {
      const error = await activityLog.log({ description: '' }).catch((caught: unknown) => caught);
      expect(isActivityLogError(error, 'VALIDATION_FAILED')).toBe(true);
    });
  });
});

describe('activityLog.afterCommit()', () => {
  it('holds activities until commit() and drops them on rollback()', async () => {
    const { activityLog, store } = syncLog();
    const committed = activityLog.afterCommit();
    committed.log({ description: 'a' });
    committed.logMany([{ description: 'b' }]);
    expect(committed.size).toBe(2);
    expect(store.rows.size).toBe(0);
    await committed.commit();
    expect(descriptions(store)).toEqual(['a', 'b']);

    const rolledBack = activityLog.afterCommit();
    rolledBack.log({ description: 'c' });
    expect(rolledBack.rollback()).toBe(1);
    expect(descriptions(store)).toEqual(['a', 'b']);
  });

  it('moves a nested level into its parent on commit, and drops only the level on rollback', async () => {
    const { activityLog, store } = syncLog();
    const outer = activityLog.afterCommit();
    outer.log({ description: 'outer' });
    const savepoint = outer.nested();
    savepoint.log({ description: 'released savepoint' });
    await savepoint.commit();
    const rolledBackSavepoint = outer.nested();
    rolledBackSavepoint.log({ description: 'rolled back savepoint' });
    rolledBackSavepoint.rollback();
    expect(store.rows.size).toBe(0);
    await outer.commit();
    expect(descriptions(store)).toEqual(['outer', 'released savepoint']);
  });

  it('refuses to log into a settled list with TRANSACTION_SETTLED', async () => {
    const { activityLog } = syncLog();
    const pending = activityLog.afterCommit();
    await pending.commit();
    let caught: unknown;
    try {
      pending.log({ description: 'late' });
    } catch (error) {
      caught = error;
    }
    expect(isActivityLogError(caught, 'TRANSACTION_SETTLED')).toBe(true);
    await expect(pending.commit()).rejects.toMatchObject({ code: 'TRANSACTION_SETTLED' });
  });
});
