/*
 * The MariaDB/MySQL change source: committed transactions read from the binary log.
 *
 * Binlog client, chosen from the npm registry (December 2026):
 * - `@vlasky/zongji` 0.9.0 (used, pinned): maintained (releases through 2026), built on mysql2 like
 *   the store. Decodes WRITE/UPDATE/DELETE_ROWS v1 and v2 with before and after images, TABLE_MAP
 *   with column names from binlog_row_metadata=FULL or information_schema.COLUMNS (cached per table
 *   id, re-read when a TABLE_MAP shows another table or column count, as after ALTER), CRC32
 *   checksums, rotation (resume pair kept right), MariaDB GTID_EVENT and GTID_LIST (announces
 *   @mariadb_slave_capability=4, resumes through @slave_connect_state), MySQL GTID events and
 *   COM_BINLOG_DUMP_GTID. Values: JSON parsed on MySQL and LONGTEXT text on MariaDB (parsed here,
 *   see TableKeyCache), DATETIME(3) with its fraction, DECIMAL as exact text, BLOB as Buffer,
 *   utf8mb4 text, BIGINT beyond 2^53 as exact text. Checked against MariaDB 10.11 by
 *   test/integration/capture-binlog.test.ts.
 * - `@powersync/mysql-zongji` 0.6.2: a MySQL 8 fork on the unmaintained `@vlasky/mysql` driver,
 *   without MariaDB GTID events, and it requires Node 24 (this package supports Node 20).
 * - mysql2's own `createBinlogStream`: the dump command and Query/Rotate/Format/Xid events only;
 *   no row events, no checksum handling, no GTIDs. It is the transport zongji builds on.
 */
import ZongJi, {
  type AnyBinlogEvent,
  type DeleteRowsEvent,
  type MariadbGtidEvent,
  type QueryEvent,
  type RotateEvent,
  type TableMapEvent,
  type UpdateRowsEvent,
  type WriteRowsEvent,
  type XidEvent,
} from '@vlasky/zongji';
import mysql from 'mysql2/promise';
import { ActivityLogError, isActivityLogError } from '../../core/errors.js';
import { binlogConnectionOptions } from './binlog-connection.js';
import type { BinlogPosition, BinlogStart } from './binlog-position.js';
import { binlogSettingsAdvice, checkBinlogSettings } from './binlog-settings.js';
import { type BinlogTableFilter, binlogTableFilter } from './binlog-table-filter.js';
import { TableKeyCache } from './binlog-table-keys.js';
import { CAPTURE_CONTEXT_TABLE } from './capture-context-table.js';

/** One column value as decoded: text, number, exact text for big numbers, Buffer, Date, JSON value. */
export type CapturedValue = unknown;
export type CapturedRow = Readonly<Record<string, CapturedValue>>;

/** One row change. Updates carry both images; an insert has no `before`, a delete no `after`. */
export interface CapturedChange {
  readonly schema: string;
  readonly table: string;
  readonly op: 'insert' | 'update' | 'delete';
  readonly before: CapturedRow | null;
  readonly after: CapturedRow | null;
  /** The table's primary key columns, in key order (empty when it has none). */
  readonly primaryKey: readonly string[];
}

/** A committed transaction of the source, handed out only once its commit was read. */
export interface CapturedTransaction {
  /** Where it ends: save it, and a reader started from it begins with the next transaction. */
  readonly position: BinlogPosition;
  /** This transaction's own GTID, when the server gives one. */
  readonly gtid?: string;
  /**
   * The server connection (thread) id that ran it: from the BEGIN event where the server writes
   * one (MySQL), else the connection id of its capture-context row, else absent.
   */
  readonly serverThreadId?: number;
  /** The commit event's time (whole seconds, as the binlog keeps it). */
  readonly committedAt: Date;
  /** The context the application wrote into `activity_log_capture_context` in this transaction. */
  readonly context?: unknown;
  readonly changes: readonly CapturedChange[];
}

