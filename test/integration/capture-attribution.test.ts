import { describe, expect } from 'vitest';
import { runWithContext } from '../../src/core/context.js';
import { createActivityLog } from '../../src/runtime/create-activity-log.js';
import type { SqlExecutor } from '../../src/runtime/tag-transaction.js';
import {
  activities,
  type CaptureDialect,
  captureScene,
  inStreamOrder,
  insertRange,
  startCapture,
  waitForCount,
} from '../helpers/capture-scene.js';
import { MARIADB, POSTGRES, serviceAvailable } from '../helpers/services.js';
import { test as it } from '../helpers/test-context.js';

const dialects: { readonly dialect: CaptureDialect; readonly available: boolean; readonly name: string }[] = [
  { dialect: 'postgres', name: 'PostgreSQL', available: await serviceAvailable(POSTGRES) },
  { dialect: 'mariadb', name: 'MariaDB', available: await serviceAvailable(MARIADB) },
];

for (const { dialect, name, available } of dialects) {
  describe.skipIf(!available)(`change capture from ${name}: attribution and keys`, () => {
    it('turns one UPDATE of 5,000 rows in a tagged transaction into 5,000 activities of one batch with the causer of the tag', async ({
      defer,
    }) => {
      const s = await captureScene(dialect, defer);
      const t = s.quote(s.table);
      await insertRange(s, 1, 5000);
      const activityLog = createActivityLog({ env: s.env });
      defer(() => activityLog.close());
      const capture = startCapture(s.config);
      await runWithContext(
        { causer: { type: 'User', id: '42' }, ipAddress: '203.0.113.9', url: '/orders/ship', method: 'POST' },
        async () => {
          await s.sql('BEGIN');
          await activityLog.tagTransaction(s.executor as SqlExecutor);
          await s.sql(`UPDATE ${t} SET status = 'shipped', total = id WHERE id <= 5000`);
          await s.sql('COMMIT');
        },
      );
      await waitForCount(s, 10_000, 60_000);
      await capture.stop();

      const rows = await activities(s);
      expect(rows).toHaveLength(10_000);
      const created = rows.filter((row) => row.event === 'created');
      expect(created.every((row) => row.causer_id === null)).toBe(true);
      const updates = rows.filter((row) => row.event === 'updated');
      expect(updates).toHaveLength(5000);
      expect(new Set(updates.map((row) => row.batch_uuid)).size).toBe(1);
      expect(new Set(updates.map((row) => row.subject_id)).size).toBe(5000);
      expect(new Set(updates.map((row) => row.id)).size).toBe(5000);
      for (const row of updates) {
        expect([row.causer_type, row.causer_id, row.ip_address, row.url]).toEqual([
          'User',
          '42',
          '203.0.113.9',
          '/orders/ship',
        ]);
        const id = Number(row.subject_id);
        expect(row.properties.old).toEqual({ status: 'new', total: null });
        expect(row.properties.attributes).toEqual({ status: 'shipped', total: `${id}.00` });
      }
    });

    it('attributes each change of two interleaved tagged transactions, committed in the opposite order, to its own causer', async ({
      defer,
    }) => {
      const s = await captureScene(dialect, defer);
      const t = s.quote(s.table);
      const p = (n: number) => (dialect === 'postgres' ? `$${n}` : '?');
      await insertRange(s, 1, 20);
      const other = await s.connect();
      const activityLog = createActivityLog({ env: s.env });
      defer(() => activityLog.close());
      const capture = startCapture(s.config);
      const tag = (executor: unknown, id: string) =>
        runWithContext({ causer: { type: 'User', id }, url: `/by/${id}` }, () =>
          activityLog.tagTransaction(executor as SqlExecutor),
        );
      await s.sql('BEGIN');
      await tag(s.executor, '1');
      await other.sql('BEGIN');
      await tag(other.executor, '2');
      for (let i = 1; i <= 10; i++) {
        await s.sql(`UPDATE ${t} SET status = 'by-1' WHERE id = ${p(1)}`, [i]);
        await other.sql(`UPDATE ${t} SET status = 'by-2' WHERE id = ${p(1)}`, [10 + i]);
      }
      await s.sql(`INSERT INTO ${t} (id, status) VALUES (101, 'by-1')`);
      await other.sql(`INSERT INTO ${t} (id, status) VALUES (102, 'by-2')`);
      // Started second, committed first.
      await other.sql('COMMIT');
      await s.sql('COMMIT');
      await waitForCount(s, 42);
      await capture.stop();

      const changes = (await activities(s)).filter(
        (row) => row.event !== 'created' || row.causer_id !== null,
      );
      expect(changes).toHaveLength(22);
      for (const row of changes) {
        const by = String(row.properties.attributes!.status).replace('by-', '');
        expect([row.causer_type, row.causer_id, row.url], JSON.stringify(row)).toEqual([
          'User',
          by,
          `/by/${by}`,
        ]);
      }
      const byCauser = (id: string) => changes.filter((row) => row.causer_id === id);
      expect(
        byCauser('1')
          .map((row) => Number(row.subject_id))
          .sort((a, b) => a - b),
      ).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 101]);
      expect(
        byCauser('2')
          .map((row) => Number(row.subject_id))
          .sort((a, b) => a - b),
      ).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 102]);
      expect(new Set(byCauser('1').map((row) => row.batch_uuid)).size).toBe(1);
      expect(new Set(byCauser('2').map((row) => row.batch_uuid)).size).toBe(1);
      expect(byCauser('1')[0]!.batch_uuid).not.toBe(byCauser('2')[0]!.batch_uuid);
    });

    it('joins a composite primary key with "," in subject_id and leaves excluded and secret-named columns out', async ({
      defer,
    }) => {
      const text = dialect === 'postgres' ? 'text' : 'VARCHAR(40)';
      const s = await captureScene(dialect, defer, {
        columns: `order_id integer, line_no integer, sku ${text}, password ${text}, api_token ${text}, note ${text}, PRIMARY KEY (order_id, line_no)`,
      });
      // The scene excludes `<table>.note`; `password` and `api_token` are redacted keys.
      const capture = startCapture(s.config);
      const t = s.quote(s.table);
      await s.sql(
        `INSERT INTO ${t} (order_id, line_no, sku, password, api_token, note) VALUES (17, 3, 'A-1', 'hunter2', 'tok-1', 'private')`,
      );
      await s.sql(
        `UPDATE ${t} SET sku = 'A-2', password = 'hunter3', api_token = 'tok-2', note = 'other' WHERE order_id = 17`,
      );
      await s.sql(`UPDATE ${t} SET password = 'hunter4', note = 'only hidden columns' WHERE order_id = 17`);
      await s.sql(`DELETE FROM ${t} WHERE order_id = 17 AND line_no = 3`);
      await waitForCount(s, 4);
      await capture.stop();

      const rows = inStreamOrder(await activities(s));
      expect(rows.map((row) => [row.event, row.subject_type, row.subject_id])).toEqual([
        ['created', 'Order', '17,3'],
        ['updated', 'Order', '17,3'],
        ['updated', 'Order', '17,3'],
        ['deleted', 'Order', '17,3'],
      ]);
      expect(rows[0]!.properties.attributes).toEqual({ order_id: 17, line_no: 3, sku: 'A-1' });
      expect(rows[1]!.properties.attributes).toEqual({ sku: 'A-2' });
      expect(rows[1]!.properties.old).toEqual({ sku: 'A-1' });
      // Only hidden columns changed: an update with nothing to show, still recorded.
      expect(rows[2]!.properties.attributes).toEqual({});
      expect(rows[3]!.properties.old).toEqual({ order_id: 17, line_no: 3, sku: 'A-2' });
      const stored = JSON.stringify(rows);
      for (const secret of ['hunter', 'tok-', 'private', 'other', 'only hidden'])
        expect(stored).not.toContain(secret);
    });
  });
}
