import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, sql } from 'kysely';
import { afterAll, describe, expect } from 'vitest';
import { type Config, loadConfig } from '../../src/config/config.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { type ChainReport, verifyChain } from '../../src/integrity/verify-chain.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import type { ActivityDatabase } from '../../src/store/activity-table.js';
import { createStore } from '../../src/store/create-store.js';
import { DIALECT_REGISTRY } from '../../src/store/dialect-registry.js';
import { eraseActivities } from '../../src/store/erase.js';
import { backfillSeals } from '../../src/store/seal-backfill.js';
import { openSealReader } from '../../src/store/seal-reader.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { runCli } from '../helpers/queue-cli.js';
import { serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { storeTargets } from '../helpers/store-targets.js';
import { test } from '../helpers/test-context.js';

/**
 * Erasure on every dialect: personal fields null in the table, the list API and the exports, the
 * chain still verifying, the erasure logged and sealed, and the per-seal list of erasable fields.
 */

type Defer = (cleanup: () => unknown) => void;

const ADMIN_TOKEN = 'admin-token-for-erase-tests';
const DEFAULT_FIELDS = 'causer_id,ip_address,user_agent,properties';
const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-erase-'));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

interface StoredRow {
  id: string;
  causer_id: string | null;
  ip_address: string | null;
  user_agent: string | null;
  properties: unknown;
  url: string | null;
  seal_seq: number | string | null;
  seal_salt: string | null;
  seal_commitments: string | null;
}

interface ErasableTable {
  readonly env: Record<string, string>;
  readonly config: Config;
  readonly store: ActivityStore;
  readonly db: Kysely<ActivityDatabase>;
  rows(): Promise<StoredRow[]>;
}

function verify(config: Config): Promise<ChainReport> {
  const reader = openSealReader(config.database);
  return (async () => {
    try {
      return await verifyChain(reader.groups(1), {
        fromSeq: 1,
        anchor: null,
        erasableFields: config.database.erasableFields,
        unsealedRows: await reader.countUnsealed(),
      });
    } finally {
      await reader.close();
    }
  })();
}

for (const target of storeTargets(sqliteDir)) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`erase: ${target.name}`, () => {
    async function erasableTable(defer: Defer, extra: Record<string, string> = {}): Promise<ErasableTable> {
      const table = `erase_${uniqueSuffix()}`;
      const env = {
        DATABASE_URL: target.databaseUrl(table),
        ACTIVITY_LOG_TABLE: table,
        ACTIVITY_LOG_SEAL: 'on',
        ...extra,
      };
      const config = loadConfig({ env });
      const store = createStore(config.database);
      const db = new Kysely<ActivityDatabase>({
        dialect: DIALECT_REGISTRY[config.database.connection].create(config.database).createKyselyDialect(),
      });
      defer(async () => {
        await store.close();
        await db.destroy();
        await target.drop(table);
      });
      await store.migrate();
      // Five activities caused by User 7, three by User 8 about orders 100…102.
      expect(await store.insertMany(builtActivities(5, 0))).toBe(5);
      expect(await store.insertMany(builtActivities(3, 100, { causer: { type: 'User', id: 8 } }))).toBe(3);
      return {
        env,
        config,
        store,
        db,
        rows: async () =>
          (
            await sql<StoredRow>`SELECT * FROM ${sql.table(table)} WHERE ${sql.id('log_name')} = 'orders' ORDER BY ${sql.id('id')}`.execute(
              db,
            )
          ).rows,
      };
    }

    test('erases by causer and by subject, keeping commitments; verify passes; the erasure is logged and sealed', async ({
      defer,
    }) => {
      const erasable = await erasableTable(defer);
      const before = await erasable.rows();

      const dry = await eraseActivities(
        erasable.config.database,
        { by: 'causer', type: 'User', id: '7' },
        { dryRun: true, chunkSize: 2 },
      );
      expect(dry).toMatchObject({ dryRun: true, matched: 5, erased: 5, sealed: 5, activityId: null });
      expect(await erasable.rows()).toEqual(before);
      expect((await erasable.store.query({ logName: 'activity-log' })).data).toEqual([]);

      const progress: number[] = [];
      const erased = await eraseActivities(
        erasable.config.database,
        { by: 'causer', type: 'User', id: '7' },
        { chunkSize: 2, onProgress: (soFar) => progress.push(soFar), causer: { type: 'os-user', id: 'ops' } },
      );
      expect(erased).toMatchObject({ dryRun: false, matched: 5, erased: 5, sealed: 5, alreadyErased: 0 });
      expect(progress).toEqual([2, 4, 5]);
      const after = await erasable.rows();
      const ofUser7 = after.filter((row) => before.find((old) => old.id === row.id)!.causer_id === '7');
      expect(ofUser7).toHaveLength(5);
      for (const row of ofUser7) {
        expect(row).toMatchObject({ causer_id: null, ip_address: null, user_agent: null, seal_salt: null });
        expect(row.properties).toBeNull();
        expect(row.url).not.toBeNull();
        expect(Object.keys(JSON.parse(row.seal_commitments!))).toEqual(DEFAULT_FIELDS.split(','));
      }
      expect(after.filter((row) => row.causer_id === '8')).toHaveLength(3);
      expect(await verify(erasable.config)).toMatchObject({ intact: true, rows: 9, problems: [] });

      const logged = (await erasable.store.query({ logName: 'activity-log' })).data;
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({
        id: erased.activityId,
        event: 'erased',
        causerType: 'os-user',
        causerId: 'ops',
        properties: { selector: 'causer', type: 'User', matched: 5, erased: 5, already_erased: 0 },
      });
      expect(JSON.stringify(logged[0]!.properties)).not.toMatch(/"7"|:7\b/);
      const [loggedRow] = (
        await sql<StoredRow>`SELECT * FROM ${sql.table(erasable.config.database.table)} WHERE ${sql.id('id')} = ${erased.activityId}`.execute(
          erasable.db,
        )
      ).rows;
      expect(loggedRow!.seal_seq).not.toBeNull();
      expect(loggedRow!.seal_salt).toMatch(/^[0-9a-f]{32}$/);

      const again = await eraseActivities(erasable.config.database, { by: 'causer', type: 'User', id: '7' });
      expect(again).toMatchObject({ matched: 0, erased: 0 });

      const subject = { by: 'subject', type: 'Order', id: '101' } as const;
      expect(await eraseActivities(erasable.config.database, subject)).toMatchObject({
        matched: 1,
        erased: 1,
      });
      expect(await eraseActivities(erasable.config.database, subject)).toMatchObject({
        matched: 1,
        erased: 0,
        alreadyErased: 1,
      });
      expect(await verify(erasable.config)).toMatchObject({ intact: true, rows: 12 });

      // A stored commitment changed afterwards is found: it no longer makes the row's leaf.
      const victim = ofUser7[2]!;
      const commitments = JSON.parse(victim.seal_commitments!) as Record<string, string>;
      commitments.ip_address = commitments.ip_address!.replace(/^./, (c) => (c === '0' ? '1' : '0'));
      await sql`UPDATE ${sql.table(erasable.config.database.table)} SET ${sql.id('seal_commitments')} = ${JSON.stringify(
        commitments,
      )} WHERE ${sql.id('id')} = ${victim.id}`.execute(erasable.db);
      const tampered = await verify(erasable.config);
      expect(tampered.intact).toBe(false);
      expect(tampered.problems[0]).toMatchObject({ kind: 'row-altered' });
    });

    test('the list API and the exports show erased rows as erased, their personal fields null', async ({
      defer,
    }) => {
      const erasable = await erasableTable(defer);
      await eraseActivities(erasable.config.database, { by: 'subject', type: 'Order', id: '101' });
      const composed = composeActivityLog({
        env: {},
        config: {
          method: 'sync',
          adminToken: ADMIN_TOKEN,
          spoolDir: join(sqliteDir, `spool-${uniqueSuffix()}`),
        },
        store: erasable.store,
      });
      const app = createActivityLogServer(composed);
      defer(async () => {
        await app.close();
        await composed.activityLog.close();
      });
      const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };

      const list = await app.inject({
        method: 'GET',
        url: '/api/backoffice/activity-logs?log_name=orders',
        headers,
      });
      expect(list.statusCode).toBe(200);
      const data = list.json<{ data: Record<string, unknown>[] }>().data;
      expect(data).toHaveLength(8);
      const erased = data.filter((item) => item.erased === true);
      expect(erased).toHaveLength(1);
      expect(erased[0]).toMatchObject({
        subject_id: '101',
        causer_id: null,
        ip_address: null,
        user_agent: null,
        properties: {},
      });
      expect(data.filter((item) => item.erased === false)).toHaveLength(7);

      const ndjson = await app.inject({
        method: 'GET',
        url: '/api/backoffice/activity-logs/export.ndjson?log_name=orders',
        headers,
      });
      const lines = ndjson.body
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.filter((line) => line.erased === true).map((line) => line.subject_id)).toEqual(['101']);
      expect(lines.find((line) => line.erased === true)).toMatchObject({ causer_id: null, ip_address: null });

      const csv = await app.inject({
        method: 'GET',
        url: '/api/backoffice/activity-logs/export.csv?log_name=orders',
        headers,
      });
      const [header, ...rows] = csv.body.trim().split('\r\n');
      expect(header!.split(',').at(-1)).toBe('erased');
      const erasedRows = rows.filter((row) => row.endsWith(',"true"'));
      expect(erasedRows).toHaveLength(1);
      expect(erasedRows[0]).not.toContain('203.0.113.9');
      expect(rows.filter((row) => row.endsWith(',"false"'))).toHaveLength(7);
    });

    test('each seal keeps the erasable fields it was sealed with: changing the setting breaks neither verify nor erase', async ({
      defer,
    }) => {
      const erasable = await erasableTable(defer);
      const seals = sql.table(`${erasable.config.database.table}_seals`);
      const lists = async () =>
        (
          await sql<{
            erasable_fields: string | null;
          }>`SELECT ${sql.id('erasable_fields')} FROM ${seals} WHERE ${sql.id('seq')} > 0 ORDER BY ${sql.id('seq')}`.execute(
            erasable.db,
          )
        ).rows.map((row) => row.erasable_fields);
      expect(await lists()).toEqual([DEFAULT_FIELDS, DEFAULT_FIELDS]);

      const narrowed = loadConfig({ env: { ...erasable.env, ACTIVITY_LOG_ERASABLE_FIELDS: 'ip_address' } });
      expect(await verify(narrowed)).toMatchObject({ intact: true, rows: 8 });
      const narrowStore = createStore(narrowed.database);
      defer(() => narrowStore.close());
      expect(await narrowStore.insertMany(builtActivities(2, 200))).toBe(2);
      const unsealed = createStore({ ...narrowed.database, seal: 'off' });
      expect(await unsealed.insertMany(builtActivities(1, 300))).toBe(1);
      await unsealed.close();
      expect(await backfillSeals(narrowed.database)).toEqual({ rows: 1, seals: 1 });
      expect(await lists()).toEqual([DEFAULT_FIELDS, DEFAULT_FIELDS, 'ip_address', 'ip_address']);
      expect(await verify(erasable.config)).toMatchObject({ intact: true, rows: 11 });

      // Each row loses the fields of its own seal's list, whatever the setting is now.
      const result = await eraseActivities(narrowed.database, { by: 'causer', type: 'User', id: '7' });
      expect(result).toMatchObject({ matched: 8, erased: 8, sealed: 8 });
      const rows = await erasable.rows();
      const newer = rows.filter((row) => Number(row.seal_seq) >= 3);
      expect(newer).toHaveLength(3);
      for (const row of newer) {
        expect(row).toMatchObject({ ip_address: null, causer_id: '7', user_agent: 'test-agent/1.0' });
        expect(Object.keys(JSON.parse(row.seal_commitments!))).toEqual(['ip_address']);
      }
      const older = rows.filter((row) => Number(row.seal_seq) === 1);
      for (const row of older) expect(row).toMatchObject({ causer_id: null, user_agent: null });
      expect(await verify(erasable.config)).toMatchObject({ intact: true });
      expect(await verify(narrowed)).toMatchObject({ intact: true });
    });

    test('rows no seal covers have their erasable fields nulled, with nothing kept and no erased mark', async ({
      defer,
    }) => {
      const erasable = await erasableTable(defer, { ACTIVITY_LOG_SEAL: 'off' });
      const [unsealed] = await erasable.rows();
      expect(unsealed!.seal_seq).toBeNull();
      const result = await eraseActivities(erasable.config.database, {
        by: 'subject',
        type: 'Order',
        id: '2',
      });
      expect(result).toMatchObject({ matched: 1, erased: 1, sealed: 0 });
      const row = (await erasable.rows()).find((stored) => stored.causer_id === null)!;
      expect(row).toMatchObject({
        ip_address: null,
        user_agent: null,
        seal_salt: null,
        seal_commitments: null,
      });
      expect(row.properties).toBeNull();
      const page = await erasable.store.query({ subjectType: 'Order', subjectId: '2' });
      expect(page.data).toHaveLength(1);
      expect(page.erasedIds?.size).toBe(0);
      expect(
        await eraseActivities(erasable.config.database, { by: 'subject', type: 'Order', id: '2' }),
      ).toMatchObject({ matched: 1, erased: 0, alreadyErased: 1 });
    });

    test('the CLI: erase --dry-run, erase, --json, verify exits 0; bad flags exit 2 naming the flag', async ({
      defer,
    }) => {
      const erasable = await erasableTable(defer);
      const before = await erasable.rows();
      const dry = await runCli(['erase', '--causer-type=User', '--causer-id=8', '--dry-run'], erasable.env);
      expect(dry).toMatchObject({ code: 0 });
      expect(dry.stdout).toMatch(/^would erase 3 activities of 3 matched/);
      expect(await erasable.rows()).toEqual(before);

      const run = await runCli(
        ['erase', '--causer-type=User', '--causer-id=8', '--chunk=2', '--json'],
        erasable.env,
      );
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({
        dryRun: false,
        matched: 3,
        erased: 3,
        alreadyErased: 0,
      });
      expect(run.stderr).toMatch(/read and erased 2 so far/);
      expect(await runCli(['verify'], erasable.env)).toMatchObject({ code: 0 });
      const again = await runCli(['erase', '--subject-type=Order', '--subject-id=100'], erasable.env);
      expect(again.stdout).toMatch(/^erased 0 activities of 1 matched .*1 already erased/);
      const logged = (await erasable.store.query({ logName: 'activity-log' })).data;
      expect(logged).toHaveLength(2);
      expect(logged.every((activity) => activity.causerType === 'os-user')).toBe(true);

      for (const [args, flag] of [
        [[], '--causer-type'],
        [['--causer-type=User'], '--causer-id'],
        [['--subject-id=3'], '--subject-type'],
        [['--causer-type=User', '--causer-id=7', '--subject-type=Order', '--subject-id=1'], '--subject-type'],
        [['--causer-type=User', '--causer-id=7', '--chunk=0'], '--chunk'],
      ] as const) {
        const usage = await runCli(['erase', ...args], erasable.env);
        expect(usage.code, args.join(' ')).toBe(2);
        expect(usage.stderr).toContain(flag);
        expect(usage.stderr.trim().split('\n')).toHaveLength(1);
      }
    });
  });
}
