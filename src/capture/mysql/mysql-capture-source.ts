import ZongJi from '@vlasky/zongji';
import mysql from 'mysql2/promise';
import { ActivityLogError } from '../../core/errors.js';
import {
  CAPTURE_CONTEXT_TABLE,
  decodeTransactionTag,
  type TransactionTag,
} from '../../core/transaction-tag.js';
import type { CaptureSource, SourceLag } from '../capture-source.js';
import { type CapturedTransaction, type RowChange, type RowImage, truncationOf } from '../row-change.js';
import { MysqlConnectionUsers } from './mysql-connection-users.js';

/*
 * @vlasky/zongji (0.9) reads the binary log over mysql2 and decodes MariaDB 10.11's and MySQL 8's
 * row events, checksums and GTIDs; this file turns its events into committed transactions. It
 * emits events as they are parsed and cannot wait for a handler, so they are queued here in order
 * and the binlog connection is paused while the queue is long.
 *
 * Positions: `gtid:<MariaDB GTID position or MySQL GTID set>` after each committed transaction when
 * the server has GTIDs, else `file:<binlog file>:<offset>` (the end of the commit event). A
 * transaction's activity ids derive from its GTID (else its file and commit offset), so a
 * transaction read again after a reconnect in its middle gets the same ids.
 *
 * A lost connection (the server restarted, the dump thread killed, the network cut) rejects run()
 * once the event being handled is done with, and drops what was queued; the runner calls run()
 * again from the durable position. Without one yet, a run after the first starts where the first
 * connection started reading (not at the server's end again, which would skip what came between).
 */

export interface MysqlSourceOptions {
  /** `mysql://` or `mariadb://` URL of the application database. */
  readonly url: string;
  /** Names the stream: the key of the saved position, part of every id, and the replica's server id. */
  readonly slot: string;
  /** Tables to capture (bare names are in the URL's database). */
  readonly tables: readonly string[];
  /** A transaction larger than this is handed over in stretches. */
  readonly maxChangesPerStretch?: number;
  /** Where to start without a saved position: the server's end (default) or all it kept. */
  readonly startWithoutPosition?: 'now' | 'earliest';
}

interface OpenTransaction {
  readonly position: string;
  /** MariaDB flagged the transaction as one statement (DDL): it has no commit event. */
  readonly standalone: boolean;
  commitTime: Date;
  tag: TransactionTag | null;
  /** The writing connection, where the binary log says (MySQL's BEGIN, MariaDB 11.5+'s GTID). */
  connectionId: number | undefined;
  /** Its user, once looked up (an untagged transaction's first hand-over). */
  user?: Promise<string | undefined>;
  changes: RowChange[];
  firstIndex: number;
}

/** How the stream starts: after a saved position, at the server's end, or from all it kept. */
export type MysqlStart = { readonly saved: string } | 'now' | 'earliest';

