import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import { ACTIVITY_FIELDS, CSV_FIELDS } from '../../src/core/activity-fields.js';
import { type ActivityJson, activityFromJson, activityToJson } from '../../src/core/activity-json.js';
import { canonicalEncoding } from '../../src/core/canonical-encoding.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { createStore } from '../../src/store/create-store.js';
import { fieldsOf, sampleActivities } from '../helpers/field-samples.js';
import {
  MARIADB_TARGET,
  POSTGRES_TARGET,
  type ServiceInfo,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';

/**
 * Every field of the field table, at an ordinary value, at the longest value it may hold and
 * empty where it may be, goes into each dialect's store and out again through the store, the
 * list API's JSON and the CSV export, and comes back equal.
 */

const ADMIN_TOKEN = 'admin-token-for-field-tests';

interface Target {
  readonly name: string;
  readonly service: ServiceInfo | undefined;
  databaseUrl(table: string): string;
  drop(table: string): Promise<void>;
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-fields-'));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

const TARGETS: readonly Target[] = [
  {
    name: 'SQLite',
    service: undefined,
    databaseUrl: (table) => `sqlite:${join(sqliteDir, `${table}.sqlite`)}`,
    drop: async () => {},
  },
  {
    name: MARIADB_TARGET.name,
    service: MARIADB_TARGET.service,
    databaseUrl: () => MARIADB_TARGET.url,
    drop: async (table) => {
      const admin = await mysql.createConnection(MARIADB_TARGET.url);
      try {
        await admin.query(`DROP TABLE IF EXISTS \`${table}\`, \`${table}_migrations\`, \`${table}_seals\``);
      } finally {
        await admin.end();
      }
    },
  },
  {
    name: POSTGRES_TARGET.name,
    service: POSTGRES_TARGET.service,
    databaseUrl: () => POSTGRES_TARGET.url,
    drop: async (table) => {
      const admin = new pg.Client({ connectionString: POSTGRES_TARGET.url });
      await admin.connect();
      try {
        await admin.query(`DROP TABLE IF EXISTS "${table}", "${table}_migrations", "${table}_seals"`);
      } finally {
        await admin.end();
      }
    },
  },
];

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

for (const target of TARGETS) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`every activity field round-trips: ${target.name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    async function storeWith(activities: readonly Activity[]): Promise<ActivityStore> {
      const table = `fields_${uniqueSuffix()}`;
      const config = loadConfig({
        env: { DATABASE_URL: target.databaseUrl(table), ACTIVITY_LOG_TABLE: table },
      });
      const store = createStore(config.database);
      cleanups.push(async () => {
        await store.close();
        await target.drop(table);
      });
      await store.migrate();
      expect(await store.insertMany(activities)).toBe(activities.length);
      return store;
    }

    it('through the store, field by field, with the same canonical encoding', async () => {
      const sent = sampleActivities();
      const store = await storeWith(sent);
      const { data } = await store.query({ limit: 10 });
      expect(data).toHaveLength(sent.length);
      for (const [index, read] of data.entries()) {
        expect(fieldsOf(read)).toEqual(fieldsOf(sent[index]!));
        expect(canonicalEncoding(read).equals(canonicalEncoding(sent[index]!))).toBe(true);
      }
    });

    it('through the list API as JSON and the CSV export', async () => {
      const sent = sampleActivities();
      const store = await storeWith(sent);
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
      cleanups.push(async () => {
        await app.close();
        await activityLog.close();
      });
      const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };

      const list = await app.inject({ method: 'GET', url: '/api/backoffice/activity-logs', headers });
      expect(list.statusCode).toBe(200);
      const json = list.json<{ data: ActivityJson[] }>().data;
      expect(json.map((item) => Object.keys(item))).toEqual(
        sent.map(() => ACTIVITY_FIELDS.map((field) => field.column)),
      );
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
      expect(header).toEqual(CSV_FIELDS.map((field) => field.column));
      expect(rows).toHaveLength(sent.length);
      for (const [index, row] of rows.entries()) {
        const expected = activityToJson(sent[index]!);
        for (const [position, field] of CSV_FIELDS.entries()) {
          const cell = row[position]!;
          if (field.kind === 'json') expect(JSON.parse(cell), field.column).toEqual(expected[field.column]);
          else expect(cell, field.column).toBe(csvText(expected, field.column));
        }
      }
    });
  });
}
