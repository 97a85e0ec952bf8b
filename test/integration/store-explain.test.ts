import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseConfig, loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import { newActivityId } from '../../src/core/ids.js';
import type { ActivityQuery } from '../../src/store/activity-store.js';
import { KyselyStore } from '../../src/store/kysely-store.js';
import { createMysqlDialect } from '../../src/store/mysql/mysql-dialect.js';
import { createPostgresDialect } from '../../src/store/postgres/postgres-dialect.js';
import type { StoreDialect } from '../../src/store/store-dialect.js';
import { storedActivity } from '../helpers/activity-factory.js';
import {
  MARIADB_TARGET,
  MYSQL_URL,
  POSTGRES_TARGET,
  POSTGRES_URL,
  type SqlTarget,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';

const SEEDED_ROWS = 60_000;
const SEED_CHUNK = 5000;
const DAY_MS = 86_400_000;
const START_MS = Date.parse('2024-01-01T00:00:00Z');

/** Spread like a real log: few log names and events, many subjects and causers, two months of time. */
function seedChunk(offset: number, count: number): Activity[] {
  return Array.from({ length: count }, (_, k) => {
    const i = offset + k;
    return storedActivity({
      id: newActivityId(START_MS + i),
      logName: `log_${i % 20}`,
      description: `activity ${i}`,
      subjectType: `Model${i % 10}`,
      subjectId: String(i % 2000),
      event: ['created', 'updated', 'deleted', 'restored', 'viewed'][i % 5]!,
      causerType: `Actor${i % 3}`,
      causerId: String(i % 700),
      properties: { n: i },
      ipAddress: `10.0.${i % 250}.${i % 200}`,
      url: `https://example.com/items/${i % 5000}`,
      method: 'POST',
      createdAt: new Date(START_MS + Math.floor((i / SEEDED_ROWS) * 60 * DAY_MS)),
    });
  });
}

/** The filter queries and the index each must be served by (DESIGN.md names). */
const CASES: ReadonlyArray<readonly [string, ActivityQuery, string]> = [
  ['log name', { logName: 'log_7' }, 'idx_log_name_created_at'],
  ['event', { event: 'deleted' }, 'idx_event_created_at'],
  ['subject', { subjectType: 'Model3', subjectId: '1233' }, 'idx_subject_created_at'],
  ['causer', { causerType: 'Actor1', causerId: '451' }, 'idx_causer_created_at'],
];

interface ExplainTarget extends SqlTarget {
  readonly createDialect: (config: DatabaseConfig) => StoreDialect;
  /** Names index names the way the migration did for this table. */
  readonly physicalIndexName: (table: string, name: string) => string;
  connect(): Promise<{
    analyze(table: string): Promise<void>;
    /** The indexes the plan uses, and the whole plan as text. */
    explain(sql: string, parameters: readonly unknown[]): Promise<{ indexes: string[]; plan: string }>;
    drop(table: string): Promise<void>;
    close(): Promise<void>;
  }>;
}

const TARGETS: readonly ExplainTarget[] = [
  {
    ...MARIADB_TARGET,
    createDialect: createMysqlDialect,
    physicalIndexName: (_table, name) => name,
    async connect() {
      const connection = await mysql.createConnection(MYSQL_URL);
      return {
        analyze: async (table) => {
          await connection.query(`ANALYZE TABLE \`${table}\``);
        },
        async explain(sql, parameters) {
          const [rows] = await connection.query(`EXPLAIN ${sql}`, [...parameters] as (
            | string
            | number
            | null
          )[]);
          const plan = rows as { key: string | null; Extra: string | null }[];
          return {
            indexes: plan.map((row) => row.key ?? ''),
            plan: plan.map((row) => JSON.stringify(row)).join('\n'),
          };
        },
        drop: async (table) => {
          await connection.query(
            `DROP TABLE IF EXISTS \`${table}\`, \`${table}_migrations\`, \`${table}_seals\`, \`${table}_seals_pruned\``,
          );
        },
        close: () => connection.end(),
      };
    },
  },
  {
    ...POSTGRES_TARGET,
    createDialect: createPostgresDialect,
    physicalIndexName: (table, name) => `${table}_${name}`,
    async connect() {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      // The SSD setting PostgreSQL's documentation recommends. Under the default 4.0 (spinning
      // disks) and a heap in created_at order, as an append-only log has, the planner walks
      // idx_created_at backwards for values that match several percent of rows (log_7, 'deleted'),
      // which is cheap too; it still picks the composite index for selective values.
      await client.query('SET random_page_cost = 1.1');
      return {
        analyze: async (table) => {
          await client.query(`ANALYZE "${table}"`);
        },
        async explain(sql, parameters) {
          const { rows } = await client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${sql}`, [
            ...parameters,
          ]);
          const plan = JSON.stringify(rows[0]?.['QUERY PLAN'], null, 1);
          return { indexes: [...plan.matchAll(/"Index Name": "([^"]+)"/g)].map((match) => match[1]!), plan };
        },
        drop: async (table) => {
          await client.query(
            `DROP TABLE IF EXISTS "${table}", "${table}_migrations", "${table}_seals", "${table}_seals_pruned"`,
          );
        },
        close: () => client.end(),
      };
    },
  },
];

for (const target of TARGETS) {
  const available = await serviceAvailable(target.service);

  describe.skipIf(!available)(`query plans on ${target.name} with ${SEEDED_ROWS} rows`, () => {
    const table = `store_explain_${uniqueSuffix()}`;
    let store: KyselyStore;
    let admin: Awaited<ReturnType<ExplainTarget['connect']>>;

    beforeAll(async () => {
      const config = loadConfig({ env: { DATABASE_URL: target.url, ACTIVITY_LOG_TABLE: table } }).database;
      store = new KyselyStore(target.createDialect(config), table);
      admin = await target.connect();
      await store.migrate();
      for (let offset = 0; offset < SEEDED_ROWS; offset += SEED_CHUNK) {
        await store.insertMany(seedChunk(offset, SEED_CHUNK));
      }
      await admin.analyze(table);
    });

    afterAll(async () => {
      await store?.close();
      await admin?.drop(table);
      await admin?.close();
    });

    for (const [label, query, index] of CASES) {
      it(`serves the ${label} filter, newest first, from ${index}`, async () => {
        const compiled = store.compileQuery(query);
        const { indexes, plan } = await admin.explain(compiled.sql, compiled.parameters);
        expect(indexes, plan).toContain(target.physicalIndexName(table, index));
      });

      it(`serves a later page of the ${label} filter from ${index}`, async () => {
        const first = await store.query({ ...query, limit: 5 });
        expect(first.nextCursor).not.toBeNull();
        const compiled = store.compileQuery({ ...query, limit: 5, cursor: first.nextCursor! });
        const { indexes, plan } = await admin.explain(compiled.sql, compiled.parameters);
        expect(indexes, plan).toContain(target.physicalIndexName(table, index));
      });
    }
  });
}
