import { describe, expect, it } from 'vitest';
import { LIMITS, REDACTED } from '../../src/core/activity.js';
import { ActivityLogError, isActivityLogError } from '../../src/core/errors.js';
import { type ActivityLog, createActivityLog } from '../../src/runtime/create-activity-log.js';
import { MemoryStore } from '../helpers/memory-sink.js';

function syncLog(overrides: Record<string, unknown> = {}): { log: ActivityLog; store: MemoryStore } {
  const store = new MemoryStore();
  const log = createActivityLog({ env: {}, store, config: { method: 'sync', ...overrides } });
  return { log, store };
}

class Order {
  constructor(
    readonly id: number,
    readonly total: number,
  ) {}
}
class User {
  constructor(
    readonly id: string,
    readonly name: string,
  ) {}
}

async function rejection(
  promise: Promise<unknown>,
): Promise<{ code: string; field: string | undefined; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (!isActivityLogError(error)) throw error;
    return { code: error.code, field: error.field, message: error.message };
  }
  throw new Error('expected a rejection');
}

describe('log()', () => {
  it('records every field, with a UUIDv7 id made at log() time', async () => {
    const { log, store } = syncLog();
    const before = Date.now();
    const activity = await log.log({
      description: 'updated order',
      logName: 'orders',
      event: 'updated',
      subject: { type: 'Order', id: 42 },
      causer: { type: 'User', id: 'u-7' },
      properties: { attributes: { total: 10.5 }, old: { total: 9.99 } },
      ipAddress: '203.0.113.9',
      url: 'https://shop.example/orders/42',
      method: 'patch',
      userAgent: 'curl/8',
    });
    expect(activity.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(activity).toMatchObject({
      logName: 'orders',
      event: 'updated',
      subjectType: 'Order',
      subjectId: '42',
      causerType: 'User',
      causerId: 'u-7',
      properties: { attributes: { total: 10.5 }, old: { total: 9.99 } },
      ipAddress: '203.0.113.9',
      method: 'PATCH',
      userAgent: 'curl/8',
      batchUuid: null,
    });
    expect(activity.createdAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(Object.isFrozen(activity)).toBe(true);
    expect(store.rows.get(activity.id)).toBe(activity);
  });

  it('defaults the log name and leaves optional fields null', async () => {
    const { log } = syncLog();
    const activity = await log.log({ description: 'hello' });
    expect(activity.logName).toBe('default');
    expect(activity.subjectType).toBeNull();
    expect(activity.causerId).toBeNull();
    expect(activity.properties).toEqual({});
  });

  it('resolves model objects through the default resolver and a custom one', async () => {
    const { log } = syncLog();
    const activity = await log.log({
      description: 'x',
      subject: new Order(5, 1),
      causer: new User('9', 'Ann'),
    });
    expect([activity.subjectType, activity.subjectId, activity.causerType, activity.causerId]).toEqual([
      'Order',
      '5',
      'User',
      '9',
    ]);
    const custom = createActivityLog({
      env: {},
      store: new MemoryStore(),
      config: { method: 'sync' },
      resolveModel: (model) => ({
        type: `app.${model.constructor.name.toLowerCase()}`,
        id: (model as Order).id,
      }),
    });
    expect((await custom.log({ description: 'x', subject: new Order(6, 1) })).subjectType).toBe('app.order');
  });

  it('rejects a plain object subject with no type, naming the field', async () => {
    const { log } = syncLog();
    const error = await rejection(log.log({ description: 'x', subject: { id: 1 } }));
    expect(error).toMatchObject({ code: 'VALIDATION_FAILED', field: 'subject' });
  });

  it('fills :subject, :causer and :properties placeholders at log() time', async () => {
    const { log } = syncLog();
    const activity = await log.log({
      description:
        'Order :subject.id (:subject.total) by :causer.name for :properties.customer.name :properties.missing',
      subject: new Order(42, 99.5),
      causer: new User('1', 'Ann'),
      properties: { customer: { name: 'Bo' } },
    });
    expect(activity.description).toBe('Order 42 (99.5) by Ann for Bo :properties.missing');
  });

  it('snapshots properties so later changes to the caller object are not recorded', async () => {
    const { log } = syncLog();
    const properties = { items: [1, 2], when: new Date('2026-01-02T03:04:05.678Z') };
    const activity = await log.log({ description: 'x', properties });
    properties.items.push(3);
    expect(activity.properties).toEqual({ items: [1, 2], when: '2026-01-02T03:04:05.678Z' });
  });

  it('redacts secret-looking keys at any depth, and the list is configurable', async () => {
    const { log } = syncLog();
    const activity = await log.log({
      description: 'x',
      properties: {
        user: { name: 'a', Password: 'p', api_token: 't' },
        headers: { Authorization: 'Bearer z' },
      },
    });
    expect(activity.properties).toEqual({
      user: { name: 'a', Password: REDACTED, api_token: REDACTED },
      headers: { Authorization: REDACTED },
    });
    const open = syncLog({ redactKeys: ['ssn'] }).log;
    const kept = await open.log({ description: 'x', properties: { password: 'p', ssn: '1' } });
    expect(kept.properties).toEqual({ password: 'p', ssn: REDACTED });
  });

  it.each([
    ['description', { description: '' }],
    ['description', { description: 'é'.repeat(LIMITS.descriptionBytes / 2 + 1) }],
    ['logName', { description: 'x', logName: 'l'.repeat(192) }],
    ['event', { description: 'x', event: 'e'.repeat(192) }],
    ['subject.type', { description: 'x', subject: { type: 't'.repeat(192), id: 1 } }],
    ['causer.id', { description: 'x', causer: { type: 'User', id: 'i'.repeat(192) } }],
    ['properties', { description: 'x', properties: { blob: 'b'.repeat(LIMITS.propertiesBytes) } }],
    ['url', { description: 'x', url: `https://x/${'u'.repeat(LIMITS.urlChars)}` }],
    ['ipAddress', { description: 'x', ipAddress: 'not-an-ip' }],
    ['method', { description: 'x', method: 'M'.repeat(17) }],
    ['batchUuid', { description: 'x', batchUuid: 'nope' }],
    ['createdAt', { description: 'x', createdAt: 'yesterday' }],
    ['id', { description: 'x', id: '123' }],
  ])('rejects a bad %s, naming the field', async (field, input) => {
    const { log, store } = syncLog();
    const error = await rejection(log.log(input as never));
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.field).toBe(field);
    expect(error.message).toContain(field);
    expect(store.rows.size).toBe(0);
  });

  it.each([
    ['description', { description: 'a\u0000b' }],
    ['logName', { description: 'x', logName: 'a\u0000' }],
    ['subject.id', { description: 'x', subject: { type: 'Order', id: '4\u00002' } }],
    ['url', { description: 'x', url: 'https://x/\u0000' }],
    ['properties.lines[1].note', { description: 'x', properties: { lines: [{}, { note: 'a\u0000' }] } }],
  ])('rejects a NUL character in %s, naming where it is', async (field, input) => {
    const { log, store } = syncLog();
    const error = await rejection(log.log(input as never));
    expect(error).toMatchObject({ code: 'VALIDATION_FAILED', field });
    expect(error.message).toContain('NUL');
    expect(store.rows.size).toBe(0);
  });

  it('rejects a NUL character in a property key, naming the key', async () => {
    const { log } = syncLog();
    const error = await rejection(log.log({ description: 'x', properties: { nested: { 'a\u0000': 1 } } }));
    expect(error).toMatchObject({ code: 'VALIDATION_FAILED', field: 'properties.nested.a\u0000' });
  });

  it('stores half of a surrogate pair (text cut inside an emoji) as U+FFFD', async () => {
    const { log } = syncLog();
    const cut = 'ok 😀'.slice(0, 4);
    const activity = await log.log({
      description: cut,
      event: cut,
      properties: { excerpt: cut, [cut]: [cut] },
      userAgent: `agent\u0000 ${cut}`,
    });
    expect(activity.description).toBe('ok \ufffd');
    expect(activity.event).toBe('ok \ufffd');
    expect(activity.properties).toEqual({ excerpt: 'ok \ufffd', 'ok \ufffd': ['ok \ufffd'] });
    expect(activity.userAgent).toBe('agent ok \ufffd');
  });

  it('keeps a property named __proto__ as data', async () => {
    const { log } = syncLog();
    const properties = JSON.parse('{"__proto__": {"x": 1}, "a": 2}') as Record<string, unknown>;
    const activity = await log.log({ description: 'x :properties.x', properties });
    expect(Object.keys(activity.properties)).toEqual(['__proto__', 'a']);
    expect(JSON.stringify(activity.properties)).toBe('{"__proto__":{"x":1},"a":2}');
    expect(activity.description).toBe('x :properties.x');
  });

  it('redacts a secret-looking model field named in a placeholder', async () => {
    const { log } = syncLog();
    const causer = { type: 'User', id: 1, name: 'Ann', apiToken: 'sk-live-123', profile: { password: 'p' } };
    const activity = await log.log({
      description: ':causer.name :causer.apiToken :causer.profile.password',
      causer,
    });
    expect(activity.description).toBe(`Ann ${REDACTED} ${REDACTED}`);
  });

  it('redacts secret query parameters of the url, and cuts a url that redaction made too long', async () => {
    const { log } = syncLog();
    const activity = await log.log({ description: 'x', url: '/reset?token=abc&step=2' });
    expect(activity.url).toBe(`/reset?token=${REDACTED}&step=2`);
    const atLimit = `/r?${'a'.repeat(LIMITS.urlChars - 11)}&token=x`;
    expect(atLimit).toHaveLength(LIMITS.urlChars);
    const cut = await log.log({ description: 'x', url: atLimit });
    expect(cut.url).toHaveLength(LIMITS.urlChars);
    expect(cut.url).not.toContain('&token=x');
  });

  it('redacts a placeholder naming a key inside the credentials of a model', async () => {
    const { log } = syncLog();
    const causer = { type: 'Service', id: 1, credentials: { user: 'svc', key: 'k-123' } };
    const activity = await log.log({
      description: ':causer.credentials.user :causer.credentials.key',
      causer,
    });
    expect(activity.description).toBe(`svc ${REDACTED}`);
  });

  it('logMany with sync writes the activities together: one refused by the database, none stored', async () => {
    const store = new MemoryStore();
    const insertMany = store.insertMany.bind(store);
    store.insertMany = async (activities) => {
      if (activities.some((activity) => activity.description === 'poison')) {
        throw new ActivityLogError('STORE_DATA_INVALID', 'Incorrect string value for column description');
      }
      return insertMany(activities);
    };
    const activityLog = createActivityLog({ env: {}, store, config: { method: 'sync' } });
    const inputs = Array.from({ length: 20 }, (_, i) => ({ description: i === 13 ? 'poison' : `item ${i}` }));
    expect(await rejection(activityLog.logMany(inputs))).toMatchObject({ code: 'STORE_DATA_INVALID' });
    expect(store.rows.size).toBe(0);
    await activityLog.logMany(inputs.filter((input) => input.description !== 'poison'));
    expect(store.rows.size).toBe(19);
    expect(store.inserts).toBe(1);
    await activityLog.close();
  });

  it('reads a createdAt string as strict ISO-8601, UTC without an offset', async () => {
    const { log } = syncLog();
    const at = async (createdAt: string) =>
      (await log.log({ description: 'x', createdAt })).createdAt.toISOString();
    expect(await at('2024-01-01T10:00:00')).toBe('2024-01-01T10:00:00.000Z');
    expect(await at('2024-01-01T10:00:00+02:00')).toBe('2024-01-01T08:00:00.000Z');
    for (const loose of ['1', 'March 5, 2024', '2024-02-30T00:00:00Z', 'Tue Jan 02 2024']) {
      expect(await rejection(log.log({ description: 'x', createdAt: loose })), loose).toMatchObject({
        code: 'VALIDATION_FAILED',
        field: 'createdAt',
      });
    }
  });

  it('refuses a numeric subject or causer id that has lost digits, and repeated ids in one logMany', async () => {
    const { log, store } = syncLog();
    expect(
      await rejection(log.log({ description: 'x', subject: { type: 'Order', id: 2 ** 60 } })),
    ).toMatchObject({ field: 'subject.id', message: expect.stringContaining('send larger ids as strings') });
    await log.log({ description: 'x', causer: { type: 'User', id: Number.MAX_SAFE_INTEGER } });
    const id = '0190a0b0-0000-7000-8000-0000000000aa';
    expect(
      await rejection(
        log.logMany([
          { description: 'a', id },
          { description: 'b' },
          { description: 'c', id: id.toUpperCase() },
        ]),
      ),
    ).toMatchObject({ field: '[2].id', message: expect.stringContaining('repeats the id of [0]') });
    expect(store.rows.size).toBe(1);
  });

  it('rejects circular properties with a clear error instead of overflowing the stack', async () => {
    const { log } = syncLog();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(await rejection(log.log({ description: 'x', properties: circular }))).toMatchObject({
      field: `properties${'.self'.repeat(LIMITS.propertiesDepth)}`,
      message: expect.stringContaining('circular'),
    });
  });

  it('refuses properties nested deeper than MariaDB stores, naming the value that is too deep', async () => {
    const { log, store } = syncLog();
    // `levels` nested containers, counting the properties object itself.
    const nested = (levels: number, leaf: unknown = {}): unknown =>
      levels === 1 ? leaf : { a: nested(levels - 1, leaf) };
    expect(LIMITS.propertiesDepth).toBe(31);
    const deepest = await log.log({ description: 'x', properties: nested(31) as Record<string, unknown> });
    expect(JSON.stringify(deepest.properties)).toBe(`${'{"a":'.repeat(30)}{}${'}'.repeat(30)}`);
    expect(
      await rejection(log.log({ description: 'x', properties: nested(32) as Record<string, unknown> })),
    ).toMatchObject({
      code: 'VALIDATION_FAILED',
      field: `properties${'.a'.repeat(31)}`,
      message: expect.stringContaining('31 levels'),
    });
    // Arrays are levels too.
    await log.log({ description: 'x', properties: nested(30, [[1]]) as Record<string, unknown> });
    const list = nested(31, [[1]]) as Record<string, unknown>;
    expect(await rejection(log.log({ description: 'x', properties: list }))).toMatchObject({
      field: `properties${'.a'.repeat(30)}[0]`,
    });
    expect(store.rows.size).toBe(2);
  });

  it('reads a toJSON result once, as JSON does, and counts only the levels it stores', async () => {
    const { log } = syncLog();
    const wrapper = { toJSON: () => ({ toJSON: () => 'inner', kept: 1 }) };
    const once = await log.log({ description: 'x', properties: { wrapper } });
    expect(once.properties).toEqual(JSON.parse(JSON.stringify({ wrapper })));
    const levels = (n: number): unknown => (n === 1 ? {} : { a: levels(n - 1) });
    const deep = await log.log({ description: 'x', properties: { w: { toJSON: () => levels(30) } } });
    expect(JSON.stringify(deep.properties)).toBe(`{"w":${'{"a":'.repeat(29)}{}${'}'.repeat(29)}}`);
  });

  it.each([
    ['properties.n', Number.NaN],
    ['properties.list[1]', Number.POSITIVE_INFINITY],
    ['properties.n', Number.NEGATIVE_INFINITY],
  ])('refuses a number JSON cannot carry at %s (%s) instead of storing null', async (field, value) => {
    const { log, store } = syncLog();
    const properties = field === 'properties.n' ? { n: value } : { list: [1, value] };
    expect(await rejection(log.log({ description: 'x', properties }))).toMatchObject({
      code: 'VALIDATION_FAILED',
      field,
      message: expect.stringContaining('finite'),
    });
    expect(store.rows.size).toBe(0);
  });

  it('refuses a property number past 2^53 − 1, which has lost digits, and keeps every smaller one exactly', async () => {
    const { log } = syncLog();
    for (const value of [2 ** 53, -(2 ** 53), 2 ** 53 + 2, 1e21, Number.MAX_VALUE]) {
      expect(
        await rejection(log.log({ description: 'x', properties: { deep: { n: value } } })),
        String(value),
      ).toMatchObject({ field: 'properties.deep.n', message: expect.stringContaining('as strings') });
    }
    const kept = [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0.1, 5e-324, 1e-7, 4503599627370495.5];
    const activity = await log.log({ description: 'x', properties: { kept, big: 2n ** 64n } });
    expect(activity.properties).toEqual({ kept, big: '18446744073709551616' });
  });

  it('stores -0 in properties as 0, as JSON writes it on every dialect', async () => {
    const { log } = syncLog();
    const activity = await log.log({ description: 'x', properties: { n: -0, list: [-0] } });
    expect(Object.is(activity.properties.n, 0)).toBe(true);
    expect(Object.is((activity.properties.list as number[])[0], 0)).toBe(true);
  });

  it('refuses two property keys that become one once half surrogates are replaced', async () => {
    const { log } = syncLog();
    for (const properties of [
      { 'a\ud800': 1, 'a\udc00': 2 },
      { 'a\ufffd': 1, 'a\ud800': 2 },
      { 'a\ud800': 1, 'a\ufffd': 2 },
    ]) {
      expect(
        await rejection(log.log({ description: 'x', properties: { nested: properties } })),
      ).toMatchObject({ code: 'VALIDATION_FAILED', field: 'properties.nested.a\ufffd' });
    }
  });

  it('refuses an IP address longer than the 45-character column; a zone id fits when the whole text does', async () => {
    const { log, store } = syncLog();
    const fits = `fe80::1%${'z'.repeat(45 - 8)}`;
    expect((await log.log({ description: 'x', ipAddress: fits })).ipAddress).toBe(fits);
    expect((await log.log({ description: 'x', ipAddress: 'fe80::1%eth0' })).ipAddress).toBe('fe80::1%eth0');
    const full = 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255';
    expect((await log.log({ description: 'x', ipAddress: full })).ipAddress).toBe(full);
    expect(await rejection(log.log({ description: 'x', ipAddress: `${fits}z` }))).toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'ipAddress',
      message: expect.stringContaining('45 characters'),
    });
    expect(store.rows.size).toBe(3);
  });

  it('refuses a method longer than its column once upper-cased', async () => {
    const { log } = syncLog();
    expect((await log.log({ description: 'x', method: 'ß'.repeat(8) })).method).toBe('SS'.repeat(8));
    expect(await rejection(log.log({ description: 'x', method: 'ß'.repeat(9) }))).toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'method',
      message: expect.stringContaining('upper-cased'),
    });
  });

  it('stores half of a surrogate pair in a subject or causer type or id as U+FFFD', async () => {
    const { log } = syncLog();
    const cut = 'Order 😀'.slice(0, 7);
    const activity = await log.log({
      description: 'x',
      subject: { type: cut, id: cut },
      causer: { type: `${cut}s`, id: `7${cut}` },
    });
    expect(activity).toMatchObject({
      subjectType: 'Order \ufffd',
      subjectId: 'Order \ufffd',
      causerType: 'Order \ufffds',
      causerId: '7Order \ufffd',
    });
  });

  it('refuses a numeric id past 2^53 − 1 from a custom resolver too', async () => {
    const custom = createActivityLog({
      env: {},
      store: new MemoryStore(),
      config: { method: 'sync' },
      resolveModel: () => ({ type: 'Order', id: 2 ** 60 }),
    });
    expect(await rejection(custom.log({ description: 'x', subject: new Order(1, 1) }))).toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'subject.id',
    });
  });

  it('keeps a caller-chosen UUID so a retried call stores once', async () => {
    const { log, store } = syncLog();
    const id = '0190a0b0-0000-7000-8000-000000000001';
    await log.log({ description: 'x', id });
    await log.log({ description: 'x', id });
    expect(store.rows.size).toBe(1);
  });

  it('logMany validates every input before accepting any', async () => {
    const { log, store } = syncLog();
    const error = await rejection(
      log.logMany([{ description: 'ok' }, { description: 'x', ipAddress: 'bad' }]),
    );
    expect(error.field).toBe('[1].ipAddress');
    expect(store.rows.size).toBe(0);
    const stored = await log.logMany([{ description: 'a' }, { description: 'b' }]);
    expect(stored).toHaveLength(2);
    expect(store.rows.size).toBe(2);
  });

  it('rejects log() after close()', async () => {
    const { log } = syncLog();
    await log.close();
    expect((await rejection(log.log({ description: 'late' }))).code).toBe('DELIVERY_CLOSED');
  });
});

