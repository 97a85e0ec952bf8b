import { describe, expect, it } from 'vitest';
import { captureActivityId } from '../../src/capture/capture-id.js';
import type { CapturedTransaction, RowChange } from '../../src/capture/row-change.js';
import { activityInputsOf, type CaptureMapping } from '../../src/capture/row-change-activity.js';
import { loadConfig } from '../../src/config/config.js';
import { DEFAULT_REDACT_KEYS, isUuid } from '../../src/core/activity.js';
import { secretKeyMatcher } from '../../src/core/redact.js';

const mapping: CaptureMapping = {
  streamKey: 'postgres:1/shop/activity_log',
  sourceKind: 'postgres',
  logName: 'capture',
  subjectTypes: new Map([['orders', 'Order']]),
  defaultSchema: 'public',
  excludedColumns: new Set(['orders.internal', 'public.lines.cost']),
  isSecretKey: secretKeyMatcher(DEFAULT_REDACT_KEYS),
};

function transaction(changes: RowChange[], extra: Partial<CapturedTransaction> = {}): CapturedTransaction {
  return {
    position: '0/16B3748',
    resumePosition: '0/16B3800',
    commitTime: new Date('2026-03-01T10:00:00.123Z'),
    tag: null,
    changes,
    firstIndex: 0,
    ...extra,
  };
}

const update: RowChange = {
  schema: 'public',
  table: 'orders',
  event: 'updated',
  old: {
    id: 7,
    status: 'new',
    total: '9.99',
    internal: 'a',
    api_token: 'x',
    placed_at: new Date('2026-01-01T00:00:00Z'),
  },
  new: {
    id: 7,
    status: 'paid',
    total: '9.99',
    internal: 'b',
    api_token: 'y',
    placed_at: new Date('2026-01-01T00:00:00Z'),
  },
  unchanged: [],
  keyColumns: ['id'],
};

describe('row changes as activities', () => {
  it('records only the changed columns of an update, without excluded or secret-looking columns', () => {
    const [input] = activityInputsOf(transaction([update]), mapping);
    expect(input).toMatchObject({
      event: 'updated',
      logName: 'capture',
      subject: { type: 'Order', id: '7' },
      causer: null,
      description: 'updated Order 7',
      createdAt: new Date('2026-03-01T10:00:00.123Z'),
    });
    expect(input!.properties).toEqual({
      attributes: { status: 'paid' },
      old: { status: 'new' },
      capture: { source: 'postgres', table: 'orders', position: '0/16B3748', index: 0 },
      source: null,
    });
  });

  it('names the database user of an untagged transaction in properties.source, with what the stream says of its origin', () => {
    const [mariadb] = activityInputsOf(
      transaction([update], { origin: { user: 'console', connectionId: 812 } }),
      mapping,
    );
    expect(mariadb!.causer).toBeNull();
    expect(mariadb!.properties).toMatchObject({ source: 'console', capture: { connection_id: 812 } });
    const [postgres] = activityInputsOf(transaction([update], { origin: { xid: 7301 } }), mapping);
    expect(postgres!.properties).toMatchObject({ source: null, capture: { xid: 7301 } });
    const tagged = activityInputsOf(
      transaction([update], { tag: { causerType: 'User', causerId: '1' }, origin: { user: 'app', xid: 9 } }),
      mapping,
    );
    expect(tagged[0]!.properties).not.toHaveProperty('source');
    expect(tagged[0]!.properties!.capture).not.toHaveProperty('xid');
  });

  it('derives the same ids from the same stream position, and other ids from others', () => {
    const first = activityInputsOf(transaction([update, update]), mapping).map((input) => input.id);
    const again = activityInputsOf(transaction([update, update]), mapping).map((input) => input.id);
    const later = activityInputsOf(transaction([update], { position: '0/16B3900' }), mapping);
    expect(again).toEqual(first);
    expect(new Set([...first, later[0]!.id]).size).toBe(3);
    expect(first.every((id) => id !== undefined && isUuid(id) && id[14] === '7')).toBe(true);
    // The commit time leads the id, as in every UUIDv7 of the log.
    expect(first[0]!.slice(0, 8)).toBe(
      captureActivityId('other', 'x', 0, Date.parse('2026-03-01T10:00:00.123Z')).slice(0, 8),
    );
  });

  it('numbers the stretches of a large transaction on from where the last one ended', () => {
    const whole = activityInputsOf(transaction([update, update, update]), mapping).map((input) => input.id);
    const tail = activityInputsOf(transaction([update], { firstIndex: 2, resumePosition: null }), mapping);
    expect(tail[0]!.id).toBe(whole[2]);
  });

  it('joins a composite primary key in key order and names other schemas in the subject type', () => {
    const line: RowChange = {
      schema: 'sales',
      table: 'lines',
      event: 'created',
      old: null,
      new: { order_id: 17, line_no: 3, cost: 1, bytes: Buffer.from([1, 255]) },
      unchanged: [],
      keyColumns: ['order_id', 'line_no'],
    };
    const [input] = activityInputsOf(transaction([line]), mapping);
    expect(input!.subject).toEqual({ type: 'sales.lines', id: '17,3' });
    expect(input!.properties!.attributes).toEqual({ order_id: 17, line_no: 3, cost: 1, bytes: '\\x01ff' });
  });

  it('gives every activity of a tagged transaction its causer, request and batch', () => {
    const tag = {
      causerType: 'User',
      causerId: '42',
      batchUuid: '0190a6c4-0000-7000-8000-000000000001',
      ipAddress: '203.0.113.9',
      url: '/orders',
      method: 'POST',
    };
    const inputs = activityInputsOf(transaction([update, update], { tag }), mapping);
    for (const input of inputs) {
      expect(input).toMatchObject({
        causer: { type: 'User', id: '42' },
        batchUuid: tag.batchUuid,
        ipAddress: '203.0.113.9',
        url: '/orders',
        method: 'POST',
      });
    }
    const untagged = activityInputsOf(transaction([update, update]), mapping);
    expect(untagged[0]!.batchUuid).toBe(untagged[1]!.batchUuid);
    expect(untagged[0]!.causer).toBeNull();
  });

  it('cuts the longest values of a row too large for the properties column and says which', () => {
    const big: RowChange = {
      ...update,
      event: 'created',
      old: null,
      new: { id: 1, body: 'x'.repeat(100_000) },
    };
    const [input] = activityInputsOf(transaction([big]), mapping);
    expect(input!.properties!.attributes).toEqual({ id: 1, body: '[TRUNCATED 100002 characters]' });
    expect(input!.properties!.capture).toMatchObject({ truncated: ['body'] });
  });
});

