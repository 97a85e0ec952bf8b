import { Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';
import type { ChainHead } from '../integrity/checkpoint.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import { readPrunedSeals } from './seal-pruning.js';
import type { StoreDialect } from './store-dialect.js';

/** The table of a table's seals (`activity_log` → `activity_log_seals`). */
export function sealsTableOf(table: string): string {
  return `${table}_seals`;
}

const HEX_HASH = /^[0-9a-fA-F]{64}$/;
const HASH_BYTES = 32;

/**
 * The head of `table`'s seal chain as `<table>_seals` holds it: the newest seal's `seq` and
 * `hash`, and the sum of `row_count` of the seals up to it; null while the chain has no seal.
 * Driver errors come through unmapped (see {@link ChainHeadReader} for mapped ones).
 *
 * Seals are only ever appended, so counting the rows of seals up to the head read first gives that
 * head's total even while new seals are written.
 */
export async function readChainHead(db: Kysely<unknown>, table: string): Promise<ChainHead | null> {
  const seals = sql.table(sealsTableOf(table));
  const newest = await sql<{
    seq: unknown;
    hash: unknown;
  }>`SELECT ${sql.ref('seq')} AS seq, ${sql.ref('hash')} AS hash FROM ${seals} ORDER BY ${sql.ref('seq')} DESC LIMIT 1`.execute(
    db,
  );
  const head = newest.rows[0];
  if (head === undefined) return null;
  const seq = countOf(head.seq, `${sealsTableOf(table)}.seq`);
  // Seals pruned by retention count with the rows they sealed; the seals after them are summed.
  const watermark = await readPrunedSeals(db, table).then(
    (pruned) => pruned.watermark,
    () => null,
  );
  const after = watermark === null || watermark.seq > seq ? 0 : watermark.seq;
  const sums = await sql<{
    total_rows: unknown;
  }>`SELECT COALESCE(SUM(${sql.ref('row_count')}), 0) AS total_rows FROM ${seals} WHERE ${sql.ref('seq')} > ${after} AND ${sql.ref('seq')} <= ${seq}`.execute(
    db,
  );
  return Object.freeze({
    table,
    seq,
    sealHash: hashOf(head.hash, `${sealsTableOf(table)}.hash of seal ${seq}`),
    totalRows:
      (after === 0 ? 0 : watermark!.totalRows) +
      countOf(sums.rows[0]?.total_rows, `the sum of ${sealsTableOf(table)}.row_count`),
  });
}

/**
 * Reads chain heads over a connection pool of its own, with driver errors mapped to coded errors.
 * A missing `<table>_seals` is `STORE_SCHEMA_MISSING` saying that sealing is off.
 *
 * @example
 * const reader = new ChainHeadReader(config.database);
 * try { console.log(await reader.read()); } finally { await reader.close(); }
 */
export class ChainHeadReader {
  readonly #dialect: StoreDialect;
  readonly #table: string;
  readonly #db: Kysely<unknown>;

  constructor(config: DatabaseConfig) {
    this.#dialect = DIALECT_REGISTRY[config.connection].create(config);
    this.#table = config.table;
    this.#db = new Kysely<unknown>({ dialect: this.#dialect.createKyselyDialect() });
  }

  async read(): Promise<ChainHead | null> {
    try {
      return await readChainHead(this.#db, this.#table);
    } catch (error) {
      const mapped = this.#dialect.mapError(error);
      if (mapped.code !== 'STORE_SCHEMA_MISSING') throw mapped;
      throw new ActivityLogError(
        'STORE_SCHEMA_MISSING',
        `no seals yet: ${sealsTableOf(this.#table)} is missing; set ACTIVITY_LOG_SEAL=on so that writes are sealed`,
        { cause: mapped },
      );
    }
  }

  close(): Promise<void> {
    return this.#db.destroy();
  }
}

/** BIGINT and SUM come back as numbers, bigints or text depending on the driver. */
function countOf(value: unknown, what: string): number {
  const count = typeof value === 'string' ? Number(value.trim()) : Number(value);
  if (
    (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string') &&
    Number.isSafeInteger(count) &&
    count >= 0
  )
    return count;
  throw new ActivityLogError('STORE_FAILED', `${what} is not a whole number (got ${String(value)})`);
}

/** A hash column holds 64 hex digits (a driver may hand back the 32 bytes of a binary column). */
function hashOf(value: unknown, what: string): Buffer {
  if (Buffer.isBuffer(value) && value.length === HASH_BYTES) return Buffer.from(value);
  if (typeof value === 'string' && HEX_HASH.test(value.trim())) return Buffer.from(value.trim(), 'hex');
  throw new ActivityLogError('STORE_FAILED', `${what} is not 64 hex digits (got ${String(value)})`);
}
