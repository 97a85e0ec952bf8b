import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../src/core/activity.js';
import {
  contextCauser,
  currentContext,
  defaultRequestCauser,
  requestContext,
  runWithContext,
} from '../../src/core/context.js';
import { createActivityLog } from '../../src/runtime/create-activity-log.js';
import { MemoryStore } from '../helpers/memory-sink.js';

const facts = {
  ip: '127.0.0.1',
  url: '/orders/1',
  method: 'get',
  userAgent: 'agent/1.0',
  resolveCauser: () => null,
};

class Account {
  constructor(readonly id: number) {}
}

describe('defaultRequestCauser()', () => {
  it('takes { type, id } and class instances as they are', () => {
    const ref = { type: 'Admin', id: 3 };
    const account = new Account(4);
    expect(defaultRequestCauser({ user: ref })).toBe(ref);
    expect(defaultRequestCauser({ user: account })).toBe(account);
  });

  it('records a plain object with an id as a User', () => {
    expect(defaultRequestCauser({ user: { id: 9, email: 'a@example.test' } })).toEqual({
      type: 'User',
      id: '9',
    });
  });

  it('finds no causer without a user or without an id', () => {
    expect(defaultRequestCauser({})).toBeNull();
    expect(defaultRequestCauser({ user: { name: 'no id' } })).toBeNull();
    expect(defaultRequestCauser({ user: 'bob' })).toBeNull();
    expect(defaultRequestCauser(null)).toBeNull();
  });
});

describe('requestContext()', () => {
  it('keeps valid request facts and upper-cases the method', () => {
    expect(requestContext(facts, false)).toMatchObject({
      ipAddress: '127.0.0.1',
      url: '/orders/1',
      method: 'GET',
      userAgent: 'agent/1.0',
    });
    expect(requestContext(facts, false).batchUuid).toBeUndefined();
  });

  it('stores IPv4-mapped IPv6 addresses as IPv4 and leaves out addresses that are not IPs', () => {
    expect(requestContext({ ...facts, ip: '::ffff:203.0.113.9' }, false).ipAddress).toBe('203.0.113.9');
    expect(requestContext({ ...facts, ip: '2001:db8::1' }, false).ipAddress).toBe('2001:db8::1');
    expect(requestContext({ ...facts, ip: 'unknown' }, false).ipAddress).toBeUndefined();
    expect(requestContext({ ...facts, ip: undefined }, false).ipAddress).toBeUndefined();
  });

  it('cuts an over-long URL and drops a method that could not be stored, so log() still succeeds', async () => {
    const context = requestContext(
      { ...facts, url: `/${'x'.repeat(LIMITS.urlChars + 100)}`, method: 'X'.repeat(LIMITS.methodChars + 1) },
      false,
    );
    expect(context.url).toHaveLength(LIMITS.urlChars);
    expect(context.method).toBeUndefined();
    const activityLog = createActivityLog({ env: {}, store: new MemoryStore(), config: { method: 'sync' } });
    const activity = await runWithContext(context, () => activityLog.log({ description: 'odd request' }));
    expect(activity.url).toHaveLength(LIMITS.urlChars);
    await activityLog.close();
  });

  it('takes the first of repeated user-agent headers and makes a batch uuid when asked', () => {
    const context = requestContext({ ...facts, userAgent: ['first', 'second'] }, true);
    expect(context.userAgent).toBe('first');
    expect(context.batchUuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
  });
});

describe('contextCauser()', () => {
  it('prefers a set causer, then asks the resolver at the time of the call', () => {
    let user: { type: string; id: number } | null = null;
    const context = requestContext({ ...facts, resolveCauser: () => user }, false);
    expect(contextCauser(context)).toBeNull();
    user = { type: 'User', id: 1 };
    expect(contextCauser(context)).toEqual({ type: 'User', id: 1 });
    expect(contextCauser({ ...context, causer: { type: 'Job', id: 2 } })).toEqual({ type: 'Job', id: 2 });
    expect(contextCauser(undefined)).toBeNull();
  });

  it('lets a nested context override the request causer, with null meaning anonymous', async () => {
    const store = new MemoryStore();
    const activityLog = createActivityLog({ env: {}, store, config: { method: 'sync' } });
    const outer = requestContext({ ...facts, resolveCauser: () => ({ type: 'User', id: 5 }) }, false);
    await runWithContext(outer, async () => {
      await activityLog.log({ description: 'as the user' });
      await runWithContext({ causer: null }, () => activityLog.log({ description: 'as nobody' }));
      expect(currentContext()?.url).toBe('/orders/1');
    });
    const rows = [...store.rows.values()].map((row) => [row.description, row.causerId]);
    expect(rows.sort()).toEqual([
      ['as nobody', null],
      ['as the user', '5'],
    ]);
  });
});
