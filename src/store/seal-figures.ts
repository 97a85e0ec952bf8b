import { Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import { sealsTableOf } from './seal-head.js';
import type { StoreDialect } from './store-dialect.js';

/** How far a table's seal chain has come. */
export interface SealFigures {
  /** The newest seal's `seq` (0 while there is none): seals are numbered 1, 2, 3… */
  readonly seals: number;
  /** Rows closed by seals 1…`seals`. */
  readonly rows: number;
}

/**
 * Reads how many seals and sealed rows a table's chain holds, for monitoring, over a connection
 * of its own. The row total is kept between reads and only the seals appended since are summed,
 * so a read costs two primary-key lookups however long the chain; a chain that got shorter (its
 * newest seals deleted) is summed afresh.
 *
 * @example
 * const figures = new SealFiguresReader(config.database);
 * const { seals, rows } = await figures.read();
 * await figures.close();
 */
export class SealFiguresReader {
  readonly #dialect: StoreDialect;
  readonly #table: string;
  readonly #db: Kysely<unknown>;
  #known: SealFigures = { seals: 0, rows: 0 };

  constructor(config: DatabaseConfig) {
    this.#dialect = DIALECT_REGISTRY[config.connection].create({ ...config, poolMax: 1 });
    this.#table = config.table;
    this.#db = new Kysely<unknown>({ dialect: this.#dialect.createKyselyDialect() });
  }

  async read(): Promise<SealFigures> {
    return this.#run(async () => {
      const seals = sql.table(sealsTableOf(this.#table));
      const newest = await sql<{ seq: unknown }>`SELECT MAX(${sql.ref('seq')}) AS seq FROM ${seals}`.execute(
        this.#db,
      );
      const headSeq = Math.max(0, Number(newest.rows[0]?.seq ?? 0) || 0);
      const from = headSeq < this.#known.seals ? { seals: 0, rows: 0 } : this.#known;
      if (headSeq === from.seals) {
        this.#known = from;
        return from;
      }
      const added = await sql<{
        total: unknown;
      }>`SELECT COALESCE(SUM(${sql.ref('row_count')}), 0) AS total FROM ${seals} WHERE ${sql.ref('seq')} > ${from.seals} AND ${sql.ref('seq')} <= ${headSeq}`.execute(
        this.#db,
      );
      this.#known = Object.freeze({ seals: headSeq, rows: from.rows + Number(added.rows[0]?.total ?? 0) });
      return this.#known;
    });
  }

  /** When seal `seq` was written, or null when there is no such seal. */
  async sealedAt(seq: number): Promise<Date | null> {
    return this.#run(async () => {
      const { rows } = await sql<{
        sealed_at: unknown;
      }>`SELECT ${sql.ref('sealed_at')} AS sealed_at FROM ${sql.table(sealsTableOf(this.#table))} WHERE ${sql.ref('seq')} = ${seq}`.execute(
        this.#db,
      );
      return rows[0] === undefined ? null : this.#dialect.decodeTimestamp(rows[0].sealed_at);
    });
  }

  close(): Promise<void> {
    return this.#db.destroy();
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (error instanceof ActivityLogError) throw error;
      const mapped = this.#dialect.mapError(error);
      if (mapped.code !== 'STORE_SCHEMA_MISSING') throw mapped;
      throw new ActivityLogError(
        'STORE_SCHEMA_MISSING',
        `${sealsTableOf(this.#table)} is missing: set ACTIVITY_LOG_SEAL=on (and run activity-log migrate) so that writes are sealed`,
        { cause: mapped },
      );
    }
  }
}
