import { Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import type { StoreDialect } from './store-dialect.js';

/** The table, in the activity database, of how far each change-capture stream is durable. */
export const CAPTURE_POSITIONS_TABLE = 'activity_log_capture_positions';

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

  /** Creates the table if it is missing. */
  async ensure(): Promise<void> {
    const types = this.#dialect.schema.columnTypes;
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

  async remove(source: string, slot: string): Promise<void> {
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
