import pg from 'pg';
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import { ActivityLogError } from '../../core/errors.js';
import {
  decodeTransactionTag,
  TRANSACTION_TAG_PREFIX,
  type TransactionTag,
} from '../../core/transaction-tag.js';
import type { CaptureSource, SourceLag } from '../capture-source.js';
import {
  type CapturedTransaction,
  type RowChange,
  type RowImage,
  type TransactionOrigin,
  truncationOf,
} from '../row-change.js';
import { laterLsn, lsnFromBigInt, lsnToBigInt, normalizeLsn } from './pg-lsn.js';

/*
 * pg-logical-replication (2.5) speaks the replication protocol and decodes pgoutput; this file
 * drives it so that nothing is confirmed before it is durable:
 * - automatic acknowledgement is off, and so is its timer (it would confirm whatever was
 *   received), and the flow control on, so the socket pauses while a transaction is handed over;
 * - its acknowledge(lsn) reports lsn + 1 as flushed; a transaction whose commit record starts
 *   right where the confirmed one ends would then be skipped on the next start, so it is given
 *   the position minus one;
 * - keepalives are answered with the durable position, or, when nothing read is still pending,
 *   with the server's own position, so an idle database does not keep WAL for the slot;
 * - a lost connection rejects run() once the message being handled is done with; the runner then
 *   calls run() again from the durable position, on a new replication connection (the catalog
 *   connection is made again too when it was lost).
 */

export interface PostgresSourceOptions {
  /** `postgres://` URL of the application database. */
  readonly url: string;
  /** Replication slot; the publication has the same name. */
  readonly slot: string;
  /** A transaction larger than this is handed over in stretches of this many row changes. */
  readonly maxChangesPerStretch?: number;
  /** How often the durable position is reported when nothing else prompts it (default 10 s). */
  readonly statusIntervalMs?: number;
  /** Tables never turned into activities (the activity log's own, when it shares the database). */
  readonly ignoreTables?: ReadonlySet<string>;
}

interface OpenTransaction {
  readonly position: string;
  readonly commitTime: Date;
  tag: TransactionTag | null;
  origin: TransactionOrigin;
  changes: RowChange[];
  firstIndex: number;
}

/** Reads a PostgreSQL database's changes through its publication and logical replication slot. */
export class PostgresCaptureSource implements CaptureSource {
  readonly kind = 'postgres';
  readonly defaultSchema = 'public';
  readonly #options: PostgresSourceOptions;
  readonly #maxStretch: number;
  #side: pg.Client | null = null;
  #streamKey = '';
  #service: LogicalReplicationService | null = null;
  readonly #primaryKeys = new Map<number, readonly string[]>();
  #open: OpenTransaction | null = null;
  /** Messages decoded from the socket, and those handled: equal when nothing read is pending. */
  #received = 0;
  #handled = 0;
  /** End of the last transaction handed over, and of the last one confirmed durable. */
  #handedLsn: string | null = null;
  #durableLsn: string | null = null;
  /** The server's position in its last keepalive. */
  #serverLsn: string | null = null;
  #reportedLsn: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopping = false;
  #runs = 0;

  constructor(options: PostgresSourceOptions) {
    this.#options = options;
    this.#maxStretch = options.maxChangesPerStretch ?? 10_000;
  }

  get streamKey(): string {
    return this.#streamKey;
  }

