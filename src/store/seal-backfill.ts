import { Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import { ACTIVITY_FIELDS } from '../core/activity-fields.js';
import { ActivityLogError } from '../core/errors.js';
import { checkErasableFields } from '../integrity/activity-leaf.js';
import { decodeActivityRow } from './activity-row-codec.js';
import type { ActivityDatabase, ActivityRow } from './activity-table.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import { insertSeal, leafedActivity, lockChainHead, sealOver, stampRows } from './seal-table.js';

/** Rows per seal `seal --backfill` writes by default, and at most. */
export const DEFAULT_BACKFILL_CHUNK = 1000;
/** Three parameters a row in the salt UPDATE, under SQLite's limit of 32,766. */
export const MAX_BACKFILL_CHUNK = 10_000;

export interface BackfillOptions {
  /** Rows per seal (default 1000). */
  readonly chunkSize?: number;
  /** Called after each seal with the rows sealed so far. */
  readonly onProgress?: (sealedSoFar: number) => void;
}

export interface BackfillResult {
  readonly rows: number;
  readonly seals: number;
}

const ACTIVITY_COLUMN_NAMES = ACTIVITY_FIELDS.map((field) => field.column);

/**
 * Seals the rows no seal covers (`seal_seq` null: stored before sealing was on), oldest id first,
 * one seal per chunk, each chunk one transaction holding the chain head, as a sealed insert does.
 * Each row gets a fresh salt; its leaf is made from the row as read back. Running it again seals
 * nothing more; concurrent writers wait for a chunk at most.
 */
export async function backfillSeals(
  config: DatabaseConfig,
  options: BackfillOptions = {},
): Promise<BackfillResult> {
  const chunkSize = options.chunkSize ?? DEFAULT_BACKFILL_CHUNK;
  const dialect = DIALECT_REGISTRY[config.connection].create(config);
  const erasableFields = checkErasableFields(config.erasableFields);
  const db = new Kysely<ActivityDatabase>({ dialect: dialect.createKyselyDialect() });
  const target = { table: config.table, dialect };
  let rows = 0;
  let seals = 0;
  try {
    for (;;) {
      // Read committed for the reason a sealed insert uses it (`KyselyStore`).
      const sealed = await db
        .transaction()
        .setIsolationLevel('read committed')
        .execute(async (trx) => {
          const head = await lockChainHead(trx, target);
          const { rows: unsealed } = await sql<ActivityRow>`SELECT ${sql.join(
            ACTIVITY_COLUMN_NAMES.map((name) => sql.id(name)),
          )} FROM ${sql.table(config.table)} WHERE ${sql.id('seal_seq')} IS NULL ORDER BY ${sql.id(
            'id',
          )} LIMIT ${chunkSize} ${sql.raw(dialect.lockRowsClause)}`.execute(trx);
          if (unsealed.length === 0) return 0;
          const salted = unsealed.map((row) =>
            leafedActivity(decodeActivityRow(row, dialect), erasableFields),
          );
          await sql`UPDATE ${sql.table(config.table)} SET ${sql.id('seal_salt')} = CASE ${sql.id('id')} ${sql.join(
            salted.map(({ activity, salt }) => sql`WHEN ${activity.id} THEN ${salt.toString('hex')}`),
            sql` `,
          )} END WHERE ${sql.id('id')} IN (${sql.join(salted.map(({ activity }) => activity.id))})`.execute(
            trx,
          );
          const seal = sealOver(head, salted, new Date());
          await insertSeal(trx, target, seal, erasableFields);
          await stampRows(
            trx,
            target,
            seal.seq,
            salted.map(({ activity }) => activity.id),
          );
          return salted.length;
        });
      if (sealed === 0) break;
      rows += sealed;
      seals++;
      options.onProgress?.(rows);
      if (sealed < chunkSize) break;
    }
    return { rows, seals };
  } catch (error) {
    throw error instanceof ActivityLogError ? error : dialect.mapError(error);
  } finally {
    await db.destroy();
  }
}
