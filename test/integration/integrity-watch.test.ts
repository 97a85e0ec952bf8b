import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { generateSigningKeyPair, signCheckpoint } from '../../src/integrity/checkpoint.js';
import { writeCheckpointFile } from '../../src/runtime/checkpoint-files.js';
import { IntegrityWatch } from '../../src/runtime/integrity-watch.js';
import { createStore } from '../../src/store/create-store.js';
import { ChainHeadReader } from '../../src/store/seal-head.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { MARIADB_STORE_TARGET, POSTGRES_STORE_TARGET, sqliteStoreTarget } from '../helpers/store-targets.js';
import { test } from '../helpers/test-context.js';

/**
 * The snapshot's `integrity` as `serve` reads it, on every dialect: seals and rows sealed from
 * `<table>_seals` (summed incrementally, afresh when the chain got shorter), the newest checkpoint
 * in the directory or published, and how long the newest seals have gone without one.
 */

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-integrity-watch-'));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

/** Runs one statement with plain SQL. */
type Exec = (table: string, text: string) => Promise<void>;

const TARGETS = [
  {
    target: sqliteStoreTarget(sqliteDir),
    q: (name: string) => `"${name}"`,
    exec: (async (table, text) => {
      const db = new Database(join(sqliteDir, `${table}.sqlite`));
      try {
        db.exec(text);
      } finally {
        db.close();
      }
    }) as Exec,
  },
  {
    target: MARIADB_STORE_TARGET,
    q: (name: string) => `\`${name}\``,
    exec: (async (table, text) => {
      const db = await mysql.createConnection(MARIADB_STORE_TARGET.databaseUrl(table));
      try {
        await db.query(text);
      } finally {
        await db.end();
      }
    }) as Exec,
  },
  {
    target: POSTGRES_STORE_TARGET,
    q: (name: string) => `"${name}"`,
    exec: (async (table, text) => {
      const db = new pg.Client({ connectionString: POSTGRES_STORE_TARGET.databaseUrl(table) });
      await db.connect();
      try {
        await db.query(text);
      } finally {
        await db.end();
      }
    }) as Exec,
  },
];

const KEYS = generateSigningKeyPair();

for (const { target, q, exec } of TARGETS) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`integrity watch: ${target.name}`, () => {
    test('counts seals and rows sealed, finds the newest checkpoint and how long the newest seals went without one', async ({
      defer,
    }) => {
      const table = `watch_${uniqueSuffix()}`;
      const checkpointDir = mkdtempSync(join(tmpdir(), 'activity-integrity-watch-checkpoints-'));
      defer(() => rmSync(checkpointDir, { recursive: true, force: true }));
      const config = loadConfig({
        env: {
          DATABASE_URL: target.databaseUrl(table),
          ACTIVITY_LOG_TABLE: table,
          ACTIVITY_LOG_SEAL: 'on',
          ACTIVITY_LOG_CHECKPOINT_DIR: checkpointDir,
        },
      });
      const store = createStore(config.database);
      defer(async () => {
        await store.close();
        await target.drop(table);
      });
      await store.migrate();
      // Started a minute ago: a seal's wait counts from when it was written.
      const watch = new IntegrityWatch({
        config,
        verify: null,
        publishing: false,
        nowMs: () => Date.now() - 60_000,
      });
      defer(() => watch.close());

      expect(await watch.figures(Date.now())).toEqual({
        seals_written: 0,
        rows_sealed: 0,
        read_error: null,
        checkpoint: null,
        checkpoint_behind_seconds: 0,
        verify: expect.objectContaining({ status: 'never', interval_seconds: null }),
      });

      const firstSealedAt = Date.now();
      await store.insertMany(builtActivities(5));
      await store.insertMany(builtActivities(3, 5));
      const unchecked = await watch.figures(firstSealedAt + 10_000);
      expect(unchecked).toMatchObject({ seals_written: 2, rows_sealed: 8, checkpoint: null });
      expect(unchecked.checkpoint_behind_seconds).toBeGreaterThanOrEqual(8);
      expect(unchecked.checkpoint_behind_seconds).toBeLessThanOrEqual(11);

      // A checkpoint of the head in the directory covers both seals.
      const heads = new ChainHeadReader(config.database);
      const head = await heads.read().finally(() => heads.close());
      const issuedAt = new Date(Date.now() - 30_000);
      await writeCheckpointFile(checkpointDir, signCheckpoint({ ...head!, issuedAt }, KEYS.privateKeyPem));
      const checked = await watch.figures(Date.now());
      expect(checked).toMatchObject({
        seals_written: 2,
        checkpoint: { seq: 2, issued_at: issuedAt.toISOString(), source: 'dir' },
        checkpoint_behind_seconds: 0,
      });
      expect(checked.checkpoint!.age_seconds).toBeGreaterThanOrEqual(30);

      // A third seal: behind again, counted from that seal; a checkpoint published here covers it.
      const thirdSealedAt = Date.now();
      await store.insertMany(builtActivities(4, 8));
      const behind = await watch.figures(thirdSealedAt + 5000);
      expect(behind).toMatchObject({ seals_written: 3, rows_sealed: 12, checkpoint: { seq: 2 } });
      expect(behind.checkpoint_behind_seconds).toBeGreaterThanOrEqual(3);
      expect(behind.checkpoint_behind_seconds).toBeLessThanOrEqual(6);
      watch.recordCheckpoint({ seq: 3, issued_at: new Date().toISOString() });
      expect(await watch.figures(Date.now())).toMatchObject({
        checkpoint: { seq: 3, source: 'published' },
        checkpoint_behind_seconds: 0,
      });

      // The newest seal deleted with plain SQL: the chain is shorter and its rows are summed afresh.
      await exec(table, `DELETE FROM ${q(`${table}_seals`)} WHERE seq = 3`);
      expect(await watch.figures(Date.now())).toMatchObject({ seals_written: 2, rows_sealed: 8 });
    });

    test('says in read_error that the seals table is missing, without failing the snapshot', async ({
      defer,
    }) => {
      const table = `watch_${uniqueSuffix()}`;
      const config = loadConfig({
        env: { DATABASE_URL: target.databaseUrl(table), ACTIVITY_LOG_TABLE: table },
      });
      const watch = new IntegrityWatch({ config, verify: null, publishing: false });
      defer(async () => {
        await watch.close();
        await target.drop(table);
      });
      const figures = await watch.figures(Date.now());
      expect(figures).toMatchObject({ seals_written: 0, rows_sealed: 0, checkpoint_behind_seconds: null });
      expect(figures.read_error).toBe(
        `${table}_seals is missing: set ACTIVITY_LOG_SEAL=on (and run activity-log migrate) so that writes are sealed`,
      );
    });
  });
}
