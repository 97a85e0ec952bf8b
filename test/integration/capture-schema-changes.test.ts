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
  describe.skipIf(!available)(`change capture from ${name}: TRUNCATE and ALTER TABLE`, () => {
    it('records a TRUNCATE as one truncated activity of the table and goes on capturing', async ({
      defer,
    }) => {
      const s = await captureScene(dialect, defer);
      const t = s.quote(s.table);
      const activityLog = createActivityLog({ env: s.env });
      defer(() => activityLog.close());
      const capture = startCapture(s.config);
      await insertRange(s, 1, 3);
      await runWithContext({ causer: { type: 'User', id: '7' } }, async () => {
        await s.sql('BEGIN');
        await activityLog.tagTransaction(s.executor as SqlExecutor);
        await s.sql(`TRUNCATE TABLE ${t}`);
        await s.sql('COMMIT');
      });
      await insertRange(s, 1, 1, 'again');
      await waitForCount(s, 5);
      await capture.stop();

      const rows = inStreamOrder(await activities(s));
      expect(rows.map((row) => [row.event, row.subject_id])).toEqual([
        ['created', '1'],
        ['created', '2'],
        ['created', '3'],
        ['truncated', null],
        ['created', '1'],
      ]);
      const truncated = rows[3]!;
      expect(truncated.description).toBe('truncated Order');
      expect(truncated.subject_type).toBeNull();
      expect(truncated.properties.capture!.table).toBe(s.table);
      expect(truncated.properties).not.toHaveProperty('attributes');
      // PostgreSQL truncates inside the tagged transaction; MariaDB commits before a TRUNCATE,
      // so the tag is not in its transaction.
      expect(truncated.causer_id).toBe(dialect === 'postgres' ? '7' : null);
      expect(rows[4]!.properties.attributes!.status).toBe('again');
    });

    it('names the columns of rows written before an ALTER TABLE … ADD COLUMN as they were and after it with the new column, whether capture reads them later or as they come', async ({
      defer,
    }) => {
      const s = await captureScene(dialect, defer);
      const t = s.quote(s.table);
      let capture = startCapture(s.config);
      await insertRange(s, 1, 1);
      await waitForCount(s, 1);
      await capture.stop();

      // Capture is behind: the rows before and after the ALTER are read after it ran.
      await insertRange(s, 2, 2);
      await s.sql(`ALTER TABLE ${t} ADD COLUMN color VARCHAR(10) DEFAULT 'red'`);
      await s.sql(`INSERT INTO ${t} (id, status, color) VALUES (3, 'new', 'blue')`);
      await s.sql(`UPDATE ${t} SET status = 'paid' WHERE id = 2`);
      capture = startCapture(s.config);
      await waitForCount(s, 4);
      // And while capture is reading: the table it already knows changes under it.
      await s.sql(`ALTER TABLE ${t} ADD COLUMN size INTEGER`);
      await s.sql(`INSERT INTO ${t} (id, status, size) VALUES (4, 'new', 9)`);
      await s.sql(`UPDATE ${t} SET size = 1 WHERE id = 3`);
      await waitForCount(s, 6);
      await capture.stop();

      const rows = inStreamOrder(await activities(s));
      expect(rows.map((row) => [row.event, row.subject_id])).toEqual([
        ['created', '1'],
        ['created', '2'],
        ['created', '3'],
        ['updated', '2'],
        ['created', '4'],
        ['updated', '3'],
      ]);
      expect(rows[4]!.properties.attributes).toEqual({
        id: 4,
        status: 'new',
        total: null,
        color: 'red',
        size: 9,
      });
      expect(rows[5]!.properties.attributes).toEqual({ size: 1 });
      expect(rows[5]!.properties.old).toEqual({ size: null });
      expect(rows[1]!.properties.attributes).toEqual({ id: 2, status: 'new', total: null });
      expect(rows[2]!.properties.attributes).toEqual({ id: 3, status: 'new', total: null, color: 'blue' });
      expect(rows[3]!.properties.attributes).toEqual({ status: 'paid' });
      expect(rows[3]!.properties.old).toEqual({ status: 'new' });
    });

    if (dialect === 'mariadb') {
      it('stops with one line naming binlog_row_metadata rather than mislabel rows written before a column was dropped', async ({
        defer,
      }) => {
        const s = await captureScene(dialect, defer);
        const t = s.quote(s.table);
        let capture = startCapture(s.config);
        await insertRange(s, 1, 1);
        await waitForCount(s, 1);
        await capture.stop();
        const [metadata] = await s.sql('SELECT @@binlog_row_metadata AS value');
        await insertRange(s, 2, 2);
        await s.sql(`ALTER TABLE ${t} DROP COLUMN total`);
        await insertRange(s, 3, 3);
        capture = startCapture(s.config);
        if (String(metadata!.value).toUpperCase() === 'FULL') {
          // Each event names its own columns: both rows are read as they were written.
          await waitForCount(s, 3);
          await capture.stop();
          return;
        }
        await expect(capture.running).rejects.toThrow(/schema changed.*binlog_row_metadata=FULL/);
        expect(capture.warnings.some((line) => line.includes('binlog_row_metadata is'))).toBe(true);
      });
    }
  });
}