/** Statements that change tables rather than rows: each is a binary log transaction of its own. */
const DDL = /^\s*(?:\/\*.*?\*\/\s*)*(?:TRUNCATE|ALTER|CREATE|DROP|RENAME|OPTIMIZE|REPAIR)\b/is;
/** `TRUNCATE [TABLE] [db.]name`, names quoted or not. */
const TRUNCATE = /^\s*(?:\/\*.*?\*\/\s*)*TRUNCATE\s+(?:TABLE\s+)?(?:(`?)([^`.\s]+)\1\.)?`?([^`\s;]+)`?/is;

const QUEUE_PAUSE_AT = 2000;
const QUEUE_RESUME_AT = 200;

interface ZongJiEvent {
  getEventName(): string;
  timestamp: number;
  nextPosition: number;
  gtid?: string;
  /** MariaDB's GTID event: the transaction is one statement without a commit event (DDL). */
  standalone?: boolean;
  tableId?: number;
  tableMap?: Record<number, { parentSchema: string; tableName: string }>;
  rows?: unknown[];
  query?: string;
  /** The default database of a query event. */
  schema?: string;
  /** Query events: the connection that wrote it. */
  slaveProxyId?: number;
  /** MariaDB 11.5+ GTID events: the connection that wrote it. */
  threadId?: number;
  primaryKey?: number[];
  columnNames?: string[];
}

interface ZongJiInstance {
  on(event: string, listener: (value: never) => void): void;
  start(options: Record<string, unknown>): void;
  stop(): void;
  readonly gtidSet: string | undefined;
  readonly options: { filename?: string; position?: number };
  readonly connection: { pause(): void; resume(): void } | null;
}

export function connectionOptionsOf(url: string): mysql.ConnectionOptions {
  const parsed = new URL(url);
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: parsed.port === '' ? 3306 : Number(parsed.port),
    user: decodeURIComponent(parsed.username || 'root'),
    ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')),
    supportBigNumbers: true,
    bigNumberStrings: false,
    dateStrings: false,
    timezone: 'Z',
  };
}

/** Refuses with one line naming the first server setting change capture cannot work with. */
export async function assertRowBinlog(
  query: (sql: string) => Promise<Record<string, unknown>[]>,
): Promise<void> {
  const [row] = await query(
    'SELECT @@log_bin AS log_bin, @@binlog_format AS binlog_format, @@binlog_row_image AS binlog_row_image',
  );
  const expected: [string, string][] = [
    ['log_bin', '1'],
    ['binlog_format', 'ROW'],
    ['binlog_row_image', 'FULL'],
  ];
  for (const [name, value] of expected) {
    const actual = String(row?.[name] ?? 'unknown').toUpperCase();
    if (actual !== value && !(name === 'log_bin' && actual === 'ON')) {
      const shown = name === 'log_bin' ? (actual === '0' ? 'OFF' : actual) : actual;
      const wanted = name === 'log_bin' ? 'ON (log_bin in my.cnf, then restart)' : value;
      throw new ActivityLogError(
        'CAPTURE_SOURCE_UNSUITABLE',
        `${name} is ${shown} on the capture source; change capture needs ${name}=${wanted}`,
        { field: name },
      );
    }
  }
}

/** A replica server id of its own per slot (the server drops a replica whose id another one takes). */
function serverIdOf(slot: string): number {
  let hash = 2166136261;
  for (const char of slot) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
  return 100_000 + (hash % 1_000_000_000);
}

/** Reads a MariaDB/MySQL database's row changes from its binary log. */
export class MysqlCaptureSource implements CaptureSource {
  readonly kind: string = 'mariadb';
  readonly #options: MysqlSourceOptions;
  readonly #database: string;
  readonly #maxStretch: number;
  #side: mysql.Connection | null = null;
  #streamKey = '';
  #zongji: ZongJiInstance | null = null;
  /** Events in stream order, each with the resume position as it stood when it was emitted. */
  readonly #queue: { readonly event: ZongJiEvent; readonly resume: string }[] = [];
  #draining = false;
  #paused = false;
  #open: OpenTransaction | null = null;
  readonly #users = new MysqlConnectionUsers(
    async (sql, values) => (await this.#sideQuery(sql, values)) as Record<string, unknown>[],
  );
  readonly #primaryKeys = new Map<string, readonly string[]>();
  #handed: string | null = null;
  #durable: string | null = null;
  #stopping = false;
  #finish: (() => void) | null = null;
  #fail: ((error: unknown) => void) | null = null;
  #handle: ((transaction: CapturedTransaction) => Promise<void>) | null = null;
  /** Where the first connection started reading, once it did; null before. */
  #firstReadAt: string | null = null;
  /** The drain of the current connection's queue, awaited before the next connection reads. */
  #drained: Promise<void> = Promise.resolve();

  constructor(options: MysqlSourceOptions) {
    this.#options = options;
    this.#database = connectionOptionsOf(options.url).database ?? '';
    this.#maxStretch = options.maxChangesPerStretch ?? 10_000;
  }

  get streamKey(): string {
    return this.#streamKey;
  }

  get defaultSchema(): string {
    return this.#database;
  }

  async open(): Promise<void> {
    const side = await this.#connectSide();
    try {
      const [rows] = await side.query('SELECT @@server_id AS id, @@hostname AS host, VERSION() AS version');
      const row = (rows as Record<string, unknown>[])[0] ?? {};
      const mariadb = /mariadb/i.test(String(row.version));
      (this as { kind: string }).kind = mariadb ? 'mariadb' : 'mysql';
      // MySQL names a server by its UUID; MariaDB has none: its server id and host name then.
      let server = `${String(row.id)}@${String(row.host)}`;
      if (!mariadb) {
        const [uuid] = await side.query('SELECT @@server_uuid AS uuid');
        server = String((uuid as Record<string, unknown>[])[0]?.uuid ?? server);
      }
      this.#streamKey = `${this.kind}:${server}/${this.#database}/${this.#options.slot}`;
    } catch (error) {
      await side.end().catch(() => undefined);
      this.#side = null;
      throw error;
    }
  }

  /** The catalog connection, made again when it was lost (the next query after it broke). */
  async #connectSide(): Promise<mysql.Connection> {
    const side = await mysql.createConnection(connectionOptionsOf(this.#options.url));
    side.on('error', () => {
      if (this.#side === side) this.#side = null;
      side.destroy();
    });
    this.#side = side;
    return side;
  }

  async #sideQuery(sql: string, params: unknown[] = []): Promise<unknown> {
    const side = this.#side ?? (await this.#connectSide());
    try {
      const [rows] = await side.query(sql, params);
      return rows;
    } catch (error) {
      if ((error as { fatal?: boolean }).fatal === true && this.#side === side) {
        this.#side = null;
        side.destroy();
      }
      throw error;
    }
  }

  /** The server settings, checked before anything is read. */
  async assertSettings(): Promise<void> {
    await assertRowBinlog(async (sql) => (await this.#sideQuery(sql)) as Record<string, unknown>[]);
  }

  async run(
    from: string | null,
    handle: (transaction: CapturedTransaction) => Promise<void>,
    opened?: () => void,
  ): Promise<void> {
    const saved = from ?? this.#firstReadAt;
    const start: MysqlStart = saved === null ? (this.#options.startWithoutPosition ?? 'now') : { saved };
    return this.runFrom(start, handle, opened);
  }

  async runFrom(
    start: MysqlStart,
    handle: (transaction: CapturedTransaction) => Promise<void>,
    opened: () => void = () => undefined,
  ): Promise<void> {
    // What the last connection queued or had open is read again from `start`.
    await this.#drained;
    this.#queue.length = 0;
    this.#open = null;
    this.#paused = false;
    this.#handed = this.#durable;
    if (this.#stopping) return;
    this.#handle = handle;
    const reading = new Promise<void>((resolve, reject) => {
      this.#finish = resolve;
      this.#fail = reject;
      const zongji = new ZongJi(connectionOptionsOf(this.#options.url)) as unknown as ZongJiInstance;
      this.#zongji = zongji;
      zongji.on('binlog', (event: ZongJiEvent) => {
        if (this.#zongji === zongji) this.#enqueue(event);
      });
      zongji.on('ready', () => {
        opened();
        if (this.#firstReadAt !== null) return;
        const gtids = zongji.gtidSet;
        this.#firstReadAt =
          gtids !== undefined && gtids !== ''
            ? `gtid:${gtids}`
            : `file:${zongji.options.filename ?? ''}:${zongji.options.position ?? 4}`;
      });
      zongji.on('error', (error: Error) => {
        if (this.#stopping || this.#zongji !== zongji) return;
        reject(binlogError(error));
      });
      const tables = [...this.#options.tables.map((name) => name.split('.').at(-1)!), CAPTURE_CONTEXT_TABLE];
      zongji.start({
        serverId: serverIdOf(this.#options.slot),
        includeEvents: [
          'mariadbgtid',
          'gtid',
          'tablemap',
          'writerows',
          'updaterows',
          'deleterows',
          'xid',
          'query',
        ],
        includeSchema: { [this.#database]: tables },
        ...startOptions(start),
      });
    });
    try {
      await reading;
    } finally {
      const zongji = this.#zongji;
      this.#zongji = null;
      this.#queue.length = 0;
      zongji?.stop();
    }
  }

  confirm(position: string): void {
    this.#durable = position;
  }

  caughtUp(): boolean {
    return (
      this.#queue.length === 0 && !this.#draining && this.#open === null && this.#handed === this.#durable
    );
  }

  async lag(): Promise<SourceLag> {
    const file = this.#zongji?.options.filename;
    const offset = this.#zongji?.options.position;
    if (file === undefined || offset === undefined) return { bytes: 0, retainedBytes: 0 };
    const logs = await this.#sideQuery('SHOW BINARY LOGS');
    let behind = 0;
    let past = false;
    for (const log of logs as { Log_name: string; File_size: number }[]) {
      if (log.Log_name === file) {
        past = true;
        behind += Math.max(0, Number(log.File_size) - offset);
      } else if (past) behind += Number(log.File_size);
    }
    // The server keeps its binary logs by its own expiry, not for capture: what capture holds
    // back is the stretch past its position, which must outlive that expiry.
    return { bytes: behind, retainedBytes: behind };
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#zongji?.stop();
    this.#finish?.();
    await this.#side?.end().catch(() => undefined);
  }

  #enqueue(event: ZongJiEvent): void {
    if (this.#stopping) return;
    // Read now: the library moves both on as it parses further events.
    const file = this.#zongji?.options.filename ?? '';
    const gtids = this.#zongji?.gtidSet;
    const resume =
      gtids !== undefined && gtids !== '' && gtids.length <= 180
        ? `gtid:${gtids}`
        : `file:${file}:${event.nextPosition}`;
    this.#queue.push({ event, resume });
    if (!this.#paused && this.#queue.length >= QUEUE_PAUSE_AT) {
      this.#paused = true;
      this.#zongji?.connection?.pause();
    }
    if (!this.#draining) this.#drained = this.#drain();
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    const zongji = this.#zongji;
    try {
      while (this.#queue.length > 0 && !this.#stopping && this.#zongji === zongji) {
        const { event, resume } = this.#queue.shift()!;
        await this.#onEvent(event, resume);
        if (this.#paused && this.#queue.length <= QUEUE_RESUME_AT) {
          this.#paused = false;
          this.#zongji?.connection?.resume();
        }
      }
    } catch (error) {
      this.#fail?.(error);
    } finally {
      this.#draining = false;
    }
  }

  async #onEvent(event: ZongJiEvent, resume: string): Promise<void> {
    const name = event.getEventName();
    switch (name) {
      case 'mariadbgtid':
      case 'gtid':
        this.#begin(event);
        return;
      case 'query':
        if (event.query === 'BEGIN') this.#begin(event);
        else if (event.query === 'COMMIT') await this.#commit(event, resume);
        else if (this.#endsTransaction(event.query ?? '')) await this.#schemaChange(event, resume);
        return;
      case 'xid':
        await this.#commit(event, resume);
        return;
      case 'writerows':
      case 'updaterows':
      case 'deleterows':
        await this.#rows(event, name);
        return;
      default:
        return;
    }
  }

  #begin(event: ZongJiEvent): void {
    // A GTID names the transaction; without GTIDs (MySQL gtid_mode=OFF) the commit offset does.
    this.#open = {
      position: event.gtid ?? '',
      standalone: event.standalone === true,
      commitTime: new Date(event.timestamp),
      tag: null,
      connectionId: event.slaveProxyId ?? event.threadId,
      changes: [],
      firstIndex: 0,
    };
  }

  async #rows(event: ZongJiEvent, name: string): Promise<void> {
    const open = this.#open;
    const table = event.tableMap?.[event.tableId ?? -1];
    if (open === null || table === undefined) return;
    if (table.tableName === CAPTURE_CONTEXT_TABLE) {
      for (const row of event.rows ?? []) {
        const image = (name === 'updaterows' ? (row as { after: RowImage }).after : row) as RowImage;
        if (name !== 'deleterows' && typeof image.context === 'string') {
          open.tag = decodeTransactionTag(image.context) ?? open.tag;
        }
      }
      return;
    }
    const keyColumns = await this.#primaryKeyOf(table.parentSchema, table.tableName);
    for (const row of event.rows ?? []) {
      const before =
        name === 'updaterows'
          ? (row as { before: RowImage }).before
          : name === 'deleterows'
            ? (row as RowImage)
            : null;
      const after =
        name === 'updaterows'
          ? (row as { after: RowImage }).after
          : name === 'writerows'
            ? (row as RowImage)
            : null;
      open.changes.push({
        schema: table.parentSchema,
        table: table.tableName,
        event: name === 'writerows' ? 'created' : name === 'updaterows' ? 'updated' : 'deleted',
        old: before,
        new: after,
        unchanged: [],
        keyColumns,
      });
      if (open.changes.length >= this.#maxStretch) {
        await this.#handle!(transactionOf(open, null, open.position || 'pending', await this.#userOf(open)));
        open.firstIndex += open.changes.length;
        open.changes = [];
      }
    }
  }

  async #commit(event: ZongJiEvent, resume: string): Promise<void> {
    const open = this.#open;
    this.#open = null;
    if (open === null) return;
    open.commitTime = new Date(event.timestamp);
    const position = open.position || resume;
    await this.#handle!(transactionOf(open, resume, position, await this.#userOf(open)));
    this.#handed = resume;
  }

  /**
   * A DDL statement is a transaction of its own in the binary log (its GTID, then the statement,
   * no commit event): its end is a position like a commit's. A `TRUNCATE` of a captured table is
   * recorded as one `truncated` change; the statement's table changes what the primary key is.
   */
  async #schemaChange(event: ZongJiEvent, resume: string): Promise<void> {
    const query = event.query ?? '';
    if (this.#open === null) this.#begin(event);
    const truncated = TRUNCATE.exec(query);
    const schema = truncated?.[2] ?? event.schema ?? '';
    const table = truncated?.[3];
    if (table !== undefined && schema === this.#database && this.#captures(table)) {
      this.#open!.changes.push(truncationOf(schema, table));
    }
    this.#primaryKeys.clear();
    await this.#commit(event, resume);
  }

  /**
   * Whether a statement is a transaction by itself: MariaDB flags its GTID standalone; on MySQL
   * a DDL statement (not on a temporary table) outside any row changes is.
   */
  #endsTransaction(query: string): boolean {
    const open = this.#open;
    if (open?.standalone === true) return true;
    return (open === null || open.changes.length === 0) && DDL.test(query) && !/\bTEMPORARY\b/i.test(query);
  }

  #captures(table: string): boolean {
    return this.#options.tables.some((name) => name.split('.').at(-1) === table);
  }

  /** The database user of an untagged transaction's connection, looked up once per transaction. */
  #userOf(open: OpenTransaction): Promise<string | undefined> {
    if (open.tag !== null || open.connectionId === undefined || open.changes.length === 0) {
      return Promise.resolve(undefined);
    }
    open.user ??= this.#users.userOf(open.connectionId, open.commitTime).catch(() => undefined);
    return open.user;
  }

  /** The primary key's columns, from the catalog, once per table. */
  async #primaryKeyOf(schema: string, table: string): Promise<readonly string[]> {
    const key = `${schema}.${table}`;
    const known = this.#primaryKeys.get(key);
    if (known !== undefined) return known;
    const rows = await this.#sideQuery(
      `SELECT COLUMN_NAME AS name FROM information_schema.KEY_COLUMN_USAGE
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`,
      [schema, table],
    );
    const columns = (rows as { name: string }[]).map((row) => row.name);
    this.#primaryKeys.set(key, columns);
    return columns;
  }
}

function transactionOf(
  open: OpenTransaction,
  resumePosition: string | null,
  position: string,
  user?: string,
): CapturedTransaction {
  return {
    position,
    resumePosition,
    commitTime: open.commitTime,
    tag: open.tag,
    origin: {
      ...(open.connectionId === undefined ? {} : { connectionId: open.connectionId }),
      ...(user === undefined ? {} : { user }),
    },
    changes: open.changes,
    firstIndex: open.firstIndex,
  };
}

/**
 * Server errors that reading again cannot heal (error 1236: the position was purged from the
 * binary log or is not in it; access denied; a table whose columns changed past what the binary
 * log describes), as one line; any other failure is a lost connection, read again.
 */
function binlogError(error: Error): ActivityLogError {
  const errno = (error as { errno?: unknown }).errno;
  const unhealable =
    errno === 1236 ||
    errno === 1045 ||
    errno === 1227 ||
    errno === 1049 ||
    /schema changed between binlog event and metadata fetch|Insufficient permissions/i.test(error.message);
  if (unhealable) {
    const hint = /schema changed/i.test(error.message)
      ? ' (set binlog_row_metadata=FULL so that each event names its own columns)'
      : '';
    return new ActivityLogError(
      'CAPTURE_SOURCE_UNSUITABLE',
      `the binary log cannot be read from here: ${error.message}${hint}`,
      { cause: error },
    );
  }
  return new ActivityLogError('CAPTURE_STREAM_FAILED', `the binary log stream failed: ${error.message}`, {
    cause: error,
  });
}

function startOptions(start: MysqlStart): Record<string, unknown> {
  if (start === 'now') return { startAtEnd: true };
  if (start === 'earliest') return { gtidSet: '' };
  if (start.saved.startsWith('gtid:')) return { gtidSet: start.saved.slice(5) };
  const match = /^file:(.+):(\d+)$/.exec(start.saved);
  if (match === null) {
    throw new ActivityLogError(
      'CAPTURE_SOURCE_UNSUITABLE',
      `the saved position ${start.saved} is not a binary log position; run capture --from=now to start afresh`,
    );
  }
  return { filename: match[1], position: Number(match[2]) };
}