export interface BinlogReaderOptions {
  /** `mysql://` or `mariadb://` URL of the application database. */
  readonly url: string;
  readonly from: BinlogStart;
  /** `table`, `schema.table`, `schema.*` or `*` (all but the server's and the library's own). */
  readonly tables: readonly string[];
  readonly exclude?: readonly string[];
  /**
   * The replication server id this reader announces; it must differ from every other replica and
   * reader of the server (a second reader with the same id kicks the first off). Default: random
   * in 2,000,000,000–4,000,000,000.
   */
  readonly serverId?: number;
  /** Read-ahead: the stream pauses while this many transactions wait for `next()`. Default 64. */
  readonly maxQueuedTransactions?: number;
}

interface OpenTransaction {
  gtid: string | undefined;
  serverThreadId: number | undefined;
  context: unknown;
  contextConnectionId: number | undefined;
  readonly changes: PendingChange[];
}

interface PendingChange {
  readonly schema: string;
  readonly table: string;
  readonly op: CapturedChange['op'];
  readonly before: CapturedRow | null;
  readonly after: CapturedRow | null;
  /** From the TABLE_MAP event itself under binlog_row_metadata=FULL. */
  readonly primaryKey: readonly string[] | undefined;
}

interface QueuedTransaction {
  readonly position: BinlogPosition;
  readonly gtid: string | undefined;
  readonly serverThreadId: number | undefined;
  readonly committedAt: Date;
  readonly context: unknown;
  readonly hasContext: boolean;
  readonly changes: readonly PendingChange[];
}

type RowsEvent = WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent;

const DEFAULT_MAX_QUEUED = 64;

function randomServerId(): number {
  return 2_000_000_000 + Math.floor(Math.random() * 2_000_000_000);
}

function isEvent<T extends AnyBinlogEvent>(event: AnyBinlogEvent, name: string): event is T {
  return event.getEventName() === name;
}

/**
 * Opens a reader of committed transactions after checking the server's binlog settings. Read it
 * with `for await` or {@link BinlogReader.next}; a transaction is handed out only after its commit
 * event, so a stream broken off inside one never yields part of it: start a new reader from the
 * last position handed out and that transaction comes again, whole.
 *
 * @example
 * const reader = await openBinlogReader({ url, from: 'now', tables: ['shop.orders'] });
 * for await (const transaction of reader) await store(transaction);
 */
export async function openBinlogReader(options: BinlogReaderOptions): Promise<BinlogReader> {
  const settings = await checkBinlogSettings(options.url);
  const connectionOptions = binlogConnectionOptions(options.url);
  const control = await mysql.createConnection(connectionOptions);
  try {
    const start = await binlogStartPoint(control, options.from);
    const reader = new BinlogReader(options, connectionOptions, control, binlogSettingsAdvice(settings));
    await reader.start(start);
    return reader;
  } catch (error) {
    await control.end().catch(() => undefined);
    throw error;
  }
}

/** Where the dump starts for `from`: the end now, the oldest file's first event, or a saved position. */
export async function binlogStartPoint(
  control: mysql.Connection,
  from: BinlogStart,
): Promise<BinlogStartPoint> {
  if (from === 'now') return { startAtEnd: true };
  if (from === 'earliest') {
    const [rows] = await control.query('SHOW BINARY LOGS');
    const first = (rows as { Log_name: string }[])[0];
    if (first === undefined) {
      throw new ActivityLogError(
        'CAPTURE_SOURCE_UNFIT',
        'the server lists no binary log files (SHOW BINARY LOGS)',
      );
    }
    return { filename: first.Log_name, position: 4 };
  }
  return from.gtid !== undefined ? { gtidSet: from.gtid } : { filename: from.file, position: from.offset };
}

export interface BinlogStartPoint {
  readonly filename?: string;
  readonly position?: number;
  readonly gtidSet?: string;
  readonly startAtEnd?: boolean;
}

/** A stream of committed transactions from one MariaDB/MySQL server's binary log. */
export class BinlogReader implements AsyncIterable<CapturedTransaction> {
  readonly serverId: number;
  /** What would serve capture better on this server (see `binlogSettingsAdvice`), or null. */
  readonly settingsAdvice: string | null;
  readonly #zongji: ZongJi;
  readonly #control: mysql.Connection;
  readonly #filter: BinlogTableFilter;
  readonly #maxQueued: number;
  #keys: TableKeyCache | undefined;
  #file = '';
  #open: OpenTransaction | undefined;
  readonly #queue: QueuedTransaction[] = [];
  #waiter: { resolve: () => void } | undefined;
  #failure: ActivityLogError | undefined;
  #closed = false;
  #paused = false;
  #position: BinlogPosition | undefined;
  /** Primary keys the TABLE_MAP events carried (binlog_row_metadata=FULL), by table id. */
  readonly #mappedKeys = new Map<number, readonly string[]>();