  /** Connects the catalog connection and learns which server and database this is. */
  async open(): Promise<void> {
    const identity = await this.#sideQuery<{ system_identifier: string; database: string }>(
      'SELECT system_identifier::text AS system_identifier, current_database() AS database FROM pg_control_system()',
    );
    const row = identity.rows[0]!;
    this.#streamKey = `postgres:${row.system_identifier}/${row.database}/${this.#options.slot}`;
  }

  async run(
    from: string | null,
    handle: (transaction: CapturedTransaction) => Promise<void>,
    opened: () => void = () => undefined,
  ): Promise<void> {
    if (this.#stopping) return;
    // What the last connection read and did not finish is read again from `from`.
    this.#open = null;
    this.#received = 0;
    this.#handled = 0;
    this.#handedLsn = this.#durableLsn;
    // The last connection's server position may lie past changes it sent and nobody handled.
    this.#serverLsn = null;
    if (this.#runs++ > 0) await this.#waitUntilSlotIsFree();
    const service = new LogicalReplicationService(
      { connectionString: this.#options.url },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    this.#service = service;
    const plugin = new PgoutputPlugin({
      protoVersion: 1,
      publicationNames: [this.#options.slot],
      messages: true,
    });
    const parse = plugin.parse.bind(plugin);
    plugin.parse = (buffer: Buffer) => {
      this.#received++;
      return parse(buffer);
    };
    let failure: unknown = null;
    let fail: (error: unknown) => void = () => undefined;
    const failed = new Promise<void>((_, reject) => {
      fail = reject;
    });
    // A failure after the stream already ended (while stopping) has no one left to tell.
    failed.catch(() => undefined);
    let handling: Promise<void> = Promise.resolve();
    service.on('data', (_lsn: string, message: Pgoutput.Message) => {
      const handled = (async () => {
        try {
          if (!this.#stopping && failure === null) await this.#onMessage(message, handle);
        } catch (error) {
          failure ??= error;
          fail(error);
        } finally {
          this.#handled++;
        }
      })();
      handling = handled;
      return handled;
    });
    service.on('start', () => opened());
    service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => {
      if (failure !== null) return;
      this.#serverLsn = normalizeLsn(lsn);
      if (shouldRespond || this.caughtUp()) this.#report(shouldRespond);
    });
    service.on('error', (error: Error) => {
      if (this.#stopping) return;
      failure ??= error;
      fail(error);
    });
    this.#timer = setInterval(() => this.#report(false), this.#options.statusIntervalMs ?? 10_000);
    this.#timer.unref();
    const start = from ?? '0/0';
    const streaming = service.subscribe(plugin, this.#options.slot, start);
    streaming.catch(() => undefined);
    try {
      await Promise.race([streaming, failed]);
      if (failure !== null) throw failure;
    } catch (error) {
      if (this.#stopping && failure === null) return;
      failure ??= error;
      throw streamError(failure, this.#options.slot);
    } finally {
      if (this.#timer !== null) clearInterval(this.#timer);
      this.#timer = null;
      await service.stop().catch(() => undefined);
      // The change being handed over when the connection broke finishes before anything is read again.
      await handling;
      service.removeAllListeners();
      if (this.#service === service) this.#service = null;
    }
  }

  confirm(position: string): void {
    this.#durableLsn = this.#durableLsn === null ? position : laterLsn(this.#durableLsn, position);
    this.#report(false);
  }

  caughtUp(): boolean {
    return (
      this.#received === this.#handled &&
      this.#open === null &&
      (this.#handedLsn === null || this.#handedLsn === this.#durableLsn)
    );
  }

  async lag(): Promise<SourceLag> {
    const result = await this.#sideQuery<{ lag: string | null; retained: string | null }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag,
              pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained
         FROM pg_replication_slots WHERE slot_name = $1`,
      [this.#options.slot],
    );
    const row = result.rows[0];
    return {
      bytes: Math.max(0, Number(row?.lag ?? 0)),
      retainedBytes: Math.max(0, Number(row?.retained ?? 0)),
    };
  }

  async stop(): Promise<void> {
    this.#report(false);
    this.#stopping = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#service?.stop().catch(() => undefined);
    await this.#side?.end().catch(() => undefined);
    this.#side = null;
  }

  /**
   * A query on the catalog connection, connecting it first when there is none (at the start, or
   * after it was lost: the next query makes a new one).
   */
  async #sideQuery<R extends pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    let side = this.#side;
    if (side === null) {
      side = new pg.Client({ connectionString: this.#options.url });
      const client = side;
      client.on('error', () => {
        if (this.#side === client) this.#side = null;
        void client.end().catch(() => undefined);
      });
      await client.connect();
      this.#side = client;
    }
    try {
      return await side.query<R>(sql, params);
    } catch (error) {
      if (this.#side === side) this.#side = null;
      void side.end().catch(() => undefined);
      throw error;
    }
  }

  /**
   * The server frees the slot once it sees the lost connection's WAL sender gone, a moment after
   * the connection broke; another reader that took it meanwhile is refused as at the start.
   */
  async #waitUntilSlotIsFree(): Promise<void> {
    const deadline = Date.now() + SLOT_RELEASE_WAIT_MS;
    for (;;) {
      const result = await this.#sideQuery<{ pid: number | null }>(
        'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1 AND active',
        [this.#options.slot],
      );
      const pid = result.rows[0]?.pid;
      if (pid === undefined || this.#stopping) return;
      if (Date.now() >= deadline) {
        throw new ActivityLogError(
          'CAPTURE_SOURCE_UNSUITABLE',
          `replication slot ${this.#options.slot} is read by another connection (server process ${pid ?? 'unknown'}): run one capture process per slot`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Tells the server how far it may release WAL: the durable position, or its own when idle. */
  #report(ping: boolean): void {
    const service = this.#service;
    if (service === null || this.#stopping) return;
    let position = this.#durableLsn;
    if (this.caughtUp() && this.#serverLsn !== null) {
      position = position === null ? this.#serverLsn : laterLsn(position, this.#serverLsn);
    }
    if (position === null) return;
    if (!ping && position === this.#reportedLsn) return;
    this.#reportedLsn = position;
    // acknowledge() reports lsn + 1.
    const value = lsnToBigInt(position);
    void service.acknowledge(lsnFromBigInt(value > 0n ? value - 1n : 0n), ping);
  }

  async #onMessage(
    message: Pgoutput.Message,
    handle: (transaction: CapturedTransaction) => Promise<void>,
  ): Promise<void> {
    switch (message.tag) {
      case 'begin':
        this.#open = {
          position: normalizeLsn(message.commitLsn ?? '0/0'),
          commitTime: new Date(Number((message.commitTime as bigint) / 1000n)),
          tag: null,
          origin: { xid: message.xid },
          changes: [],
          firstIndex: 0,
        };
        return;
      case 'relation':
        this.#primaryKeys.delete(message.relationOid);
        return;
      case 'origin':
        if (this.#open !== null)
          this.#open.origin = { ...this.#open.origin, replicationOrigin: message.originName };
        return;
      case 'message':
        if (this.#open !== null && message.transactional && message.prefix === TRANSACTION_TAG_PREFIX) {
          this.#open.tag =
            decodeTransactionTag(Buffer.from(message.content).toString('utf8')) ?? this.#open.tag;
        }
        return;
      case 'insert':
      case 'update':
      case 'delete': {
        const open = this.#open;
        if (open === null) return;
        const change = await this.#rowChange(message);
        if (change === null) return;
        open.changes.push(change);
        if (open.changes.length >= this.#maxStretch) {
          await handle(transactionOf(open, null));
          open.firstIndex += open.changes.length;
          open.changes = [];
        }
        return;
      }
      case 'truncate': {
        const open = this.#open;
        if (open === null) return;
        for (const relation of message.relations) {
          if (this.#options.ignoreTables?.has(`${relation.schema}.${relation.name}`)) continue;
          open.changes.push(truncationOf(relation.schema, relation.name));
        }
        return;
      }
      case 'commit': {
        const open = this.#open;
        if (open === null) return;
        const end = normalizeLsn(message.commitEndLsn ?? message.commitLsn ?? '0/0');
        // An empty one too: its end is confirmed in order, after the transactions before it.
        await handle(transactionOf(open, end));
        this.#handedLsn = end;
        this.#open = null;
        return;
      }
      default:
        return;
    }
  }

  async #rowChange(
    message: Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete,
  ): Promise<RowChange | null> {
    const relation = message.relation;
    if (this.#options.ignoreTables?.has(`${relation.schema}.${relation.name}`)) return null;
    const keyColumns = await this.#primaryKeyOf(relation);
    const after: RowImage | null = message.tag === 'delete' ? null : message.new;
    const before: RowImage | null =
      message.tag === 'insert' ? null : message.tag === 'delete' ? (message.old ?? message.key) : message.old;
    const unchanged =
      after === null
        ? []
        : relation.columns.map((column) => column.name).filter((name) => after[name] === undefined);
    return {
      schema: relation.schema,
      table: relation.name,
      event: message.tag === 'insert' ? 'created' : message.tag === 'update' ? 'updated' : 'deleted',
      old: before,
      new: after,
      unchanged,
      keyColumns,
    };
  }

  /** The table's primary key, from the catalog (with REPLICA IDENTITY FULL every column is "key"). */
  async #primaryKeyOf(relation: Pgoutput.MessageRelation): Promise<readonly string[]> {
    const known = this.#primaryKeys.get(relation.relationOid);
    if (known !== undefined) return known;
    const result = await this.#sideQuery<{ name: string }>(
      `SELECT a.attname AS name
         FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = $1 AND i.indisprimary
        ORDER BY array_position(i.indkey::int2[], a.attnum)`,
      [relation.relationOid],
    );
    let columns: readonly string[] = result.rows.map((row) => row.name);
    if (columns.length === 0 && relation.replicaIdentity !== 'full') columns = relation.keyColumns;
    this.#primaryKeys.set(relation.relationOid, columns);
    return columns;
  }
}

/** How long a reconnect waits for the server to release the slot of the connection it lost. */
const SLOT_RELEASE_WAIT_MS = 15_000;

/** Server errors that reading again cannot heal: who connects, to what, with which settings. */
const UNHEALABLE_SQLSTATES = new Set([
  '28000', // invalid authorization
  '28P01', // wrong password
  '3D000', // no such database
  '42501', // insufficient privilege
  '42704', // undefined object (the slot or publication)
  '55000', // object not in prerequisite state (wal_level no longer logical)
]);

function transactionOf(open: OpenTransaction, resumePosition: string | null): CapturedTransaction {
  return {
    position: open.position,
    resumePosition,
    commitTime: open.commitTime,
    tag: open.tag,
    origin: open.origin,
    changes: open.changes,
    firstIndex: open.firstIndex,
  };
}

function streamError(error: unknown, slot: string): ActivityLogError {
  if (error instanceof ActivityLogError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (/replication slot .* does not exist|publication .* does not exist/i.test(message)) {
    return new ActivityLogError(
      'CAPTURE_SOURCE_UNSUITABLE',
      `${message}: run activity-log capture --setup (slot and publication ${slot})`,
      { cause: error },
    );
  }
  const sqlstate = (error as { code?: unknown } | null)?.code;
  if (typeof sqlstate === 'string' && UNHEALABLE_SQLSTATES.has(sqlstate)) {
    return new ActivityLogError(
      'CAPTURE_SOURCE_UNSUITABLE',
      `the change stream of slot ${slot} cannot be read (${sqlstate}): ${message}`,
      { cause: error },
    );
  }
  if (/is active for PID/i.test(message)) {
    return new ActivityLogError(
      'CAPTURE_SOURCE_UNSUITABLE',
      `${message}: another capture process reads slot ${slot}; run one per slot`,
      { cause: error },
    );
  }
  return new ActivityLogError(
    'CAPTURE_STREAM_FAILED',
    `the change stream of slot ${slot} failed: ${message}`,
    {
      cause: error,
    },
  );
}
