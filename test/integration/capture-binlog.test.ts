import mysql from 'mysql2/promise';
import { describe, expect } from 'vitest';
import {
  type BinlogPosition,
  formatBinlogPosition,
  parseBinlogPosition,
} from '../../src/capture/binlog/binlog-position.js';
import { binlogSettingsAdvice, checkBinlogSettings } from '../../src/capture/binlog/binlog-settings.js';
import {
  type BinlogReader,
  type BinlogReaderOptions,
  binlogStartPoint,
  type CapturedTransaction,
  openBinlogReader,
} from '../../src/capture/binlog/binlog-source.js';
import {
  CAPTURE_CONTEXT_UPSERT_SQL,
  captureContextTableSql,
} from '../../src/capture/binlog/capture-context-table.js';
import { isActivityLogError } from '../../src/core/errors.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { MARIADB, serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { test } from '../helpers/test-context.js';

/**
 * The MariaDB/MySQL change source against the real MariaDB: every test writes into a database of
 * its own and reads the shared binary log through a reader with its own replication server id,
 * so readers of parallel tests never push each other off.
 */

const SERVER_URL = `mysql://root@${MARIADB.host}:${MARIADB.port}`;
const mariadbUp = (await serviceAvailable(MARIADB)) && (await binlogReady());

/** Whether the server keeps a row binlog; without one the suite is skipped with one line (fails under CI). */
async function binlogReady(): Promise<boolean> {
  try {
    await checkBinlogSettings(`${SERVER_URL}/test`);
    return true;
  } catch (error) {
    const message = `MariaDB at ${MARIADB.host}:${MARIADB.port} cannot serve capture: ${(error as Error).message}`;
    if (process.env.CI === 'true') throw new Error(`${message} (required under CI=true)`);
    console.warn(`skipping binlog capture tests: ${message}`);
    return false;
  }
}
const WAIT_MS = 20_000;

type Defer = (cleanup: () => unknown) => void;

interface Scratch {
  readonly url: string;
  readonly schema: string;
  readonly db: mysql.Connection;
}