  /** Use {@link openBinlogReader}. */
  constructor(
    options: BinlogReaderOptions,
    connection: mysql.ConnectionOptions,
    control: mysql.Connection,
    settingsAdvice: string | null,
  ) {
    this.serverId = options.serverId ?? randomServerId();
    this.settingsAdvice = settingsAdvice;
    this.#control = control;
    this.#filter = binlogTableFilter(options.tables, options.exclude ?? [], connection.database);
    this.#maxQueued = options.maxQueuedTransactions ?? DEFAULT_MAX_QUEUED;
    this.#zongji = new ZongJi(connection);
    this.#zongji.on('binlog', (event) => this.#onEvent(event));
    this.#zongji.on('error', (error) => this.#fail(error));
    control.on('error', (error) => this.#fail(error));
  }

  /**
   * The end of the last transaction handed out by `next()` (or passed over because none of its
   * changes were asked for); undefined before the first. Saving it and starting from it later
   * yields exactly the transactions after it.
   */
  get position(): BinlogPosition | undefined {
    return this.#position;
  }

  /** The server connection id of the binlog stream (what `SHOW PROCESSLIST` lists as Binlog Dump). */
  get streamConnectionId(): number | undefined {
    return this.#zongji.connection?.threadId ?? undefined;
  }

  /** Whether the stream is paused because `maxQueuedTransactions` wait for `next()`. */
  get streamPaused(): boolean {
    return this.#paused;
  }

  /** Changes of the transaction being read that wait for its commit. */
  get uncommittedChanges(): number {
    return this.#open?.changes.length ?? 0;
  }

  /** @internal started by {@link openBinlogReader} */
  start(from: BinlogStartPoint): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => {
        this.#zongji.off('ready', onReady);
        reject(streamFailed(error));
      };
      const onReady = () => {
        this.#zongji.off('error', onError);
        this.#keys = new TableKeyCache(this.#control, this.#zongji.isMariaDb);
        this.#zongji.connection?.on('end', () => this.#fail(new Error('the server ended the binlog stream')));
        resolve();
      };
      this.#zongji.once('ready', onReady);
      this.#zongji.once('error', onError);
      this.#zongji.start({
        serverId: this.serverId,
        ...from,
        ...this.#filter.streamFilter,
        includeEvents: [
          'rotate',
          'mariadbgtid',
          'gtid',
          'query',
          'tablemap',
          'writerows',
          'updaterows',
          'deleterows',
          'xid',
          'xaprepare',
        ],
      });
    });
  }

  /**
   * The next committed transaction with changes of the chosen tables, or null once the reader is
   * closed. Rejects with `CAPTURE_STREAM_FAILED` when the stream broke off, after every
   * transaction committed before the break was handed out.
   */
  async next(): Promise<CapturedTransaction | null> {
    for (;;) {
      const queued = this.#queue.shift();
      if (queued !== undefined) {
        this.#resumeIfDrained();
        let transaction: CapturedTransaction | null;
        try {
          transaction = await this.#complete(queued);
        } catch (error) {
          // The primary key lookup failed: the transaction stays first in line and is not handed
          // out, so neither this reader nor one started from `position` passes over it.
          this.#queue.unshift(queued);
          this.#fail(error as Error);
          throw this.#failure ?? streamFailed(error as Error);
        }
        this.#position = queued.position;
        if (transaction !== null) return transaction;
        continue;
      }
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#closed) return null;
      await new Promise<void>((resolve) => {
        this.#waiter = { resolve };
      });
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<CapturedTransaction> {
    for (;;) {
      const transaction = await this.next();
      if (transaction === null) return;
      yield transaction;
    }
  }

  /**
   * Stops the stream and closes its connections, also after a failure; transactions not yet
   * handed out are dropped (start again from `position`).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#open = undefined;
    if (this.#failure === undefined) {
      await new Promise<void>((resolve) => {
        this.#zongji.once('stopped', () => resolve());
        this.#zongji.stop();
      });
    }
    await this.#control.end().catch(() => undefined);
    this.#wake();
  }

  #onEvent(event: AnyBinlogEvent): void {
    if (this.#closed || this.#failure !== undefined) return;
    if (isEvent<RotateEvent>(event, 'rotate')) {
      this.#file = event.binlogName;
    } else if (isEvent<MariadbGtidEvent>(event, 'mariadbgtid')) {
      this.#open = event.standalone ? undefined : this.#begin(event.gtid, undefined);
    } else if (event.getEventName() === 'gtid') {
      this.#open = this.#begin(event.gtid, undefined);
    } else if (isEvent<QueryEvent>(event, 'query')) {
      this.#onQuery(event);
    } else if (isEvent<TableMapEvent>(event, 'tablemap')) {
      const { primaryKey, columnNames } = event;
      if (primaryKey !== undefined && columnNames !== undefined) {
        this.#mappedKeys.set(
          event.tableId,
          primaryKey.map((index) => columnNames[index]!),
        );
      } else {
        this.#mappedKeys.delete(event.tableId);
      }
    } else if (
      isEvent<WriteRowsEvent>(event, 'writerows') ||
      isEvent<UpdateRowsEvent>(event, 'updaterows') ||
      isEvent<DeleteRowsEvent>(event, 'deleterows')
    ) {
      this.#onRows(event);
    } else if (isEvent<XidEvent>(event, 'xid')) {
      this.#commit(event);
    } else if (event.getEventName() === 'xaprepare') {
      // An XA transaction is binlogged at PREPARE and committed later by its own XA COMMIT
      // group; its changes are not handed out (see README: limits).
      this.#open = undefined;
    }
  }

  #begin(gtid: string | undefined, serverThreadId: number | undefined): OpenTransaction {
    return { gtid, serverThreadId, context: undefined, contextConnectionId: undefined, changes: [] };
  }

  #onQuery(event: QueryEvent): void {
    const statement = event.query.trim().toUpperCase();
    if (statement === 'BEGIN') {
      // MySQL (and MariaDB to clients without GTID capability) open each transaction with BEGIN,
      // which carries the session's thread id; MariaDB's GTID event opened it already.
      const gtid = this.#open?.gtid ?? event.gtid;
      this.#open = this.#begin(gtid, event.slaveProxyId);
    } else if (statement === 'COMMIT') {
      this.#commit(event);
    } else if (statement === 'ROLLBACK' || statement.startsWith('XA ')) {
      this.#open = undefined;
    } else if (
      statement !== '' &&
      !statement.startsWith('SAVEPOINT') &&
      !statement.startsWith('ROLLBACK TO')
    ) {
      // DDL: a changed primary key or column set must be read again.
      this.#keys?.forgetAll();
    }
  }

  #onRows(event: RowsEvent): void {
    const table = event.tableMap[event.tableId];
    if (table === undefined) {
      // Never pass rows over: a reader started again reads the table map afresh.
      this.#fail(new Error(`row event for table id ${event.tableId} arrived without its table map`));
      return;
    }
    const schema = table.parentSchema;
    const name = table.tableName;
    this.#open ??= this.#begin(event.gtid, undefined);
    const open = this.#open;
    if (name === CAPTURE_CONTEXT_TABLE) {
      // A deleted tag row (the table being emptied) tags nothing.
      if (event.getEventName() === 'deleterows') return;
      for (const row of event.rows) {
        const image = 'after' in row && 'before' in row ? (row.after as CapturedRow) : (row as CapturedRow);
        open.context = parseContext(image.context);
        const id = Number(image.connection_id);
        open.contextConnectionId = Number.isSafeInteger(id) ? id : undefined;
      }
      return;
    }
    if (!this.#filter.includes(schema, name)) return;
    const primaryKey = this.#mappedKeys.get(event.tableId);
    if (isEvent<UpdateRowsEvent>(event, 'updaterows')) {
      for (const row of event.rows) {
        open.changes.push({
          schema,
          table: name,
          op: 'update',
          before: row.before,
          after: row.after,
          primaryKey,
        });
      }
    } else {
      const op = event.getEventName() === 'writerows' ? 'insert' : 'delete';
      for (const row of event.rows) {
        open.changes.push({
          schema,
          table: name,
          op,
          before: op === 'delete' ? row : null,
          after: op === 'insert' ? row : null,
          primaryKey,
        });
      }
    }
  }

  #commit(event: XidEvent | QueryEvent): void {
    const open = this.#open;
    this.#open = undefined;
    const offset = event.nextPosition || Number(this.#zongji.options.position);
    const gtidSet = this.#zongji.gtidSet;
    this.#queue.push({
      position:
        gtidSet === undefined || gtidSet === ''
          ? { file: this.#file, offset }
          : { file: this.#file, offset, gtid: gtidSet },
      gtid: open?.gtid ?? event.gtid,
      serverThreadId: open?.serverThreadId ?? open?.contextConnectionId,
      committedAt: new Date(event.timestamp),
      context: open?.context,
      hasContext: open?.context !== undefined,
      changes: open?.changes ?? [],
    });
    if (this.#queue.length >= this.#maxQueued && !this.#paused) {
      this.#paused = true;
      this.#zongji.connection?.pause();
    }
    this.#wake();
  }

  #resumeIfDrained(): void {
    if (this.#paused && this.#queue.length <= this.#maxQueued / 2) {
      this.#paused = false;
      this.#zongji.connection?.resume();
    }
  }

  async #complete(queued: QueuedTransaction): Promise<CapturedTransaction | null> {
    if (queued.changes.length === 0 && !queued.hasContext) return null;
    const keys = this.#keys!;
    const changes: CapturedChange[] = [];
    let last:
      | { schema: string; table: string; keys: Awaited<ReturnType<TableKeyCache['keysOf']>> }
      | undefined;
    for (const change of queued.changes) {
      if (last === undefined || last.schema !== change.schema || last.table !== change.table) {
        last = {
          schema: change.schema,
          table: change.table,
          keys: await keys.keysOf(change.schema, change.table),
        };
      }
      const { primaryKey, jsonColumns } = last.keys;
      changes.push(
        Object.freeze({
          schema: change.schema,
          table: change.table,
          op: change.op,
          before: jsonColumns.size === 0 ? change.before : withJson(change.before, jsonColumns),
          after: jsonColumns.size === 0 ? change.after : withJson(change.after, jsonColumns),
          primaryKey: change.primaryKey ?? primaryKey,
        }),
      );
    }
    return Object.freeze({
      position: queued.position,
      ...(queued.gtid === undefined ? {} : { gtid: queued.gtid }),
      ...(queued.serverThreadId === undefined ? {} : { serverThreadId: queued.serverThreadId }),
      committedAt: queued.committedAt,
      ...(queued.hasContext ? { context: queued.context } : {}),
      changes: Object.freeze(changes),
    });
  }

  #fail(error: Error): void {
    if (this.#closed || this.#failure !== undefined) return;
    this.#failure = streamFailed(error);
    this.#open = undefined;
    this.#zongji.stop();
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve();
  }
}

function streamFailed(error: Error): ActivityLogError {
  if (isActivityLogError(error)) return error;
  return new ActivityLogError(
    'CAPTURE_STREAM_FAILED',
    `the binlog stream broke off: ${error.message}; start again from the last position handed out`,
    { cause: error },
  );
}

/** The context column: JSON text on MariaDB (LONGTEXT), already parsed on MySQL. */
function parseContext(value: CapturedValue): unknown {
  if (typeof value !== 'string') return Buffer.isBuffer(value) ? parseContext(value.toString('utf8')) : value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function withJson(row: CapturedRow | null, jsonColumns: ReadonlySet<string>): CapturedRow | null {
  if (row === null) return null;
  const parsed: Record<string, CapturedValue> = { ...row };
  for (const column of jsonColumns) {
    const value = parsed[column];
    if (typeof value === 'string') {
      try {
        parsed[column] = JSON.parse(value);
      } catch {
        // A value the check let through that is not JSON stays the text it is.
      }
    }
  }
  return parsed;
}
