import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, sql } from 'kysely';
import { afterAll, describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { isActivityLogError } from '../../src/core/errors.js';
import { nextSeal, type Seal } from '../../src/integrity/seal-hash.js';
import { DIALECT_REGISTRY } from '../../src/store/dialect-registry.js';
import { ChainHeadReader } from '../../src/store/seal-head.js';
import type { StoreDialect } from '../../src/store/store-dialect.js';
import {
  MARIADB_TARGET,
  POSTGRES_TARGET,
  type ServiceInfo,
  serviceAvailable,
  uniqueSuffix,
} from '../helpers/services.js';
import { test } from '../helpers/test-context.js';

interface Target {
  readonly name: string;
  readonly service: ServiceInfo | undefined;
  databaseUrl(table: string): string;
  /** How the dialect stores `created_at`, which `sealed_at` follows. */
  readonly timestampType: string;
}

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-seal-head-'));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

const TARGETS: readonly Target[] = [
  {
    name: 'SQLite',
    service: undefined,
    databaseUrl: (table) => `sqlite:${join(sqliteDir, `${table}.sqlite`)}`,
    timestampType: 'TEXT',
  },
  {
    name: MARIADB_TARGET.name,
    service: MARIADB_TARGET.service,
    databaseUrl: () => MARIADB_TARGET.url,
    timestampType: 'DATETIME(3)',
  },
  {
    name: POSTGRES_TARGET.name,
    service: POSTGRES_TARGET.service,
    databaseUrl: () => POSTGRES_TARGET.url,
    timestampType: 'TIMESTAMPTZ(3)',
  },
];

/** Seals chained over made-up roots, closing `rowCounts[i]` rows each. */
function sealsOf(rowCounts: readonly number[]): Seal[] {
  const seals: Seal[] = [];
  for (const [index, rowCount] of rowCounts.entries()) {
    seals.push(
      nextSeal(seals.at(-1) ?? null, {
        root: createHash('sha256').update(`batch ${index}`).digest(),
        rowCount,
        sealedAt: new Date(Date.UTC(2025, 10, 28, 9, 30, index, 123)),
      }),
    );
  }
  return seals;
}

for (const target of TARGETS) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`the chain head of <table>_seals: ${target.name}`, () => {
    /** A reader on a table of its own, and a connection to create and fill its seals table. */
    function setUp(defer: (cleanup: () => unknown) => void) {
      const table = `seal_head_${uniqueSuffix()}`;
      const config = loadConfig({
        env: { DATABASE_URL: target.databaseUrl(table), ACTIVITY_LOG_TABLE: table },
      });
      const dialect: StoreDialect = DIALECT_REGISTRY[config.database.connection].create(config.database);
      const db = new Kysely<unknown>({ dialect: dialect.createKyselyDialect() });
      const seals = sql.table(`${table}_seals`);
      defer(() => db.destroy());
      defer(() => sql`DROP TABLE IF EXISTS ${seals}`.execute(db));
      const reader = new ChainHeadReader(config.database);
      defer(() => reader.close());
      return {
        table,
        reader,
        // The contract's columns, typed as the dialect types them elsewhere.
        createSealsTable: () =>
          sql`CREATE TABLE ${seals} (
            seq BIGINT NOT NULL PRIMARY KEY,
            root CHAR(64) NOT NULL,
            row_count INTEGER NOT NULL,
            prev_hash CHAR(64) NOT NULL,
            hash CHAR(64) NOT NULL,
            sealed_at ${sql.raw(target.timestampType)} NOT NULL
          )`.execute(db),
        insert: async (rows: readonly Seal[]) => {
          for (const seal of rows) {
            await sql`INSERT INTO ${seals} (seq, root, row_count, prev_hash, hash, sealed_at) VALUES (${seal.seq}, ${seal.root.toString('hex')}, ${seal.row_count}, ${seal.prev_hash.toString('hex')}, ${seal.hash.toString('hex')}, ${dialect.encodeTimestamp(seal.sealed_at)})`.execute(
              db,
            );
          }
        },
      };
    }

    test('says sealing is off when the seals table does not exist', async ({ defer }) => {
      const { table, reader } = setUp(defer);
      const error = await reader.read().catch((caught: unknown) => caught);
      expect(isActivityLogError(error, 'STORE_SCHEMA_MISSING')).toBe(true);
      expect((error as Error).message).toMatch(
        new RegExp(
          `^no seals yet: ${table}_seals is missing; set ACTIVITY_LOG_SEAL=on so that writes are sealed$`,
        ),
      );
    });

    test('reads no head while the seals table is empty', async ({ defer }) => {
      const { reader, createSealsTable } = setUp(defer);
      await createSealsTable();
      expect(await reader.read()).toBeNull();
    });

    test("reads the newest seal's seq and hash and the rows of all seals up to it", async ({ defer }) => {
      const { table, reader, createSealsTable, insert } = setUp(defer);
      await createSealsTable();
      const seals = sealsOf([2, 5, 1, 4]);
      await insert(seals.slice(0, 3));
      expect(await reader.read()).toEqual({ table, seq: 3, sealHash: seals[2]!.hash, totalRows: 8 });
      await insert(seals.slice(3));
      expect(await reader.read()).toEqual({ table, seq: 4, sealHash: seals[3]!.hash, totalRows: 12 });
    });
  });
}