describe('capture settings', () => {
  it('reads the subjects, tables and excluded columns, with the documented defaults', () => {
    const config = loadConfig({
      env: {
        ACTIVITY_LOG_CAPTURE_SOURCE: 'postgres://app@db/shop',
        ACTIVITY_LOG_CAPTURE_TABLES: 'orders, sales.lines',
        ACTIVITY_LOG_CAPTURE_SUBJECTS: 'orders:Order,sales.lines:OrderLine',
        ACTIVITY_LOG_CAPTURE_EXCLUDE_COLUMNS: 'orders.internal',
      },
    });
    expect(config.capture).toEqual({
      source: 'postgres://app@db/shop',
      tables: ['orders', 'sales.lines'],
      excludeColumns: ['orders.internal'],
      subjects: [
        { table: 'orders', model: 'Order' },
        { table: 'sales.lines', model: 'OrderLine' },
      ],
      slot: 'activity_log',
      logName: 'capture',
    });
    expect(config.alertCaptureLagSeconds).toBe(300);
  });

  it.each([
    ['ACTIVITY_LOG_CAPTURE_SOURCE', 'sqlite:./app.db', /postgres:\/\/, mysql:\/\/ or mariadb:\/\//],
    ['ACTIVITY_LOG_CAPTURE_SUBJECTS', 'orders', /table:Model/],
    ['ACTIVITY_LOG_CAPTURE_EXCLUDE_COLUMNS', 'internal', /table\.column/],
    ['ACTIVITY_LOG_CAPTURE_SLOT', 'Bad-Slot', /replication slot name/],
    ['ACTIVITY_LOG_CAPTURE_TABLES', 'orders;drop', /table names/],
    ['ACTIVITY_LOG_ALERT_CAPTURE_LAG_S', '0', /whole number/],
  ])('refuses %s=%s with one line naming it', (name, value, allowed) => {
    expect(() => loadConfig({ env: { [name]: value } })).toThrow(new RegExp(`^${name}=`));
    expect(() => loadConfig({ env: { [name]: value } })).toThrow(allowed);
  });
});
