import { Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import type { Activity } from '../core/activity.js';
import { ACTIVITY_FIELDS } from '../core/activity-fields.js';
import { CANONICAL_FIELDS } from '../core/canonical-encoding.js';
import { ActivityLogError } from '../core/errors.js';
import type { StoredLeafValues } from '../integrity/activity-leaf.js';
import type { Seal } from '../integrity/seal-hash.js';
import type { SealGroup, StoredSealedRow } from '../integrity/verify-chain.js';
import { decodeActivityRow } from './activity-row-codec.js';
import type { ActivityDatabase, ActivityRow } from './activity-table.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import { type PrunedSeals, readPrunedSeals } from './seal-pruning.js';
import { decodeSealRow, type SealRow, sealedErasableFields, sealsTable } from './seal-table.js';
import { fromSqlTimestamp } from './sql-timestamp.js';
import type { StoreDialect } from './store-dialect.js';

/** Rows per SELECT while streaming, and seals per SELECT. */
const DEFAULT_ROWS_PER_READ = 5000;
const SEALS_PER_READ = 1000;

const ROW_COLUMNS = [
  ...ACTIVITY_FIELDS.map((field) => field.column),
  'seal_seq',
  'seal_salt',
  'seal_commitments',
] as const;

/**
 * Reads a table's seals and the rows that claim them, for `verify` and anything else that checks
 * the chain (`integrity/verify-chain.ts` does the checking). Rows are streamed in keyset chunks
 * along `idx_seal_seq` (`seal_seq`, then `id`), seals along their primary key, and the two are
 * merged by `seq`, so memory holds one chunk of each and one seal's rows.
 *
 * @example
 * const reader = openSealReader(config.database);
 * const report = await verifyChain(reader.groups(1), { fromSeq: 1, anchor: null, … });
 * await reader.close();
 */
export class SealReader {
  readonly #db: Kysely<ActivityDatabase>;
  readonly #dialect: StoreDialect;
  readonly #table: string;
  readonly #rowsPerRead: number;
  /** The dialect reads `created_at` text as {@link fromSqlTimestamp} does. */
  readonly #sqlTimestamps: boolean;

  constructor(dialect: StoreDialect, table: string, rowsPerRead: number = DEFAULT_ROWS_PER_READ) {
    this.#dialect = dialect;
    this.#sqlTimestamps = dialect.decodeTimestamp === fromSqlTimestamp;
    this.#table = table;
    this.#rowsPerRead = rowsPerRead;
    // Properties as stored: a sealed row's text is the canonical text its leaf was made with.
    this.#db = new Kysely<ActivityDatabase>({ dialect: dialect.createKyselyDialect({ jsonAsText: true }) });
  }

  /** Rows no seal covers (`seal_seq` null). */
  countUnsealed(): Promise<number> {
    return this.#run(async () => {
      const { rows } = await sql<{ n: number | string }>`SELECT COUNT(*) AS n FROM ${sql.table(
        this.#table,
      )} WHERE ${sql.id('seal_seq')} IS NULL`.execute(this.#db);
      return Number(rows[0]?.n ?? 0);
    });
  }

  /**
   * What retention removed from the chain (`<table>_seals_pruned`); nothing on a table whose
   * schema predates it.
   */
  async pruned(): Promise<PrunedSeals> {
    try {
      return await this.#run(() => readPrunedSeals(this.#db, this.#table));
    } catch (error) {
      if (error instanceof ActivityLogError && error.code === 'STORE_SCHEMA_MISSING') {
        return { watermark: null, partlyPruned: new Map() };
      }
      throw error;
    }
  }

  /** Seal `seq` (never the anchor, seq 0), or null when there is none. */
  seal(seq: number): Promise<Seal | null> {
    return this.#run(async () => {
      if (seq < 1) return null;
      const { rows } = await sql<SealRow>`SELECT * FROM ${sql.table(sealsTable(this.#table))} WHERE ${sql.id(
        'seq',
      )} = ${seq}`.execute(this.#db);
      return rows[0] === undefined ? null : decodeSealRow(rows[0], this.#dialect);
    });
  }

  /**
   * Each `seq` from `fromSeq` on that a seal or a row has, in order: the seal (or null) and the rows
   * that claim it in `id` order. From seal 1, rows claiming a `seq` below 1 come first.
   *
   * The chain is read up to the head as it is when reading starts, so seals written meanwhile
   * (each committed with its rows) are neither half read nor taken for rows without a seal. Rows
   * that claim a `seq` past that head with no seal of that `seq` come last, from one statement.
   */
  async *groups(fromSeq: number): AsyncGenerator<SealGroup> {
    const headSeq = await this.#headSeq();
    const seals = this.#sealChunks(fromSeq, headSeq);
    const rows = this.#rowChunks(fromSeq, headSeq);
    let seal = await seals.next();
    let row = await rows.next();
    while (!seal.done || !row.done) {
      const seq = Math.min(
        seal.done ? Number.POSITIVE_INFINITY : seal.value.seal.seq,
        row.done ? Number.POSITIVE_INFINITY : row.value.seq,
      );
      let current: Seal | null = null;
      let erasableFields: SealGroup['erasableFields'] = null;
      if (!seal.done && seal.value.seal.seq === seq) {
        current = seal.value.seal;
        erasableFields = seal.value.erasableFields;
        seal = await seals.next();
      }
      const members: StoredSealedRow[] = [];
      while (!row.done && row.value.seq === seq) {
        members.push(row.value.row);
        row = await rows.next();
      }
      yield { seq, seal: current, rows: members, erasableFields };
    }
    yield* this.#rowsPastHead(Math.max(headSeq, fromSeq - 1));
  }

  /** Row `id` as stored, its seal columns too, or null when there is none. */
  row(id: string): Promise<StoredRow | null> {
    return this.#run(async () => {
      const rows = await this.#db
        .selectFrom(this.#table)
        .select(ROW_COLUMNS as unknown as (keyof ActivityRow)[])
        .where('id', '=', id)
        .execute();
      const row = rows[0];
      if (row === undefined) return null;
      const { activity, salt, commitments } = this.#decode(row);
      return {
        id,
        activity,
        salt,
        commitments,
        sealSeq: row.seal_seq === null ? null : Number(row.seal_seq),
      };
    });
  }

  /** Seal `seq` with the rows that claim it in `id` order, or null when there is no such seal. */
  sealGroup(seq: number): Promise<SealGroup | null> {
    return this.#run(async () => {
      if (seq < 1) return null;
      const { rows: seals } =
        await sql<SealRow>`SELECT * FROM ${sql.table(sealsTable(this.#table))} WHERE ${sql.id(
          'seq',
        )} = ${seq}`.execute(this.#db);
      if (seals[0] === undefined) return null;
      const rows = await this.#db
        .selectFrom(this.#table)
        .select(ROW_COLUMNS as unknown as (keyof ActivityRow)[])
        .where('seal_seq', '=', seq)
        .orderBy('id')
        .execute();
      return {
        seq,
        seal: decodeSealRow(seals[0], this.#dialect),
        rows: rows.map((row) => this.#decode(row)),
        erasableFields: sealedErasableFields(seals[0]),
      };
    });
  }

  /** The seals `fromSeq`…`toSeq` that exist, lowest first, at most `limit` of them. */
  seals(fromSeq: number, toSeq: number, limit: number): Promise<readonly Seal[]> {
    return this.#run(async () => {
      const { rows } = await sql<SealRow>`SELECT * FROM ${sql.table(sealsTable(this.#table))} WHERE ${sql.id(
        'seq',
      )} >= ${Math.max(fromSeq, 1)} AND ${sql.id('seq')} <= ${toSeq} ORDER BY ${sql.id('seq')} LIMIT ${limit}`.execute(
        this.#db,
      );
      return rows.map((row) => decodeSealRow(row, this.#dialect));
    });
  }

  /** The newest seal's `seq`, 0 before seal 1. */
  headSeq(): Promise<number> {
    return this.#headSeq();
  }

  close(): Promise<void> {
    return this.#db.destroy();
  }

  async #headSeq(): Promise<number> {
    const { rows } = await this.#run(() =>
      sql<{ seq: number | string | null }>`SELECT MAX(${sql.id('seq')}) AS seq FROM ${sql.table(
        sealsTable(this.#table),
      )}`.execute(this.#db),
    );
    return Number(rows[0]?.seq ?? 0);
  }

  async *#rowsPastHead(headSeq: number): AsyncGenerator<SealGroup> {
    const { rows } = await this.#run(() =>
      sql<ActivityRow>`SELECT ${sql.join(ROW_COLUMNS.map((column) => sql.ref(`r.${column}`)))}
        FROM ${sql.table(this.#table)} AS ${sql.id('r')}
        LEFT JOIN ${sql.table(sealsTable(this.#table))} AS ${sql.id('s')} ON ${sql.ref('s.seq')} = ${sql.ref('r.seal_seq')}
        WHERE ${sql.ref('r.seal_seq')} > ${headSeq} AND ${sql.ref('s.seq')} IS NULL
        ORDER BY ${sql.ref('r.seal_seq')}, ${sql.ref('r.id')} LIMIT ${this.#rowsPerRead}`.execute(this.#db),
    );
    let group: { seq: number; rows: StoredSealedRow[] } | null = null;
    for (const row of rows) {
      const seq = Number(row.seal_seq);
      if (group !== null && group.seq !== seq) {
        yield { seq: group.seq, seal: null, rows: group.rows };
        group = null;
      }
      group ??= { seq, rows: [] };
      group.rows.push(this.#decode(row));
    }
    if (group !== null) yield { seq: group.seq, seal: null, rows: group.rows };
  }

  async *#sealChunks(
    fromSeq: number,
    headSeq: number,
  ): AsyncGenerator<{ seal: Seal; erasableFields: SealGroup['erasableFields'] }> {
    let after = Math.max(fromSeq, 1) - 1;
    for (;;) {
      const { rows } = await this.#run(() =>
        sql<SealRow>`SELECT * FROM ${sql.table(sealsTable(this.#table))} WHERE ${sql.id('seq')} > ${after}
            AND ${sql.id('seq')} <= ${headSeq} ORDER BY ${sql.id('seq')} LIMIT ${SEALS_PER_READ}`.execute(
          this.#db,
        ),
      );
      for (const row of rows) {
        yield { seal: decodeSealRow(row, this.#dialect), erasableFields: sealedErasableFields(row) };
      }
      if (rows.length < SEALS_PER_READ) return;
      after = Number(rows.at(-1)!.seq);
    }
  }

  /**
   * The rows in keyset chunks. The next chunk is asked for as soon as one arrives, so the database
   * reads it while this one is checked.
   */
  async *#rowChunks(fromSeq: number, headSeq: number): AsyncGenerator<{ seq: number; row: StoredSealedRow }> {
    let pending: Promise<ActivityRow[]> | null = this.#rowChunk(fromSeq, headSeq, null);
    while (pending !== null) {
      const rows: ActivityRow[] = await pending;
      pending = null;
      if (rows.length === this.#rowsPerRead) {
        const last = rows.at(-1)!;
        pending = this.#rowChunk(fromSeq, headSeq, { seq: Number(last.seal_seq), id: last.id });
        // Awaited on the next turn; a consumer that stops early must not leave it unhandled.
        pending.catch(() => undefined);
      }
      for (const stored of rows) yield { seq: Number(stored.seal_seq), row: this.#decode(stored) };
    }
  }

  #rowChunk(
    fromSeq: number,
    headSeq: number,
    after: { seq: number; id: string } | null,
  ): Promise<ActivityRow[]> {
    let select = this.#db
      .selectFrom(this.#table)
      .select(ROW_COLUMNS as unknown as (keyof ActivityRow)[])
      .where('seal_seq', 'is not', null)
      .where('seal_seq', '<=', headSeq);
    if (fromSeq > 1) select = select.where('seal_seq', '>=', fromSeq);
    if (after !== null) {
      const { seq, id } = after;
      select = select.where((eb) =>
        eb.and([eb('seal_seq', '>=', seq), eb.or([eb('seal_seq', '>', seq), eb('id', '>', id)])]),
      );
    }
    const query = select.orderBy('seal_seq').orderBy('id').limit(this.#rowsPerRead);
    return this.#run(() => query.execute() as Promise<ActivityRow[]>);
  }

  #decode(row: ActivityRow): StoredSealedRow {
    return new StoredRowColumns(row, this.#dialect, this.#sqlTimestamps);
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw error instanceof ActivityLogError ? error : this.#dialect.mapError(error);
    }
  }
}

