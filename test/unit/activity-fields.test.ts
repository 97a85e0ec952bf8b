import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../../src/core/activity.js';
import { ACTIVITY_FIELDS, FILTER_FIELDS, INGEST_FIELDS } from '../../src/core/activity-fields.js';
import { activityFromJson, activityToJson } from '../../src/core/activity-json.js';
import { canonicalActivityJson } from '../../src/core/canonical-encoding.js';
import { decodeActivityJob, encodeActivityJob } from '../../src/delivery/queue-job.js';
import { CSV_COLUMNS } from '../../src/http/activity-export.js';
import { ACTIVITY_FIELDS_SCRIPT_PATH } from '../../src/http/activity-fields-script.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { snakeField } from '../../src/http/snake-field.js';
import { crc32, decodeSegment, encodeSpoolRecord, SEGMENT_MAGIC } from '../../src/resilience/spool-record.js';
import { type ActivityLog, composeActivityLog } from '../../src/runtime/create-activity-log.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { ACTIVITY_COLUMNS } from '../../src/store/activity-table.js';
import { fieldsOf, sampleActivities } from '../helpers/field-samples.js';

/** A spool record as versions before the canonical encoding framed it: the JSON in column order. */
function recordOfEarlierVersion(json: string): Buffer {
  const payload = Buffer.from(json, 'utf8');
  const record = Buffer.alloc(8 + payload.length);
  record.writeUInt32LE(payload.length, 0);
  payload.copy(record, 8);
  record.writeUInt32LE(crc32(payload, crc32(record.subarray(0, 4))), 4);
  return record;
}

describe('the activity field table', () => {
  it('declares the columns, in the order and with the SQL types the schema has always had', () => {
    expect(ACTIVITY_COLUMNS).toEqual([
      { name: 'id', kind: 'uuid', nullable: false },
      { name: 'log_name', kind: 'name', nullable: false, defaultValue: 'default' },
      { name: 'description', kind: 'text', nullable: false },
      { name: 'subject_type', kind: 'name', nullable: true },
      { name: 'subject_id', kind: 'name', nullable: true },
      { name: 'event', kind: 'name', nullable: true },
      { name: 'causer_type', kind: 'name', nullable: true },
      { name: 'causer_id', kind: 'name', nullable: true },
      { name: 'properties', kind: 'json', nullable: true },
      { name: 'batch_uuid', kind: 'uuid', nullable: true },
      { name: 'ip_address', kind: 'ipAddress', nullable: true },
      { name: 'url', kind: 'url', nullable: true },
      { name: 'method', kind: 'method', nullable: true },
      { name: 'user_agent', kind: 'userAgent', nullable: true },
      { name: 'created_at', kind: 'timestamp', nullable: false },
    ]);
  });

  it('gives the limits, filters, export columns and HTTP names their documented values', () => {
    expect(LIMITS).toEqual({
      descriptionBytes: 4096,
      propertiesBytes: 65_536,
      nameChars: 191,
      urlChars: 2048,
      methodChars: 16,
      userAgentChars: 1024,
      ipAddressChars: 45,
      propertiesDepth: 31,
    });
    expect(FILTER_FIELDS.map((field) => field.column)).toEqual([
      'log_name',
      'event',
      'subject_type',
      'subject_id',
      'causer_type',
      'causer_id',
      'ip_address',
      'url',
      'method',
      'batch_uuid',
    ]);
    expect(CSV_COLUMNS.join(',')).toBe(
      'id,created_at,log_name,event,description,subject_type,subject_id,causer_type,causer_id,batch_uuid,ip_address,method,url,user_agent,properties',
    );
    expect(INGEST_FIELDS.map((field) => field.column).join(', ')).toBe(
      'description, log_name, event, subject_type, subject_id, causer_type, causer_id, properties, batch_uuid, ip_address, url, method, user_agent, created_at, id',
    );
    for (const [library, http] of [
      ['logName', 'log_name'],
      ['subject', 'subject_type'],
      ['subject.type', 'subject_type'],
      ['subject.id', 'subject_id'],
      ['causer', 'causer_type'],
      ['causer.type', 'causer_type'],
      ['causer.id', 'causer_id'],
      ['[3].batchUuid', '[3].batch_uuid'],
      ['ipAddress', 'ip_address'],
      ['userAgent', 'user_agent'],
      ['createdAt', 'created_at'],
      ['properties.someKey', 'properties.someKey'],
    ]) {
      expect(snakeField(library!)).toBe(http);
    }
    for (const field of ACTIVITY_FIELDS) expect(snakeField(field.property)).toBe(field.column);
  });

  it('round-trips every field through the JSON codec, keys in column order', () => {
    for (const activity of sampleActivities()) {
      const json = activityToJson(activity);
      expect(Object.keys(json)).toEqual(ACTIVITY_FIELDS.map((field) => field.column));
      expect(fieldsOf(activityFromJson(JSON.parse(JSON.stringify(json))))).toEqual(fieldsOf(activity));
    }
  });

  it('round-trips every field through a spool record, written as the canonical encoding', () => {
    const sent = sampleActivities();
    const records = sent.map(encodeSpoolRecord);
    for (const [index, record] of records.entries()) {
      expect(record.subarray(8).toString('utf8')).toBe(canonicalActivityJson(sent[index]!));
    }
    const earlier = sent.map((activity) => recordOfEarlierVersion(JSON.stringify(activityToJson(activity))));
    for (const segment of [records, earlier]) {
      const decoded = decodeSegment(Buffer.concat([SEGMENT_MAGIC, ...segment]));
      expect(decoded.corruptRecords).toBe(0);
      expect(decoded.activities.map(fieldsOf)).toEqual(sent.map(fieldsOf));
    }
  });

  it('round-trips every field through a queue job, and reads jobs written before', () => {
    const sent = sampleActivities();
    const data = JSON.parse(JSON.stringify(encodeActivityJob(sent)));
    expect(decodeActivityJob(data).map(fieldsOf)).toEqual(sent.map(fieldsOf));
    const earlier = {
      v: 1,
      activities: sent.map((activity) => JSON.parse(JSON.stringify(activityToJson(activity)))),
    };
    expect(decodeActivityJob(earlier).map(fieldsOf)).toEqual(sent.map(fieldsOf));
  });
});

