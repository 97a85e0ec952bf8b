import { Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import type { StoreDialect } from './store-dialect.js';

/** The table, in the activity database, of how far each change-capture stream is durable. */
export const CAPTURE_POSITIONS_TABLE = 'activity_log_capture_positions';

/**
 * The table, next to the positions, where each running `capture` process writes its figures every
 * few seconds (`source`, `slot`, `report` JSON, `updated_at`): how `serve`, `status` and
 * `capture --status` elsewhere learn of it, with or without Redis.
 */
export const CAPTURE_STATS_TABLE = 'activity_log_capture_stats';

/** The figures a capture process last wrote, and when. */
export interface CaptureStatsRow {
  readonly source: string;
  readonly slot: string;
  /** The report as written (JSON text, `CaptureReport`). */
  readonly report: string;
  readonly updatedAt: Date;
}

/** One saved position: the source stream, its slot, and where reading resumes. */
export interface CapturePosition {
  readonly source: string;
  readonly slot: string;
  readonly position: string;
  readonly updatedAt: Date;
}

/**
 * `activity_log_capture_positions` (`source`, `slot`, `position`, `updated_at`), over a pool of
 * its own. A position is saved only after the activities before it are durable, by the one
 * capture process of that slot, so a plain update-or-insert is enough.
 *
 * @example
 * const positions = new CapturePositionTable(config.database);
 * await positions.ensure();
 * await positions.save('postgres:123/shop', 'activity_log', '0/1A2B3C4D');
 */
export class CapturePositionTable {
  readonly #dialect: StoreDialect;
  readonly #db: Kysely<unknown>;

  constructor(config: DatabaseConfig) {
    this.#dialect = DIALECT_REGISTRY[config.connection].create({ ...config, poolMax: 1 });
    this.#db = new Kysely<unknown>({ dialect: this.#dialect.createKyselyDialect() });
  }

  /** Creates the tables (positions, figures) if they are missing. */
  async ensure(): Promise<void> {
    const types = this.#dialect.schema.columnTypes;
    await this.#run(() =>
      sql
        .raw(
          `CREATE TABLE IF NOT EXISTS ${this.#q(CAPTURE_STATS_TABLE)} (` +
            `${this.#q('source')} ${types.name} NOT NULL, ` +
            `${this.#q('slot')} ${types.name} NOT NULL, ` +
            `${this.#q('report')} ${types.text} NOT NULL, ` +
            `${this.#q('updated_at')} ${types.timestamp} NOT NULL, ` +
            `PRIMARY KEY (${this.#q('source')}, ${this.#q('slot')}))${this.#dialect.schema.tableOptions}`,
        )
        .execute(this.#db),
    );
    await this.#run(() =>
      sql
        .raw(
          `CREATE TABLE IF NOT EXISTS ${this.#q(CAPTURE_POSITIONS_TABLE)} (` +
            `${this.#q('source')} ${types.name} NOT NULL, ` +
            `${this.#q('slot')} ${types.name} NOT NULL, ` +
            `${this.#q('position')} ${types.name} NOT NULL, ` +
            `${this.#q('updated_at')} ${types.timestamp} NOT NULL, ` +
            `PRIMARY KEY (${this.#q('source')}, ${this.#q('slot')}))${this.#dialect.schema.tableOptions}`,
        )
        .execute(this.#db),
    );
  }

  async read(source: string, slot: string): Promise<CapturePosition | null> {
    const result = await this.#run(() =>
      sql<{
        position: string;
        updated_at: unknown;
      }>`SELECT ${sql.ref('position')} AS position, ${sql.ref('updated_at')} AS updated_at FROM ${sql.table(CAPTURE_POSITIONS_TABLE)} WHERE ${sql.ref('source')} = ${source} AND ${sql.ref('slot')} = ${slot}`.execute(
        this.#db,
      ),
    );
    const row = result.rows[0];
    if (row === undefined) return null;
    return Object.freeze({
      source,
      slot,
      position: row.position,
      updatedAt: this.#dialect.decodeTimestamp(row.updated_at),
    });
  }

  async save(source: string, slot: string, position: string, at: Date = new Date()): Promise<void> {
    const updatedAt = this.#dialect.encodeTimestamp(at);
    await this.#run(async () => {
      const updated =
        await sql`UPDATE ${sql.table(CAPTURE_POSITIONS_TABLE)} SET ${sql.ref('position')} = ${position}, ${sql.ref('updated_at')} = ${updatedAt} WHERE ${sql.ref('source')} = ${source} AND ${sql.ref('slot')} = ${slot}`.execute(
          this.#db,
        );
      if (Number(updated.numAffectedRows ?? 0n) > 0) return;
      try {
        await sql`INSERT INTO ${sql.table(CAPTURE_POSITIONS_TABLE)} (${sql.ref('source')}, ${sql.ref('slot')}, ${sql.ref('position')}, ${sql.ref('updated_at')}) VALUES (${source}, ${slot}, ${position}, ${updatedAt})`.execute(
          this.#db,
        );
      } catch (error) {
        // MySQL counts an update that changes nothing as no row: the row is there and holds the position.
        if ((await this.read(source, slot))?.position !== position) throw error;
      }
    });
  }

  /** Writes a capture process's figures (one row per stream and slot, replaced each time). */
  async saveStats(source: string, slot: string, report: string, at: Date = new Date()): Promise<void> {
    const updatedAt = this.#dialect.encodeTimestamp(at);
    await this.#run(async () => {
      const updated =
        await sql`UPDATE ${sql.table(CAPTURE_STATS_TABLE)} SET ${sql.ref('report')} = ${report}, ${sql.ref('updated_at')} = ${updatedAt} WHERE ${sql.ref('source')} = ${source} AND ${sql.ref('slot')} = ${slot}`.execute(
          this.#db,
        );
      if (Number(updated.numAffectedRows ?? 0n) > 0) return;
      try {
        await sql`INSERT INTO ${sql.table(CAPTURE_STATS_TABLE)} (${sql.ref('source')}, ${sql.ref('slot')}, ${sql.ref('report')}, ${sql.ref('updated_at')}) VALUES (${source}, ${slot}, ${report}, ${updatedAt})`.execute(
          this.#db,
        );
      } catch (error) {
        // An update that changed nothing (MySQL counts it as no row), or another writer in between.
        if ((await this.readStats()).every((row) => row.source !== source || row.slot !== slot)) throw error;
      }
    });
  }

  /** Every stream's last figures; none when the table does not exist (no capture ever ran here). */
  async readStats(): Promise<CaptureStatsRow[]> {
    let result: { rows: { source: string; slot: string; report: string; updated_at: unknown }[] };
    try {
      result = await sql<{
        source: string;
        slot: string;
        report: string;
        updated_at: unknown;
      }>`SELECT ${sql.ref('source')} AS source, ${sql.ref('slot')} AS slot, ${sql.ref('report')} AS report, ${sql.ref('updated_at')} AS updated_at FROM ${sql.table(CAPTURE_STATS_TABLE)}`.execute(
        this.#db,
      );
    } catch (error) {
      const mapped = this.#dialect.mapError(error);
      if (/does not exist|doesn't exist|no such table/i.test(String((error as Error).message))) return [];
      throw mapped;
    }
    return result.rows.map((row) =>
      Object.freeze({
        source: row.source,
        slot: row.slot,
        report: row.report,
        updatedAt: this.#dialect.decodeTimestamp(row.updated_at),
      }),
    );
  }

  async remove(source: string, slot: string): Promise<void> {
    await this.#run(() =>
      sql`DELETE FROM ${sql.table(CAPTURE_STATS_TABLE)} WHERE ${sql.ref('source')} = ${source} AND ${sql.ref('slot')} = ${slot}`.execute(
        this.#db,
      ),
    );
    await this.#run(() =>
      sql`DELETE FROM ${sql.table(CAPTURE_POSITIONS_TABLE)} WHERE ${sql.ref('source')} = ${source} AND ${sql.ref('slot')} = ${slot}`.execute(
        this.#db,
      ),
    );
  }

  close(): Promise<void> {
    return this.#db.destroy();
  }

  #q(name: string): string {
    return this.#dialect.quoteIdentifier(name);
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw this.#dialect.mapError(error);
    }
  }
}