async function scratchDatabase(defer: Defer): Promise<Scratch> {
  const schema = `cap_${uniqueSuffix()}`;
  const db = await mysql.createConnection({
    host: MARIADB.host,
    port: MARIADB.port,
    user: 'root',
    multipleStatements: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  await db.query(`CREATE DATABASE \`${schema}\` CHARACTER SET utf8mb4`);
  await db.query(`USE \`${schema}\``);
  defer(async () => {
    await db.query(`DROP DATABASE IF EXISTS \`${schema}\``);
    await db.end();
  });
  return { url: `${SERVER_URL}/${schema}`, schema, db };
}

async function reader(
  defer: Defer,
  url: string,
  options: Partial<BinlogReaderOptions> = {},
): Promise<BinlogReader> {
  const opened = await openBinlogReader({ url, from: 'now', tables: ['*'], ...options });
  defer(() => opened.close());
  return opened;
}

/** The next `count` transactions, failing the test when they do not come within the wait. */
async function take(source: BinlogReader, count: number): Promise<CapturedTransaction[]> {
  const taken: CapturedTransaction[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${taken.length} of ${count} transactions within ${WAIT_MS} ms`)),
      WAIT_MS,
    );
  });
  try {
    while (taken.length < count) {
      const next = await Promise.race([source.next(), timeout]);
      if (next === null) throw new Error('reader closed');
      taken.push(next);
    }
  } finally {
    clearTimeout(timer);
  }
  return taken;
}

/** Markers written by `mark()`, read back as the `n` column of their insert. */
function markers(transactions: readonly CapturedTransaction[]): unknown[] {
  return transactions.flatMap((transaction) =>
    transaction.changes.filter((change) => change.table === 'marks').map((change) => change.after?.n),
  );
}

async function mark(db: mysql.Connection, n: number): Promise<void> {
  await db.query('INSERT INTO marks (n) VALUES (?)', [n]);
}

describe.runIf(mariadbUp)('MariaDB binlog source', () => {
  test('finds the server ready for capture (log_bin, ROW, FULL)', async () => {
    const settings = await checkBinlogSettings(`${SERVER_URL}/test`);
    expect(settings).toMatchObject({ log_bin: 'ON', binlog_format: 'ROW', binlog_row_image: 'FULL' });
    expect(binlogSettingsAdvice(settings) === null).toBe(settings.binlog_row_metadata === 'FULL');
  });

  test('hands out inserts, updates and deletes, and a bulk UPDATE of 1,000 rows as 1,000 changes', async ({
    defer,
  }) => {
    const { db, url, schema } = await scratchDatabase(defer);
    await db.query('CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL)');
    const source = await reader(defer, url);
    await db.query("INSERT INTO items VALUES (1, 'one', 1)");
    await db.query("UPDATE items SET name = 'uno' WHERE id = 1");
    await db.query('DELETE FROM items WHERE id = 1');
    const rows = Array.from({ length: 1000 }, (_, i) => `(${i + 10}, 'n${i}', ${i})`).join(',');
    await db.query(`INSERT INTO items VALUES ${rows}`);
    await db.query('UPDATE items SET qty = qty + 1000');

    const [insert, update, remove, bulkInsert, bulkUpdate] = await take(source, 5);
    expect(insert!.changes).toEqual([
      {
        schema,
        table: 'items',
        op: 'insert',
        before: null,
        after: { id: 1, name: 'one', qty: 1 },
        primaryKey: ['id'],
      },
    ]);
    expect(update!.changes).toEqual([
      {
        schema,
        table: 'items',
        op: 'update',
        before: { id: 1, name: 'one', qty: 1 },
        after: { id: 1, name: 'uno', qty: 1 },
        primaryKey: ['id'],
      },
    ]);
    expect(remove!.changes).toEqual([
      {
        schema,
        table: 'items',
        op: 'delete',
        before: { id: 1, name: 'uno', qty: 1 },
        after: null,
        primaryKey: ['id'],
      },
    ]);
    expect(bulkInsert!.changes).toHaveLength(1000);
    expect(bulkUpdate!.changes).toHaveLength(1000);
    for (const [i, change] of bulkUpdate!.changes.entries()) {
      expect(change.op).toBe('update');
      expect(change.before).toEqual({ id: i + 10, name: `n${i}`, qty: i });
      expect(change.after).toEqual({ id: i + 10, name: `n${i}`, qty: i + 1000 });
    }
    expect(bulkUpdate!.gtid).toMatch(/^\d+-\d+-\d+$/);
    expect(bulkUpdate!.position.offset).toBeGreaterThan(bulkInsert!.position.offset);
  });

  test('starts --from=earliest at the oldest binlog file and from a saved position by its GTID', async ({
    defer,
  }) => {
    const db = await mysql.createConnection(SERVER_URL);
    defer(() => db.end());
    const [logs] = (await db.query('SHOW BINARY LOGS')) as unknown as [{ Log_name: string }[]];
    expect(await binlogStartPoint(db, 'earliest')).toEqual({ filename: logs[0]!.Log_name, position: 4 });
    expect(await binlogStartPoint(db, 'now')).toEqual({ startAtEnd: true });
    expect(await binlogStartPoint(db, { file: 'mysql-bin.000009', offset: 400, gtid: '0-1-5' })).toEqual({
      gtidSet: '0-1-5',
    });
    expect(await binlogStartPoint(db, { file: 'mysql-bin.000009', offset: 400 })).toEqual({
      filename: 'mysql-bin.000009',
      position: 400,
    });
  });

  test('pauses the stream while handed-out transactions wait, losing and doubling none', async ({
    defer,
  }) => {
    const { db, url } = await scratchDatabase(defer);
    await db.query('CREATE TABLE marks (n INT PRIMARY KEY)');
    const source = await reader(defer, url, { maxQueuedTransactions: 2 });
    for (let n = 1; n <= 30; n++) await mark(db, n);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(source.streamPaused).toBe(true);
    expect(markers(await take(source, 30))).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    await mark(db, 31);
    expect(markers(await take(source, 1))).toEqual([31]);
  });

  test('hands out a multi-statement transaction as one and a rolled-back one not at all', async ({
    defer,
  }) => {
    const { db, url } = await scratchDatabase(defer);
    await db.query('CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL) ENGINE=InnoDB');
    await db.query('CREATE TABLE marks (n INT PRIMARY KEY)');
    const source = await reader(defer, url);
    await db.query('BEGIN');
    await db.query('INSERT INTO items VALUES (1, 1), (2, 2)');
    await db.query('UPDATE items SET qty = 20 WHERE id = 2');
    await db.query('DELETE FROM items WHERE id = 1');
    await mark(db, 1);
    await db.query('COMMIT');
    await db.query('BEGIN');
    await db.query('INSERT INTO items VALUES (3, 3)');
    await db.query('UPDATE items SET qty = 0');
    await db.query('ROLLBACK');
    await mark(db, 2);

    const [together, after] = await take(source, 2);
    expect(together!.changes.map((change) => `${change.table} ${change.op}`)).toEqual([
      'items insert',
      'items insert',
      'items update',
      'items delete',
      'marks insert',
    ]);
    expect(markers([after!])).toEqual([2]);
    expect(after!.changes).toHaveLength(1);
  });

  for (const kind of ['GTID', 'file and offset'] as const) {
    test(`resumes from a saved ${kind} position with exactly the transactions after it`, async ({
      defer,
    }) => {
      const { db, url } = await scratchDatabase(defer);
      await db.query('CREATE TABLE marks (n INT PRIMARY KEY)');
      const first = await reader(defer, url);
      for (let n = 1; n <= 5; n++) await mark(db, n);
      expect(markers(await take(first, 2))).toEqual([1, 2]);
      const saved = parseBinlogPosition(formatBinlogPosition(first.position!));
      expect(saved.gtid).toMatch(/^\d+-\d+-\d+/);
      await first.close();
      for (let n = 6; n <= 7; n++) await mark(db, n);

      const from: BinlogPosition = kind === 'GTID' ? saved : { file: saved.file, offset: saved.offset };
      const resumed = await reader(defer, url, { from });
      const again = await take(resumed, 5);
      expect(markers(again)).toEqual([3, 4, 5, 6, 7]);
      await mark(db, 8);
      expect(markers(await take(resumed, 1))).toEqual([8]);
    });
  }

  test('a stream killed inside a large transaction, resumed from the last position, yields it once and whole', async ({
    defer,
  }) => {
    const { db, url, schema } = await scratchDatabase(defer);
    await db.query('CREATE TABLE marks (n INT PRIMARY KEY)');
    await db.query('CREATE TABLE bulk (id INT PRIMARY KEY, payload VARCHAR(200) NOT NULL)');
    const proxy = await FaultProxy.start({ host: MARIADB.host, port: MARIADB.port });
    defer(() => proxy.close());
    const first = await reader(defer, `mysql://root@127.0.0.1:${proxy.port}/${schema}`);
    await mark(db, 1);
    expect(markers(await take(first, 1))).toEqual([1]);
    const pending = first.next();
    pending.catch(() => undefined);
    // Watches the reader between socket reads and resets its connections once part of the big
    // transaction has arrived and its commit has not.
    const killed = (async () => {
      const deadline = Date.now() + WAIT_MS;
      while (first.uncommittedChanges === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      const seen = first.uncommittedChanges;
      proxy.cutConnections();
      return seen;
    })();
    const rows = 20_000;
    await db.query('BEGIN');
    for (let start = 0; start < rows; start += 5000) {
      const values = Array.from({ length: 5000 }, (_, i) => `(${start + i}, REPEAT('x', 150))`).join(',');
      await db.query(`INSERT INTO bulk VALUES ${values}`);
    }
    await db.query('COMMIT');
    await mark(db, 2);
    const seenAtKill = await killed;
    expect(seenAtKill).toBeGreaterThan(0);
    expect(seenAtKill).toBeLessThan(rows);
    const failure = await pending.then(
      () => null,
      (error: unknown) => error,
    );
    expect(isActivityLogError(failure, 'CAPTURE_STREAM_FAILED'), String((failure as Error).stack)).toBe(true);

    const resumed = await reader(defer, url, { from: first.position! });
    const [big, after] = await take(resumed, 2);
    expect(big!.changes).toHaveLength(rows);
    expect(new Set(big!.changes.map((change) => change.after?.id)).size).toBe(rows);
    expect(big!.changes.every((change) => change.table === 'bulk' && change.op === 'insert')).toBe(true);
    expect(markers([after!])).toEqual([2]);
  });

  test('follows a rotation of the binary log (FLUSH BINARY LOGS mid-stream)', async ({ defer }) => {
    const { db, url } = await scratchDatabase(defer);
    await db.query('CREATE TABLE marks (n INT PRIMARY KEY)');
    const source = await reader(defer, url);
    await mark(db, 1);
    await db.query('FLUSH BINARY LOGS');
    await mark(db, 2);
    const [before, after] = await take(source, 2);
    expect(markers([before!, after!])).toEqual([1, 2]);
    expect(after!.position.file).not.toBe(before!.position.file);

    await mark(db, 3);
    const resumed = await reader(defer, url, {
      from: { file: after!.position.file, offset: after!.position.offset },
    });
    expect(markers(await take(resumed, 1))).toEqual([3]);
  });

  test('carries the context upserted into activity_log_capture_context as the transaction context', async ({
    defer,
  }) => {
    const { db, url } = await scratchDatabase(defer);
    await db.query(captureContextTableSql('mariadb'));
    await db.query('CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL)');
    await db.query('INSERT INTO items VALUES (1, 1), (2, 2)');
    const [[{ id: connectionId }]] = (await db.query('SELECT CONNECTION_ID() AS id')) as unknown as [
      [{ id: number }],
    ];
    const source = await reader(defer, url);
    const context = { causer: { type: 'User', id: '42' }, ip: '203.0.113.7', url: '/orders', quote: '"}\')' };
    for (let round = 0; round < 2; round++) {
      await db.query('BEGIN');
      await db.query(CAPTURE_CONTEXT_UPSERT_SQL, [JSON.stringify(context)]);
      await db.query('UPDATE items SET qty = qty + 1');
      await db.query('COMMIT');
    }
    await db.query('UPDATE items SET qty = 0 WHERE id = 1');

    const [tagged, taggedAgain, untagged] = await take(source, 3);
    for (const transaction of [tagged!, taggedAgain!]) {
      expect(transaction.context).toEqual(context);
      expect(transaction.serverThreadId).toBe(Number(connectionId));
      expect(transaction.changes.map((change) => change.table)).toEqual(['items', 'items']);
    }
    expect(untagged!.context).toBeUndefined();
    expect(untagged!.changes).toHaveLength(1);
  });

  test('two interleaved tagged transactions each carry their own context', async ({ defer }) => {
    const { db, url, schema } = await scratchDatabase(defer);
    await db.query(captureContextTableSql('mariadb'));
    await db.query('CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL)');
    await db.query('INSERT INTO items VALUES (1, 0), (2, 0)');
    const alice = await mysql.createConnection(`${SERVER_URL}/${schema}`);
    const bob = await mysql.createConnection(`${SERVER_URL}/${schema}`);
    defer(() => alice.end());
    defer(() => bob.end());
    const source = await reader(defer, url);
    await alice.query('BEGIN');
    await bob.query('BEGIN');
    await alice.query(CAPTURE_CONTEXT_UPSERT_SQL, [JSON.stringify({ causer: 'alice' })]);
    await bob.query(CAPTURE_CONTEXT_UPSERT_SQL, [JSON.stringify({ causer: 'bob' })]);
    await bob.query('UPDATE items SET qty = 2 WHERE id = 2');
    await alice.query('UPDATE items SET qty = 1 WHERE id = 1');
    await bob.query('COMMIT');
    await alice.query('COMMIT');

    const [first, second] = await take(source, 2);
    expect({ context: first!.context, rows: first!.changes.map((change) => change.after) }).toEqual({
      context: { causer: 'bob' },
      rows: [{ id: 2, qty: 2 }],
    });
    expect({ context: second!.context, rows: second!.changes.map((change) => change.after) }).toEqual({
      context: { causer: 'alice' },
      rows: [{ id: 1, qty: 1 }],
    });
    expect(first!.serverThreadId).toBe(bob.threadId);
    expect(second!.serverThreadId).toBe(alice.threadId);
  });

  test('reads column names and the primary key again after ALTER TABLE', async ({ defer }) => {
    const { db, url } = await scratchDatabase(defer);
    await db.query('CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, code INT NOT NULL)');
    const source = await reader(defer, url);
    await db.query("INSERT INTO items VALUES (1, 'one', 10)");
    const [before] = await take(source, 1);
    expect(before!.changes[0]).toMatchObject({ after: { id: 1, name: 'one', code: 10 }, primaryKey: ['id'] });

    await db.query('ALTER TABLE items RENAME COLUMN name TO title, ADD COLUMN note VARCHAR(20) NULL');
    await db.query("INSERT INTO items VALUES (2, 'two', 20, 'new')");
    const [renamed] = await take(source, 1);
    expect(renamed!.changes[0]).toMatchObject({
      after: { id: 2, title: 'two', code: 20, note: 'new' },
      primaryKey: ['id'],
    });

    await db.query('ALTER TABLE items DROP PRIMARY KEY, ADD PRIMARY KEY (code, id)');
    await db.query("INSERT INTO items VALUES (3, 'three', 30, NULL)");
    const [rekeyed] = await take(source, 1);
    expect(rekeyed!.changes[0]).toMatchObject({
      after: { id: 3, title: 'three' },
      primaryKey: ['code', 'id'],
    });
  });

  test('a reader behind an ALTER TABLE stops at a dropped column, naming the table, and hands out none of its rows', async ({
    defer,
  }) => {
    const { db, url } = await scratchDatabase(defer);
    await db.query('CREATE TABLE marks (n INT PRIMARY KEY)');
    await db.query('CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL, note VARCHAR(20) NULL)');
    const first = await reader(defer, url);
    await mark(db, 1);
    await take(first, 1);
    const saved = first.position!;
    await first.close();
    await db.query("INSERT INTO items VALUES (1, 1, 'old')");
    await db.query('ALTER TABLE items DROP COLUMN note');
    await db.query('INSERT INTO items VALUES (2, 2)');

    const behind = await reader(defer, url, { from: saved });
    const failure = await behind.next().then(
      (transaction) => transaction,
      (error: unknown) => error,
    );
    expect(isActivityLogError(failure, 'CAPTURE_STREAM_FAILED'), JSON.stringify(failure)).toBe(true);
    expect((failure as Error).message).toContain('items');
    expect(behind.position).toBeUndefined();

    const afterDrop = await reader(defer, url, { from: saved, tables: ['marks'] });
    await mark(db, 2);
    expect(markers(await take(afterDrop, 1))).toEqual([2]);
  });

  test('decodes JSON, DATETIME(3), DECIMAL, utf8mb4 text, NULL, BLOB and BIGINT beyond 2^53', async ({
    defer,
  }) => {
    const { db, url } = await scratchDatabase(defer);
    await db.query(
      `CREATE TABLE typed (
        region CHAR(2) NOT NULL, id BIGINT NOT NULL,
        doc JSON, at DATETIME(3), price DECIMAL(20,4), label VARCHAR(40) CHARACTER SET utf8mb4,
        nothing INT NULL, bytes BLOB, stamp TIMESTAMP(3) NULL,
        PRIMARY KEY (region, id))`,
    );
    const source = await reader(defer, url);
    await db.query(
      `INSERT INTO typed VALUES ('eu', 9007199254740993, '{"a": [1, "two", null], "b": {"c": true}}',
        '2026-12-03 06:30:01.123', 12345678901234.5678, 'olé 😀 ✓', NULL, x'00ff10',
        FROM_UNIXTIME(1796279401.250))`,
    );
    const [transaction] = await take(source, 1);
    const [change] = transaction!.changes;
    expect(change!.primaryKey).toEqual(['region', 'id']);
    expect(change!.after).toEqual({
      region: 'eu',
      id: '9007199254740993',
      doc: { a: [1, 'two', null], b: { c: true } },
      at: '2026-12-03 06:30:01.123',
      price: '12345678901234.5678',
      label: 'olé 😀 ✓',
      nothing: null,
      bytes: Buffer.from([0x00, 0xff, 0x10]),
      stamp: new Date(1796279401250),
    });
  });
});
