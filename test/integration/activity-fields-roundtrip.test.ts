import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { ACTIVITY_FIELDS, CSV_FIELDS } from '../../src/core/activity-fields.js';
import { type ActivityJson, activityFromJson, activityToJson } from '../../src/core/activity-json.js';
import { canonicalEncoding } from '../../src/core/canonical-encoding.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { fieldsOf, sampleActivities } from '../helpers/field-samples.js';
import { serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { migratedStore, storeTargets } from '../helpers/store-targets.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

/**
 * Every field of the field table, at an ordinary value, at the longest value it may hold and
 * empty where it may be, goes into each dialect's store and out again through the store, the
 * list API's JSON and the CSV export, and comes back equal.
 */

const ADMIN_TOKEN = 'admin-token-for-field-tests';

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-fields-'));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

/** A CSV export: its header line, and the cells of each row (every one quoted). */
function parseCsv(text: string): { header: string[]; rows: string[][] } {
  const headerEnd = text.indexOf('\r\n');
  const rows: string[][] = [];
  let row: string[] = [];
  const cell = /"((?:[^"]|"")*)"(,|\r\n)/y;
  cell.lastIndex = headerEnd + 2;
  for (let match = cell.exec(text); match !== null; match = cell.exec(text)) {
    row.push(match[1]!.replaceAll('""', '"'));
    if (match[2] === '\r\n') {
      rows.push(row);
      row = [];
      if (cell.lastIndex === text.length) break;
    }
  }
  expect(cell.lastIndex, 'the whole export parses').toBe(text.length);
  return { header: text.slice(0, headerEnd).split(','), rows };
}

/** What a CSV cell holds for a field: its JSON value as text, properties as their JSON, null as empty. */
function csvText(json: ActivityJson, column: keyof ActivityJson): string {
  const value = json[column];
  if (value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

for (const target of storeTargets(sqliteDir)) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`every activity field round-trips: ${target.name}`, () => {
    async function storeWith(
      defer: TestScope['defer'],
      activities: readonly Activity[],
    ): Promise<ActivityStore> {
      const { store } = await migratedStore(defer, target, 'fields');
      expect(await store.insertMany(activities)).toBe(activities.length);
      return store;
    }

    it('through the store, field by field, with the same canonical encoding', async ({ defer }) => {
      const sent = sampleActivities();
      const store = await storeWith(defer, sent);
      const { data } = await store.query({ limit: 10 });
      expect(data).toHaveLength(sent.length);
      for (const [index, read] of data.entries()) {
        expect(fieldsOf(read)).toEqual(fieldsOf(sent[index]!));
        expect(canonicalEncoding(read).equals(canonicalEncoding(sent[index]!))).toBe(true);
      }
    });

    it('through the list API as JSON and the CSV export', async ({ defer }) => {
      const sent = sampleActivities();
      const store = await storeWith(defer, sent);
      const composed = composeActivityLog({
        env: {},
        config: {
          method: 'sync',
          adminToken: ADMIN_TOKEN,
          spoolDir: join(sqliteDir, `spool-${uniqueSuffix()}`),
        },
        store,
      });
      const { activityLog } = composed;
      const app = createActivityLogServer(composed);
      defer(async () => {
        await app.close();
        await activityLog.close();
      });
      const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };

      const list = await app.inject({ method: 'GET', url: '/api/backoffice/activity-logs', headers });
      expect(list.statusCode).toBe(200);
      const json = list.json<{ data: ActivityJson[] }>().data;
      expect(json.map((item) => Object.keys(item))).toEqual(
        sent.map(() => [...ACTIVITY_FIELDS.map((field) => field.column), 'erased']),
      );
      expect(json.map((item) => (item as { erased?: unknown }).erased)).toEqual(sent.map(() => false));
      for (const [index, item] of json.entries()) {
        expect(fieldsOf(activityFromJson(item))).toEqual(fieldsOf(sent[index]!));
      }

      const csv = await app.inject({
        method: 'GET',
        url: '/api/backoffice/activity-logs/export.csv',
        headers,
      });
      expect(csv.statusCode).toBe(200);
      const { header, rows } = parseCsv(csv.body);
      expect(header).toEqual([...CSV_FIELDS.map((field) => field.column), 'erased']);
      expect(rows).toHaveLength(sent.length);
      for (const [index, row] of rows.entries()) {
        const expected = activityToJson(sent[index]!);
        for (const [position, field] of CSV_FIELDS.entries()) {
          const cell = row[position]!;
          if (field.kind === 'json') expect(JSON.parse(cell), field.column).toEqual(expected[field.column]);
          else expect(cell, field.column).toBe(csvText(expected, field.column));
        }
        expect(row[CSV_FIELDS.length]).toBe('false');
      }
    });
  });
}