/** `created_at` as DATETIME(3) and SQLite hold it: `YYYY-MM-DD HH:MM:SS.sss`. */
const SQL_TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/;

/** Where each canonical field's value is in a row read from the table. */
const CANONICAL_COLUMNS = CANONICAL_FIELDS.map((field) => field.column);

/**
 * A row as read, decoded into an activity only when asked: a seal whose root its rows' stored
 * values make ({@link storedRowLeafHash}) never needs its activities.
 */
class StoredRowColumns implements StoredSealedRow {
  readonly id: string;
  readonly salt: string | null;
  readonly commitments: string | null;
  readonly values: StoredLeafValues;
  readonly #row: ActivityRow;
  readonly #dialect: StoreDialect;
  #activity: Activity | null | undefined;

  constructor(row: ActivityRow, dialect: StoreDialect, sqlTimestamps: boolean) {
    this.id = row.id;
    this.salt = row.seal_salt;
    this.commitments = row.seal_commitments;
    this.#row = row;
    this.#dialect = dialect;
    const stored = row as unknown as Readonly<Record<string, unknown>>;
    const values: unknown[] = new Array(CANONICAL_COLUMNS.length);
    for (let index = 0; index < CANONICAL_COLUMNS.length; index++) {
      const column = CANONICAL_COLUMNS[index]!;
      values[index] = column === 'created_at' ? isoText(stored[column], sqlTimestamps) : stored[column];
    }
    this.values = values;
  }

  /** Null when the row's values cannot be decoded (its JSON is not JSON). */
  get activity(): Activity | null {
    if (this.#activity === undefined) {
      try {
        this.#activity = decodeActivityRow(this.#row, this.#dialect);
      } catch {
        this.#activity = null;
      }
    }
    return this.#activity;
  }
}

/**
 * `created_at` as the canonical encoding writes it, made the way decoding the row and encoding
 * it would make it; null when only decoding can tell.
 */
function isoText(value: unknown, sqlTimestamps: boolean): string | null {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (sqlTimestamps && typeof value === 'string' && SQL_TIMESTAMP.test(value)) {
    // What fromSqlTimestamp parses; a sealed row's text is a time toISOString wrote, which
    // parsing and writing again gives back unchanged.
    return `${value.slice(0, 10)}T${value.slice(11)}Z`;
  }
  return null;
}

/** A stored row with the seal it claims (`seal_seq`, null when no seal covers it). */
export interface StoredRow extends StoredSealedRow {
  readonly sealSeq: number | null;
}

/** A {@link SealReader} for the configured database; `close()` it when done. */
export function openSealReader(config: DatabaseConfig): SealReader {
  return new SealReader(DIALECT_REGISTRY[config.connection].create(config), config.table);
}
