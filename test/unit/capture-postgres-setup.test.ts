import { describe, expect, it } from 'vitest';
import {
  assertLogicalWal,
  type SourceQuery,
  setUpPostgresCapture,
  setupStatements,
} from '../../src/capture/postgres/pg-capture-admin.js';
import { lsnFromBigInt, lsnToBigInt, normalizeLsn } from '../../src/capture/postgres/pg-lsn.js';

/** A source that answers `SHOW wal_level` with `level` and records every other statement. */
function fakeSource(level: string): SourceQuery & { readonly statements: string[] } {
  const statements: string[] = [];
  return {
    statements,
    async query<R extends object>(sql: string) {
      statements.push(sql);
      if (sql === 'SHOW wal_level') return { rows: [{ wal_level: level }] as unknown as R[] };
      return { rows: [] as R[] };
    },
  };
}

describe('capture --setup on PostgreSQL', () => {
  it('refuses with one line naming wal_level when the server does not write logical WAL', async () => {
    const source = fakeSource('replica');
    const refusal = setUpPostgresCapture(
      source,
      { slot: 'activity_log', tables: ['orders'], activityTable: 'activity_log' },
      () => undefined,
    );
    await expect(refusal).rejects.toMatchObject({ code: 'CAPTURE_SOURCE_UNSUITABLE', field: 'wal_level' });
    await expect(refusal).rejects.toThrow(
      /^wal_level is replica on the capture source; change capture needs wal_level=logical/,
    );
    expect(source.statements).toEqual(['SHOW wal_level']);
  });

  it('accepts a server with wal_level=logical', async () => {
    await expect(assertLogicalWal(fakeSource('logical'))).resolves.toBeUndefined();
  });

  it('sets full replica identity, publishes exactly the tables and creates the slot', () => {
    const tables = [
      { schema: 'public', name: 'orders' },
      { schema: 'shop', name: 'Order "Lines"' },
    ];
    expect(setupStatements(tables, 'activity_log', { publicationExists: false, slotExists: false })).toEqual([
      'ALTER TABLE "public"."orders" REPLICA IDENTITY FULL',
      'ALTER TABLE "shop"."Order ""Lines""" REPLICA IDENTITY FULL',
      'CREATE PUBLICATION "activity_log" FOR TABLE "public"."orders", "shop"."Order ""Lines"""',
      "SELECT pg_create_logical_replication_slot('activity_log', 'pgoutput')",
    ]);
    expect(
      setupStatements(tables.slice(0, 1), 'activity_log', { publicationExists: true, slotExists: true }),
    ).toEqual([
      'ALTER TABLE "public"."orders" REPLICA IDENTITY FULL',
      'ALTER PUBLICATION "activity_log" SET TABLE "public"."orders"',
    ]);
  });

  it('refuses an unset ACTIVITY_LOG_CAPTURE_TABLES naming it', async () => {
    await expect(
      setUpPostgresCapture(
        fakeSource('logical'),
        { slot: 'activity_log', tables: [], activityTable: 'activity_log' },
        () => undefined,
      ),
    ).rejects.toThrow(/^ACTIVITY_LOG_CAPTURE_TABLES is not set/);
  });
});

describe('LSN arithmetic', () => {
  it('reads and writes LSNs as PostgreSQL does, across the 32-bit boundary', () => {
    expect(lsnToBigInt('0/10')).toBe(16n);
    expect(lsnFromBigInt(lsnToBigInt('1/0') - 1n)).toBe('0/FFFFFFFF');
    expect(normalizeLsn('00000016/0000B374')).toBe('16/B374');
    expect(() => lsnToBigInt('nope')).toThrow('not an LSN');
  });
});
