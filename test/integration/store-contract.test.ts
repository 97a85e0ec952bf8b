import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { type DatabaseConfig, loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import { type ErrorCode, isActivityLogError } from '../../src/core/errors.js';
import { newActivityId } from '../../src/core/ids.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { createStore } from '../../src/store/create-store.js';
import { ACTIVITY_MIGRATIONS } from '../../src/store/migrations/activity-migrations.js';
import { builtActivity, storedActivity } from '../helpers/activity-factory.js';
import {
  MARIADB_TARGET,
  MYSQL_URL,
  POSTGRES_TARGET,
  POSTGRES_URL,
  type ServiceInfo,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const DESIGN_INDEX_NAMES = [
  'idx_batch_uuid',
  'idx_causer_created_at',
  'idx_created_at',
  'idx_event_created_at',
  'idx_ip_address',
  'idx_log_name_created_at',
  'idx_method',
  // The seal's index: a seal's rows in id order (tamper evidence).
  'idx_seal_seq',
  'idx_subject_created_at',
  'idx_url',
];

/** The schema version the migrations reach. */
const SCHEMA_VERSION = ACTIVITY_MIGRATIONS.at(-1)!.version;

type ConfigOverrides = Partial<
  Pick<DatabaseConfig, 'host' | 'port' | 'poolMax' | 'connectTimeoutMs' | 'queryTimeoutMs' | 'sslMode'>
>;

/** Direct driver access for what the store API does not expose: catalog reads, locks, cleanup. */
interface Admin {
  indexNames(table: string): Promise<string[]>;
  dropTables(tables: readonly string[]): Promise<void>;
  /** Takes a write lock on `table` from another connection until the returned function runs. */
  holdWriteLock(table: string): Promise<() => Promise<void>>;
  /** Index names of the default `activity_log` table, migrated in a namespace of its own. */
  defaultTableIndexNames(): Promise<string[]>;
  close(): Promise<void>;
}

interface Target {
  readonly name: string;
  readonly service: ServiceInfo | undefined;
  /** Index names are scoped to the table, so any table carries the DESIGN.md names. */
  readonly indexNamesPerTable: boolean;
  /** What a statement blocked by another connection's lock fails with. */
  readonly blockedCode: ErrorCode;
  readonly enforcesColumnLengths: boolean;
  /** Pools over the network, with connect timeouts and a bounded pool. */
  readonly networked: boolean;
  env(table: string): Record<string, string>;
  connectAdmin(): Promise<Admin>;
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-store-'));
const sqliteFile = (table: string) => join(sqliteDir, `${table}.sqlite`);

const TARGETS: readonly Target[] = [
  {
    name: 'SQLite',
    service: undefined,
    indexNamesPerTable: false,
    blockedCode: 'STORE_LOCK_TIMEOUT',
    enforcesColumnLengths: false,
    networked: false,
    env: (table) => ({ DATABASE_URL: `sqlite:${sqliteFile(table)}`, ACTIVITY_LOG_TABLE: table }),
    connectAdmin: async () => ({
      async indexNames(table) {
        const db = new Database(sqliteFile(table), { readonly: true });
        try {
          const rows = db
            .prepare(
              "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name NOT LIKE 'sqlite_autoindex%'",
            )
            .all(table) as { name: string }[];
          return rows.map((row) => row.name);
        } finally {
          db.close();
        }
      },
      async dropTables(tables) {
        for (const suffix of ['', '-wal', '-shm'])
          rmSync(`${sqliteFile(tables[0]!)}${suffix}`, { force: true });
      },
      async holdWriteLock(table) {
        const db = new Database(sqliteFile(table));
        db.exec('BEGIN IMMEDIATE');
        return async () => {
          db.exec('ROLLBACK');
          db.close();
        };
      },
      async defaultTableIndexNames() {
        const filename = join(sqliteDir, `default_${uniqueSuffix()}.sqlite`);
        const store = createStore(loadConfig({ env: { DATABASE_URL: `sqlite:${filename}` } }).database);
        await store.migrate();
        await store.close();
        const db = new Database(filename, { readonly: true });
        const rows = db
          .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'activity_log' AND name NOT LIKE 'sqlite_autoindex%'",
          )
          .all() as { name: string }[];
        db.close();
        return rows.map((row) => row.name);
      },
      close: async () => undefined,
    }),
  },
  {
    ...MARIADB_TARGET,
    indexNamesPerTable: true,
    blockedCode: 'STORE_TIMEOUT',
    enforcesColumnLengths: true,
    networked: true,
    env: (table) => ({ DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: table }),
    connectAdmin: async () => {
      const admin = await mysql.createConnection(MYSQL_URL);
      const indexNames = async (table: string) => {
        const [rows] = await admin.query(
          "SELECT DISTINCT INDEX_NAME AS name FROM information_schema.statistics WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME <> 'PRIMARY'",
          [table],
        );
        return (rows as { name: string }[]).map((row) => row.name);
      };
      return {
        indexNames,
        async dropTables(tables) {
          await admin.query(`DROP TABLE IF EXISTS ${tables.map((table) => `\`${table}\``).join(', ')}`);
        },
        async holdWriteLock(table) {
          const locker = await mysql.createConnection(MYSQL_URL);
          await locker.query(`LOCK TABLES \`${table}\` WRITE`);
          return async () => {
            await locker.query('UNLOCK TABLES');
            await locker.end();
          };
        },
        // Index names are per table in MySQL, so the default table needs no namespace of its own.
        async defaultTableIndexNames() {
          const table = `store_default_${uniqueSuffix()}`;
          const store = createStore(
            loadConfig({ env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: table } }).database,
          );
          try {
            await store.migrate();
            return await indexNames(table);
          } finally {
            await store.close();
            await admin.query(
              `DROP TABLE IF EXISTS \`${table}\`, \`${table}_migrations\`, \`${table}_seals\`, \`${table}_seals_pruned\``,
            );
          }
        },
        close: () => admin.end(),
      };
    },
  },
  {
    ...POSTGRES_TARGET,
    indexNamesPerTable: false,
    blockedCode: 'STORE_TIMEOUT',
    enforcesColumnLengths: true,
    networked: true,
    env: (table) => ({ DATABASE_URL: POSTGRES_URL, ACTIVITY_LOG_TABLE: table }),
    connectAdmin: async () => {
      const admin = new pg.Client({ connectionString: POSTGRES_URL });
      await admin.connect();
      const indexNamesVia = async (client: pg.Client, table: string) => {
        const { rows } = await client.query<{ name: string }>(
          "SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 AND indexname NOT LIKE '%_pkey'",
          [table],
        );
        return rows.map((row) => row.name);
      };
      return {
        indexNames: (table) => indexNamesVia(admin, table),
        async dropTables(tables) {
          await admin.query(`DROP TABLE IF EXISTS ${tables.map((table) => `"${table}"`).join(', ')}`);
        },
        async holdWriteLock(table) {
          const locker = new pg.Client({ connectionString: POSTGRES_URL });
          await locker.connect();
          await locker.query(`BEGIN; LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
          return async () => {
            await locker.query('ROLLBACK');
            await locker.end();
          };
        },
        // Index names are global to a schema, so the default table gets a database of its own.
        async defaultTableIndexNames() {
          const database = `store_default_${uniqueSuffix()}`;
          await admin.query(`CREATE DATABASE "${database}"`);
          const url = POSTGRES_URL.replace(/\/test$/, `/${database}`);
          try {
            const store = createStore(loadConfig({ env: { DATABASE_URL: url } }).database);
            await store.migrate();
            await store.close();
            const client = new pg.Client({ connectionString: url });
            await client.connect();
            try {
              return await indexNamesVia(client, 'activity_log');
            } finally {
              await client.end();
            }
          } finally {
            await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
          }
        },
        close: () => admin.end(),
      };
    },
  },
];

const BASE_TIME = Date.parse('2024-03-05T07:08:09.123Z');

function activity(overrides: Partial<Activity> = {}): Activity {
  return storedActivity({ createdAt: new Date(BASE_TIME), ...overrides });
}

/** `count` activities one second apart, oldest first, starting `startMs`. */
function series(count: number, startMs: number, overrides: Partial<Activity> = {}): Activity[] {
  return Array.from({ length: count }, (_, i) =>
    activity({ createdAt: new Date(startMs + i * 1000), ...overrides }),
  );
}

function newestFirst(activities: readonly Activity[]): Activity[] {
  return [...activities].sort(
    (a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
  );
}

async function allRows(
  store: ActivityStore,
  filter: Parameters<ActivityStore['query']>[0] = {},
): Promise<Activity[]> {
  const rows: Activity[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.query({ ...filter, limit: 500, cursor });
    rows.push(...page.data);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return rows;
}

async function rowCount(store: ActivityStore): Promise<number> {
  return store.prune({ before: new Date('9999-01-01T00:00:00Z'), dryRun: true });
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode, field?: string): Promise<void> {
  const error = await errorOf(promise);
  expect(isActivityLogError(error), String(error)).toBe(true);
  expect(error).toMatchObject(field === undefined ? { code } : { code, field });
}

/** A TCP server that accepts connections and never says a word: a hung database. */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The database servers again with ACTIVITY_LOG_PARTITION=month: the contract holds on a partitioned table too. */
const PARTITIONED_TARGETS: readonly Target[] = TARGETS.filter((target) => target.networked).map((target) => ({
  ...target,
  name: `${target.name}, partitioned by month`,
  env: (table: string) => ({ ...target.env(table), ACTIVITY_LOG_PARTITION: 'month' }),
}));

afterAll(() => {
  rmSync(sqliteDir, { recursive: true, force: true });
});

for (const target of [...TARGETS, ...PARTITIONED_TARGETS]) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`activity store contract: ${target.name}`, () => {
    let admin: Admin;

    beforeAll(async () => {
      admin = await target.connectAdmin();
    });
    afterAll(async () => {
      await admin?.close();
    });

    function openStore(
      defer: TestScope['defer'],
      options: { table?: string; overrides?: ConfigOverrides } = {},
    ): ActivityStore {
      const table = options.table ?? `store_${uniqueSuffix()}`;
      const config = loadConfig({ env: target.env(table), overrides: { database: options.overrides ?? {} } });
      const store = createStore(config.database);
      defer(async () => {
        await store.close();
        await admin.dropTables([table, `${table}_migrations`, `${table}_seals`, `${table}_seals_pruned`]);
      });
      return store;
    }

    async function migratedStore(
      defer: TestScope['defer'],
      options: { table?: string; overrides?: ConfigOverrides } = {},
    ) {
      const store = openStore(defer, options);
      await store.migrate();
      return store;
    }

    it('migrates idempotently and reports the schema versions', async ({ defer }) => {
      const store = openStore(defer);
      expect(await store.migrate()).toEqual({ from: 0, to: SCHEMA_VERSION });
      expect(await store.migrate()).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    });

    // better-sqlite3 blocks the thread while it waits for a lock, so two connections in one
    // process cannot wait for each other; concurrent SQLite migrations need separate processes.
    if (target.networked) {
      it('applies each migration once when two stores migrate at once', async ({ defer }) => {
        const table = `store_${uniqueSuffix()}`;
        const first = openStore(defer, { table });
        const second = openStore(defer, { table });
        const results = await Promise.all([first.migrate(), second.migrate()]);
        expect(results.map((result) => result.from).sort()).toEqual([0, SCHEMA_VERSION]);
        expect(results.every((result) => result.to === SCHEMA_VERSION)).toBe(true);
      });
    }

    it('names the indexes of the default table exactly as DESIGN.md does', async () => {
      expect((await admin.defaultTableIndexNames()).sort()).toEqual(DESIGN_INDEX_NAMES);
    });

    it('creates every index on a custom table, prefixed where index names are schema-global', async ({
      defer,
    }) => {
      const table = `store_${uniqueSuffix()}`;
      await migratedStore(defer, { table });
      const expected = DESIGN_INDEX_NAMES.map((name) =>
        target.indexNamesPerTable ? name : `${table}_${name}`,
      );
      expect((await admin.indexNames(table)).sort()).toEqual(expected.sort());
    });

    it('round-trips every field: unicode, nested JSON, nulls and milliseconds', async ({ defer }) => {
      const store = await migratedStore(defer);
      const full = activity({
        logName: 'orders 注文',
        description: 'Zoë updated order 42 🚀 — 漢字かな한글 𝄞',
        subjectType: 'App\\Models\\Order',
        subjectId: '42',
        event: 'updated',
        causerType: 'App\\Models\\User',
        causerId: 'ü-7',
        properties: {
          attributes: { total: 10.5, tags: ['a', 'b'], nested: { deeper: { emoji: '😀👍🏽', cjk: '中文' } } },
          old: { total: 9.99, flag: false, nothing: null },
          '键 🔑': [1, 2.25, -3e10, { x: 'y' }],
        },
        batchUuid: newActivityId(),
        ipAddress: '2001:db8::ff00:42:8329',
        url: 'https://example.com/orders/42?q=%E2%9C%93&ü=1',
        method: 'PATCH',
        userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0',
        createdAt: new Date('2024-12-31T23:59:59.999Z'),
      });
      const bare = activity({ createdAt: new Date('1970-01-01T00:00:00.001Z') });
      const millis = activity({ createdAt: new Date('2024-06-15T12:00:00.007Z') });
      expect(await store.insertMany([full, bare, millis])).toBe(3);

      const rows = await allRows(store);
      expect(rows).toEqual([full, millis, bare]);
      expect(rows.map((row) => row.createdAt.toISOString())).toEqual([
        '2024-12-31T23:59:59.999Z',
        '2024-06-15T12:00:00.007Z',
        '1970-01-01T00:00:00.001Z',
      ]);
    });

    it('stores what log() accepts from text cut inside an emoji, with U+FFFD in its place', async ({
      defer,
    }) => {
      const store = await migratedStore(defer);
      const cut = 'order 😀'.slice(0, 7);
      const built = builtActivity({
        description: cut,
        event: cut,
        properties: { excerpt: cut, [cut]: [cut] },
        userAgent: cut,
      });
      expect(await store.insertMany([built])).toBe(1);
      const [row] = await allRows(store);
      expect(row).toEqual(built);
      expect(row!.description).toBe('order \ufffd');
      expect(row!.properties).toEqual({ excerpt: 'order \ufffd', 'order \ufffd': ['order \ufffd'] });
    });

    it('stores an id once however often it is inserted', async ({ defer }) => {
      const store = await migratedStore(defer);
      const batch = series(10, BASE_TIME);
      expect(await store.insertMany(batch)).toBe(10);
      expect(await store.insertMany(batch)).toBe(0);
      const more = series(5, BASE_TIME + 60_000);
      expect(await store.insertMany([...batch.slice(0, 5), ...more])).toBe(5);
      const repeated = activity();
      expect(await store.insertMany([repeated, repeated])).toBe(1);
      expect(await rowCount(store)).toBe(16);
    });

    it('splits a batch larger than maxRowsPerInsert and stores all of it', async ({ defer }) => {
      const store = await migratedStore(defer);
      const size = store.capabilities.maxRowsPerInsert + 7;
      const batch = series(size, BASE_TIME, { properties: { n: 1 } });
      expect(await store.insertMany(batch)).toBe(size);
      expect(await rowCount(store)).toBe(size);
      expect(await store.insertMany(batch)).toBe(0);
    });

    it('splits a batch whose single statement would exceed the packet limit', async ({ defer }) => {
      const store = await migratedStore(defer);
      // 400 rows of 60 kB properties: about 24 MB, above MariaDB's default 16 MiB max_allowed_packet.
      const bulky = { blob: 'x'.repeat(60_000) };
      const batch = series(400, BASE_TIME, { properties: bulky });
      expect(await store.insertMany(batch)).toBe(400);
      expect(await rowCount(store)).toBe(400);
      expect((await store.query({ limit: 1 })).data[0]?.properties).toEqual(bulky);
    });

    it('filters by every column exactly, and by from (inclusive) and to (exclusive)', async ({ defer }) => {
      const store = await migratedStore(defer);
      const match = activity({
        logName: 'billing',
        event: 'paid',
        subjectType: 'Invoice',
        subjectId: '7',
        causerType: 'User',
        causerId: '3',
        ipAddress: '10.0.0.1',
        url: 'https://example.com/invoices/7',
        method: 'POST',
        batchUuid: newActivityId(),
        createdAt: new Date(BASE_TIME + 2000),
      });
      const near = activity({
        logName: 'Billing',
        event: 'paid ',
        subjectType: 'Invoice',
        subjectId: '8',
        causerType: 'User',
        causerId: '4',
        ipAddress: '10.0.0.2',
        url: 'https://example.com/invoices/7/',
        method: 'post',
        batchUuid: newActivityId(),
        createdAt: new Date(BASE_TIME + 1000),
      });
      const other = activity({ createdAt: new Date(BASE_TIME + 3000) });
      await store.insertMany([match, near, other]);

      const ids = async (filter: Parameters<ActivityStore['query']>[0]) =>
        (await store.query(filter)).data.map((row) => row.id);
      expect(await ids({ logName: 'billing' })).toEqual([match.id]);
      expect(await ids({ event: 'paid' })).toEqual([match.id]);
      expect(await ids({ subjectType: 'Invoice', subjectId: '7' })).toEqual([match.id]);
      expect(await ids({ subjectType: 'Invoice' })).toEqual([match.id, near.id]);
      expect(await ids({ causerType: 'User', causerId: '3' })).toEqual([match.id]);
      expect(await ids({ ipAddress: '10.0.0.1' })).toEqual([match.id]);
      expect(await ids({ url: 'https://example.com/invoices/7' })).toEqual([match.id]);
      expect(await ids({ method: 'POST' })).toEqual([match.id]);
      expect(await ids({ batchUuid: match.batchUuid! })).toEqual([match.id]);
      expect(await ids({ from: match.createdAt })).toEqual([other.id, match.id]);
      expect(await ids({ to: match.createdAt })).toEqual([near.id]);
      expect(await ids({ from: near.createdAt, to: other.createdAt })).toEqual([match.id, near.id]);
      expect(await ids({ logName: 'nobody' })).toEqual([]);
    });

    it('pages newest first without skipping or repeating rows while newer rows arrive', async ({ defer }) => {
      const store = await migratedStore(defer);
      // Several rows share a millisecond, so the id must break ties between pages.
      const seeded = [
        ...series(20, BASE_TIME),
        ...Array.from({ length: 6 }, () => activity({ createdAt: new Date(BASE_TIME + 5000) })),
      ];
      await store.insertMany(seeded);

      const seen: Activity[] = [];
      let cursor: string | undefined;
      let page = 0;
      do {
        const result = await store.query({ limit: 7, cursor });
        seen.push(...result.data);
        cursor = result.nextCursor ?? undefined;
        await store.insertMany(series(2, BASE_TIME + 100_000 + page * 10_000));
        page++;
      } while (cursor !== undefined);

      expect(seen).toEqual(newestFirst(seeded));
      expect(page).toBe(Math.ceil(seeded.length / 7));
    });

    it('returns no cursor after the last page', async ({ defer }) => {
      const store = await migratedStore(defer);
      await store.insertMany(series(3, BASE_TIME));
      expect((await store.query({ limit: 3 })).nextCursor).toBeNull();
      expect((await store.query()).data).toHaveLength(3);
    });

    it('rejects a limit over 500 and a cursor it did not make, naming the field', async ({ defer }) => {
      const store = await migratedStore(defer);
      await expectCode(store.query({ limit: 501 }), 'VALIDATION_FAILED', 'limit');
      await expectCode(store.query({ limit: 0 }), 'VALIDATION_FAILED', 'limit');
      await expectCode(store.query({ cursor: 'not-a-cursor' }), 'VALIDATION_FAILED', 'cursor');
      await expectCode(
        store.query({ cursor: Buffer.from('12:not-a-uuid-but-thirty-six-chars-xx').toString('base64url') }),
        'VALIDATION_FAILED',
        'cursor',
      );
      expect((await store.query({ limit: 500 })).data).toEqual([]);
      // Past 9999-12-31, where no created_at can be.
      await expectCode(
        store.query({ cursor: Buffer.from(`999999999999999:${newActivityId()}`).toString('base64url') }),
        'VALIDATION_FAILED',
        'cursor',
      );
    });

    it("reads a from or to beyond the range created_at can hold as that range's edge", async ({ defer }) => {
      const store = await migratedStore(defer);
      const seeded = series(3, BASE_TIME);
      await store.insertMany(seeded);
      const ids = async (filter: Parameters<ActivityStore['query']>[0]) =>
        (await store.query(filter)).data.map((row) => row.id);
      const all = newestFirst(seeded).map((row) => row.id);
      expect(await ids({ from: new Date('0000-01-01T00:00:00Z'), to: new Date(8.64e15) })).toEqual(all);
      expect(await ids({ from: new Date(-8.64e15) })).toEqual(all);
      expect(await ids({ from: new Date(8.64e15) })).toEqual([]);
      expect(await ids({ to: new Date('1900-01-01T00:00:00Z') })).toEqual([]);
    });

    it('prunes by age in chunks, reporting progress per chunk; dryRun only counts', async ({ defer }) => {
      const store = await migratedStore(defer);
      const old = series(25, BASE_TIME);
      const recent = series(5, BASE_TIME + 3_600_000);
      await store.insertMany([...old, ...recent]);
      const before = new Date(BASE_TIME + 1_800_000);

      expect(await store.prune({ before, dryRun: true })).toBe(25);
      expect(await rowCount(store)).toBe(30);
      // Counted in chunks too, along (created_at, id): rows sharing a millisecond are counted once.
      const sameMillisecond = Array.from({ length: 7 }, () =>
        activity({ createdAt: new Date(BASE_TIME + 500), logName: 'burst' }),
      );
      await store.insertMany(sameMillisecond);
      const counted: number[] = [];
      expect(
        await store.prune({ before, dryRun: true, chunkSize: 4, onProgress: (n) => counted.push(n) }),
      ).toBe(32);
      expect(counted).toEqual([4, 8, 12, 16, 20, 24, 28, 32]);
      expect(await store.prune({ before, logName: 'burst' })).toBe(7);
      expect(await store.prune({ before, dryRun: true })).toBe(25);

      const progress: number[] = [];
      expect(await store.prune({ before, chunkSize: 10, onProgress: (n) => progress.push(n) })).toBe(25);
      expect(progress).toEqual([10, 20, 25]);
      expect((await allRows(store)).map((row) => row.id)).toEqual(newestFirst(recent).map((row) => row.id));
      expect(await store.prune({ before })).toBe(0);
    });

    it('prunes only the given log name', async ({ defer }) => {
      const store = await migratedStore(defer);
      const audits = series(12, BASE_TIME, { logName: 'audit' });
      const others = series(4, BASE_TIME, { logName: 'other' });
      await store.insertMany([...audits, ...others]);
      const progress: number[] = [];
      const deleted = await store.prune({
        before: new Date(BASE_TIME + 60_000),
        logName: 'audit',
        chunkSize: 5,
        onProgress: (n) => progress.push(n),
      });
      expect(deleted).toBe(12);
      expect(progress).toEqual([5, 10, 12]);
      expect((await allRows(store)).map((row) => row.logName)).toEqual(['other', 'other', 'other', 'other']);
    });

    it('fails with STORE_CLOSED after close()', async ({ defer }) => {
      const store = await migratedStore(defer);
      await store.close();
      await store.close();
      await expectCode(store.insertMany([activity()]), 'STORE_CLOSED');
      await expectCode(store.query(), 'STORE_CLOSED');
      await expectCode(store.ping(), 'STORE_CLOSED');
      await expectCode(store.migrate(), 'STORE_CLOSED');
      await expectCode(store.prune({ before: new Date() }), 'STORE_CLOSED');
    });

    it('reports a table that was never migrated as STORE_SCHEMA_MISSING', async ({ defer }) => {
      const store = openStore(defer);
      await expectCode(store.insertMany([activity()]), 'STORE_SCHEMA_MISSING');
      await expectCode(store.query(), 'STORE_SCHEMA_MISSING');
    });

    if (target.enforcesColumnLengths) {
      it('reports an over-long value as STORE_DATA_TOO_LONG', async ({ defer }) => {
        const store = await migratedStore(defer);
        await expectCode(
          store.insertMany([activity({ subjectType: 'x'.repeat(192) })]),
          'STORE_DATA_TOO_LONG',
        );
        expect(await rowCount(store)).toBe(0);
      });
    }

    it(`turns a statement blocked by another connection into ${target.blockedCode}`, async ({ defer }) => {
      const table = `store_${uniqueSuffix()}`;
      const store = await migratedStore(defer, { table, overrides: { queryTimeoutMs: 300 } });
      const release = await admin.holdWriteLock(table);
      try {
        const started = Date.now();
        await expectCode(store.insertMany([activity()]), target.blockedCode);
        expect(Date.now() - started).toBeLessThan(5000);
      } finally {
        await release();
      }
      expect(await store.insertMany([activity()])).toBe(1);
    });

    if (target.networked) {
      it('reports a refused connection as STORE_CONNECTION_REFUSED, quickly', async ({ defer }) => {
        const store = openStore(defer, { overrides: { port: 1 } });
        const started = Date.now();
        await expectCode(store.ping(), 'STORE_CONNECTION_REFUSED');
        expect(Date.now() - started).toBeLessThan(2000);
      });

      it('reports a database that never answers as STORE_TIMEOUT', async ({ defer }) => {
        const server = await silentServer();
        try {
          const store = openStore(defer, { overrides: { port: server.port, connectTimeoutMs: 300 } });
          const started = Date.now();
          await expectCode(store.ping(), 'STORE_TIMEOUT');
          expect(Date.now() - started).toBeLessThan(3000);
        } finally {
          await server.close();
        }
      });

      it('hands DB_SSL_MODE to the driver (these test servers run without TLS)', async ({ defer }) => {
        const required = openStore(defer, { overrides: { sslMode: 'require' } });
        const refused = await required.ping().then(
          () => null,
          (error: unknown) => error,
        );
        expect(refused).toMatchObject({
          code: 'STORE_CONNECTION_REFUSED',
          message: expect.stringMatching(/SSL|secure connection/),
        });
        await expect(openStore(defer, { overrides: { sslMode: 'disable' } }).ping()).resolves.toBeUndefined();
      });

      it('reports a pool with no free connection as STORE_POOL_EXHAUSTED', async ({ defer }) => {
        const table = `store_${uniqueSuffix()}`;
        const store = await migratedStore(defer, {
          table,
          overrides: { poolMax: 1, connectTimeoutMs: 300, queryTimeoutMs: 3000 },
        });
        const release = await admin.holdWriteLock(table);
        const blocked = store.insertMany([activity()]).catch(() => undefined);
        try {
          await new Promise((resolve) => setTimeout(resolve, 100));
          const started = Date.now();
          await expectCode(store.query(), 'STORE_POOL_EXHAUSTED');
          expect(Date.now() - started).toBeLessThan(2000);
        } finally {
          await release();
          await blocked;
        }
      });
    } else {
      it('reports a database file that cannot be created as STORE_CONNECTION_REFUSED', async () => {
        const notADirectory = join(sqliteDir, `file_${uniqueSuffix()}`);
        writeFileSync(notADirectory, '');
        const config = loadConfig({
          env: { DATABASE_URL: `sqlite:${notADirectory}/nested/db.sqlite` },
        }).database;
        const store = createStore(config);
        await expectCode(store.ping(), 'STORE_CONNECTION_REFUSED');
        await store.close();
      });

      it('creates the directory of the database file', async () => {
        const filename = join(sqliteDir, `missing_${uniqueSuffix()}`, 'nested', 'db.sqlite');
        const store = createStore(loadConfig({ env: { DATABASE_URL: `sqlite:${filename}` } }).database);
        expect(await store.migrate()).toEqual({ from: 0, to: SCHEMA_VERSION });
        await store.close();
        expect(existsSync(filename)).toBe(true);
      });

      it('works in memory', async () => {
        const store = createStore(loadConfig({ env: { DATABASE_URL: 'sqlite::memory:' } }).database);
        await store.migrate();
        expect(await store.insertMany([activity()])).toBe(1);
        expect((await store.query()).data).toHaveLength(1);
        await store.close();
      });
    }
  });
}