describe('HTTP schemas follow the field table', () => {
  const ADMIN_TOKEN = 'admin-token-for-schema-tests';
  const INGEST_TOKEN = 'ingest-token-for-schema-tests';
  let dir: string;
  let activityLog: ActivityLog;
  let store: ActivityStore;
  let app: FastifyInstance;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'activity-fields-http-'));
    const config = {
      database: { connection: 'sqlite' as const, filename: ':memory:' },
      method: 'sync' as const,
      adminToken: ADMIN_TOKEN,
      ingestToken: INGEST_TOKEN,
      spoolDir: join(dir, 'spool'),
    };
    const composed = composeActivityLog({ env: {}, config });
    activityLog = composed.activityLog;
    store = composed.store;
    app = createActivityLogServer(composed);
  });
  afterAll(async () => {
    await app.close();
    await activityLog.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function ingest(body: Record<string, unknown>) {
    const response = await app.inject({
      method: 'POST',
      url: '/api/activities',
      headers: { authorization: `Bearer ${INGEST_TOKEN}` },
      payload: { description: 'checked', ...body },
    });
    return {
      status: response.statusCode,
      message: response.json<{ error?: { message: string } }>().error?.message,
    };
  }

  async function query(parameters: Record<string, string>) {
    const response = await app.inject({
      method: 'GET',
      url: `/api/backoffice/activity-logs?${new URLSearchParams(parameters)}`,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    return {
      status: response.statusCode,
      message: response.json<{ error?: { message: string } }>().error?.message,
    };
  }

  it('accepts each ingest field at its limit and refuses it past the limit, with the same messages', async () => {
    await store.migrate();
    const name = (length: number) => 'n'.repeat(length);
    const accepted: Record<string, unknown>[] = [
      { log_name: name(191) },
      { event: name(191) },
      { subject_type: name(191), subject_id: name(191) },
      { causer_type: name(191), causer_id: name(191) },
      { description: 'é'.repeat(2048) },
      { url: `/${name(2047)}` },
      { method: name(16) },
      { ip_address: `fe80::1%${name(37)}` },
      { properties: { a: 'x'.repeat(LIMITS.propertiesBytes - 8) } },
      { user_agent: name(5000) },
    ];
    for (const body of accepted) expect((await ingest(body)).status, Object.keys(body)[0]).toBe(202);

    const refused: [Record<string, unknown>, string][] = [
      [{ log_name: name(192) }, 'log_name must be at most 191 characters (got 192)'],
      [{ event: name(192) }, 'event must be at most 191 characters (got 192)'],
      [{ subject_type: name(192), subject_id: '1' }, 'subject_type must be at most 191 characters (got 192)'],
      [{ causer_type: 'User', causer_id: name(192) }, 'causer_id must be at most 191 characters (got 192)'],
      [{ description: `${'é'.repeat(2048)}x` }, 'description must be at most 4096 bytes (got 4097)'],
      [{ url: `/${name(2048)}` }, 'url must be at most 2048 characters (got 2049)'],
      [{ method: name(17) }, 'method must be at most 16 characters (got 17)'],
      [
        { ip_address: `fe80::1%${name(38)}` },
        'ip_address must be at most 45 characters, zone id included (got 46)',
      ],
      [
        { properties: { a: 'x'.repeat(LIMITS.propertiesBytes - 7) } },
        `properties must serialize to at most ${LIMITS.propertiesBytes} bytes of JSON (got ${LIMITS.propertiesBytes + 1})`,
      ],
      [{ batch_uuid: 'not-a-uuid' }, 'batch_uuid must be a UUID (got "not-a-uuid")'],
      [{ event: 7 }, 'event must be a string or null'],
      [{ subject_type: 'Order', subject_id: true }, 'subject_id must be a string, a number or null'],
      [{ properties: [] }, 'properties must be a JSON object or null'],
      [{ created_at: true }, 'created_at must be an ISO-8601 string, epoch milliseconds or null'],
      [{ id: 1 }, 'id must be a UUID string or null'],
      [{ description: 1 }, 'description is required and must be a string'],
      [{ subject_type: 'Order' }, 'subject_id is required when subject_type is set'],
    ];
    for (const [body, message] of refused) expect(await ingest(body)).toEqual({ status: 400, message });

    expect((await ingest({ tenant: 'x' })).message).toBe(
      `unknown field "tenant"; allowed: ${INGEST_FIELDS.map((field) => field.column).join(', ')}`,
    );
  });

  it('accepts each query filter at its length limit and refuses it past the limit', async () => {
    for (const field of FILTER_FIELDS) {
      const max = field.maxChars;
      const atLimit = field.kind === 'uuid' ? '0190a4f0-0000-7000-8000-000000000001' : 'a'.repeat(max);
      expect((await query({ [field.column]: atLimit })).status, field.column).toBe(200);
      expect(await query({ [field.column]: 'a'.repeat(max + 1) })).toEqual({
        status: 400,
        message: `${field.column} must be at most ${max} characters`,
      });
    }
    expect(FILTER_FIELDS.map((field) => [field.column, field.maxChars])).toEqual([
      ['log_name', 191],
      ['event', 191],
      ['subject_type', 191],
      ['subject_id', 191],
      ['causer_type', 191],
      ['causer_id', 191],
      ['ip_address', 45],
      ['url', 2048],
      ['method', 16],
      ['batch_uuid', 36],
    ]);
    expect(await query({ batch_uuid: 'x'.repeat(36) })).toEqual({
      status: 400,
      message: `batch_uuid must be a UUID (got "${'x'.repeat(36)}")`,
    });
    expect((await query({ sort: 'x' })).message).toBe(
      'unknown query parameter "sort"; allowed: log_name, event, subject_type, subject_id, causer_type, causer_id, ip_address, url, method, batch_uuid, from, to, limit, cursor',
    );
  });

  it('serves the backoffice its field lists, made from the table', async () => {
    const response = await app.inject({ method: 'GET', url: ACTIVITY_FIELDS_SCRIPT_PATH });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/javascript; charset=utf-8$/);
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    const again = await app.inject({
      method: 'GET',
      url: ACTIVITY_FIELDS_SCRIPT_PATH,
      headers: { 'if-none-match': String(response.headers.etag) },
    });
    expect(again.statusCode).toBe(304);
    const module = (await import(`data:text/javascript,${encodeURIComponent(response.body)}`)) as {
      FILTER_FIELDS: unknown;
      DETAIL_FIELDS: unknown;
    };
    expect(module.FILTER_FIELDS).toEqual([
      { name: 'log_name', label: 'Log name' },
      { name: 'event', label: 'Event', list: 'events' },
      { name: 'subject_type', label: 'Subject type' },
      { name: 'subject_id', label: 'Subject id' },
      { name: 'causer_type', label: 'Causer type' },
      { name: 'causer_id', label: 'Causer id' },
      { name: 'ip_address', label: 'IP address' },
      { name: 'url', label: 'URL' },
      { name: 'method', label: 'Method', list: 'methods' },
      { name: 'batch_uuid', label: 'Batch' },
    ]);
    expect(module.DETAIL_FIELDS).toEqual([
      ['id', 'Id'],
      ['created_at', 'Time (UTC)'],
      ['log_name', 'Log'],
      ['event', 'Event'],
      ['description', 'Description'],
      ['subject', 'Subject'],
      ['causer', 'Causer'],
      ['batch_uuid', 'Batch'],
      ['ip_address', 'IP address'],
      ['method', 'Method'],
      ['url', 'URL'],
      ['user_agent', 'User agent'],
    ]);
  });
});