describe('builder', () => {
  it('sets every field fluently and never mutates a shared builder', async () => {
    const { log } = syncLog();
    const base = log.activity('orders').performedOn(new Order(1, 5)).causedBy(new User('2', 'Ann'));
    const when = new Date('2026-03-04T05:06:07.089Z');
    const first = await base
      .event('updated')
      .withProperties({ a: 1 })
      .withProperty('b', 2)
      .createdAt(when)
      .log('updated :subject.id');
    const second = await base.log('plain');
    expect(first).toMatchObject({
      logName: 'orders',
      event: 'updated',
      description: 'updated 1',
      subjectType: 'Order',
      causerId: '2',
      properties: { a: 1, b: 2 },
    });
    expect(first.createdAt.toISOString()).toBe('2026-03-04T05:06:07.089Z');
    expect(second).toMatchObject({ event: null, properties: {}, description: 'plain', logName: 'orders' });
  });

  it('causedByAnonymous() clears a causer from the context', async () => {
    const { log } = syncLog();
    const { runWithContext } = await import('../../src/core/context.js');
    await runWithContext({ causer: { type: 'User', id: 1 } }, async () => {
      expect((await log.activity().log('with context')).causerId).toBe('1');
      expect((await log.activity().causedByAnonymous().log('anonymous')).causerId).toBeNull();
    });
  });
});

describe('withinBatch()', () => {
  it('gives every activity inside, across awaits, one batch uuid, and none outside', async () => {
    const { log } = syncLog();
    const ids = await log.withinBatch(async () => {
      const a = await log.log({ description: 'a' });
      await new Promise((resolve) => setTimeout(resolve, 5));
      const b = await log.activity().log('b');
      const nested = await log.withinBatch(() => log.log({ description: 'c' }));
      return [a.batchUuid, b.batchUuid, nested.batchUuid];
    });
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(ids).size).toBe(1);
    expect((await log.log({ description: 'outside' })).batchUuid).toBeNull();
    const other = await log.withinBatch(() => log.log({ description: 'd' }));
    expect(other.batchUuid).not.toBe(ids[0]);
  });

  it('keeps concurrent batches apart', async () => {
    const { log } = syncLog();
    const [a, b] = await Promise.all([
      log.withinBatch(async () => {
        await new Promise((resolve) => setTimeout(resolve, 3));
        return log.log({ description: 'a' });
      }),
      log.withinBatch(() => log.log({ description: 'b' })),
    ]);
    expect(a.batchUuid).not.toBe(b.batchUuid);
  });
});
