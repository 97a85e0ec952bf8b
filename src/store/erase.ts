import { Kysely, sql } from 'kysely';
import type { DatabaseConfig } from '../config/config.js';
import type { Activity } from '../core/activity.js';
import { ACTIVITY_FIELDS } from '../core/activity-fields.js';
import { ActivityLogError } from '../core/errors.js';
import { newActivityId } from '../core/ids.js';
import {
  checkErasableFields,
  type ErasableField,
  type FieldCommitments,
} from '../integrity/activity-leaf.js';
import { planRowErasure } from '../integrity/row-erasure.js';
import { decodeActivityRow } from './activity-row-codec.js';
import { MAX_PRUNE_CHUNK } from './activity-store.js';
import type { ActivityDatabase, ActivityRow } from './activity-table.js';
import { createStore } from './create-store.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import { type SealRow, sealedErasableFields, sealsTable } from './seal-table.js';
import type { StoreDialect } from './store-dialect.js';

/** Whose activities to erase: those they caused, or those about them (an exact match on both columns). */
export interface ErasureSelector {
  readonly by: 'causer' | 'subject';
  /** `causer_type` or `subject_type`. */
  readonly type: string;
  /** `causer_id` or `subject_id`. */
  readonly id: string;
}

export interface EraseOptions {
  /** Count what would be erased; change nothing and log nothing. */
  readonly dryRun?: boolean | undefined;
  /** Rows per transaction (default 1000, at most 10,000), as `prune --chunk`. */
  readonly chunkSize?: number | undefined;
  /** Called after each chunk with the rows read so far. */
  readonly onProgress?: ((matchedSoFar: number) => void) | undefined;
  /** Who erases, recorded as the causer of the erasure's own activity (default none). */
  readonly causer?: { readonly type: string; readonly id: string } | null | undefined;
}

export interface EraseResult {
  readonly dryRun: boolean;
  /** Rows the selector matched. */
  readonly matched: number;
  /** Rows erased now (or that would be, with `dryRun`). */
  readonly erased: number;
  /** Of those, sealed rows that keep commitments in place of their values. */
  readonly sealed: number;
  /** Rows that had nothing left to erase. */
  readonly alreadyErased: number;
  /** Sealed rows whose leaf holds no field by commitment: erasing would break their seal. */
  readonly notErasable: number;
  /** Rows whose salt or commitments were altered by hand, left as they are (`verify` names them). */
  readonly altered: number;
  /** The first {@link MAX_ALTERED_IDS} of those. */
  readonly alteredIds: readonly string[];
  /** The id of the activity that records this erasure; null with `dryRun`. */
  readonly activityId: string | null;
}

export const DEFAULT_ERASE_CHUNK = 1000;
export const MAX_ALTERED_IDS = 10;
/** Three parameters a row in the commitments UPDATE, under SQLite's limit of 32,766. */
export const MAX_ERASE_CHUNK = MAX_PRUNE_CHUNK;
/** The log and event of the activity recording an erasure. */
export const ERASURE_LOG_NAME = 'activity-log';
export const ERASURE_EVENT = 'erased';

const ROW_COLUMNS = [
  ...ACTIVITY_FIELDS.map((field) => field.column),
  'seal_seq',
  'seal_salt',
  'seal_commitments',
] as const;

interface ChunkOutcome {
  readonly rows: number;
  readonly erased: number;
  readonly sealed: number;
  readonly alreadyErased: number;
  readonly notErasable: number;
  readonly altered: readonly string[];
  readonly last: { readonly createdAt: unknown; readonly id: string } | null;
}

/**
 * Erases the personal data of the activities a selector matches, keeping every seal intact
 * (`integrity/row-erasure.ts` says what each row keeps). Rows are walked along `created_at`, `id`
 * in chunks; each chunk is one transaction that locks its rows, so a crash leaves no row half
 * erased and a chunk done stays done. Running it again erases nothing more. Unless `dryRun`, the
 * erasure is itself logged, through the store's insert (so sealed when sealing is on), with the
 * selector's type but not its id: the log of an erasure must not store again what it erased.
 *
 * @example
 * const result = await eraseActivities(loadConfig().database, { by: 'causer', type: 'App\\User', id: '42' });
 * console.log(`${result.erased} erased, ${result.alreadyErased} already erased`);
 */
export async function eraseActivities(
  config: DatabaseConfig,
  selector: ErasureSelector,
  options: EraseOptions = {},
): Promise<EraseResult> {
  checkSelector(selector);
  const chunkSize = checkChunkSize(options.chunkSize);
  const dryRun = options.dryRun === true;
  const dialect = DIALECT_REGISTRY[config.connection].create(config);
  const configuredFields = checkErasableFields(config.erasableFields);
  const db = new Kysely<ActivityDatabase>({ dialect: dialect.createKyselyDialect() });
  const totals = { matched: 0, erased: 0, sealed: 0, alreadyErased: 0, notErasable: 0, altered: 0 };
  const alteredIds: string[] = [];
  try {
    let after: ChunkOutcome['last'] = null;
    for (;;) {
      const chunk = (trx: Kysely<ActivityDatabase>) =>
        eraseChunk(trx, { config, dialect, selector, configuredFields, chunkSize, after, dryRun });
      const outcome = dryRun
        ? await chunk(db)
        : await db.transaction().setIsolationLevel('read committed').execute(chunk);
      totals.matched += outcome.rows;
      totals.erased += outcome.erased;
      totals.sealed += outcome.sealed;
      totals.alreadyErased += outcome.alreadyErased;
      totals.notErasable += outcome.notErasable;
      totals.altered += outcome.altered.length;
      alteredIds.push(...outcome.altered.slice(0, MAX_ALTERED_IDS - alteredIds.length));
      if (outcome.rows > 0) options.onProgress?.(totals.matched);
      if (outcome.rows < chunkSize || outcome.last === null) break;
      after = outcome.last;
    }
  } catch (error) {
    throw error instanceof ActivityLogError ? error : dialect.mapError(error);
  } finally {
    await db.destroy();
  }
  const activityId = dryRun ? null : await logErasure(config, selector, totals, options.causer ?? null);
  return Object.freeze({ dryRun, ...totals, alteredIds: Object.freeze(alteredIds), activityId });
}

/** The activity recording an erasure: who asked (if known), whose kind of data, how many rows. */
export function erasureActivity(
  selector: ErasureSelector,
  counts: { readonly erased: number; readonly alreadyErased: number; readonly matched: number },
  causer: EraseOptions['causer'],
): Activity {
  const activity: Record<string, unknown> = Object.fromEntries(
    ACTIVITY_FIELDS.map((field) => [field.property, null]),
  );
  Object.assign(activity, {
    id: newActivityId(),
    logName: ERASURE_LOG_NAME,
    event: ERASURE_EVENT,
    description: `erased the personal data of the activities of a ${selector.by} of type ${selector.type}`,
    causerType: causer?.type ?? null,
    causerId: causer?.id ?? null,
    properties: {
      selector: selector.by,
      type: selector.type,
      matched: counts.matched,
      erased: counts.erased,
      already_erased: counts.alreadyErased,
    },
    createdAt: new Date(),
  });
  return Object.freeze(activity) as unknown as Activity;
}

async function logErasure(
  config: DatabaseConfig,
  selector: ErasureSelector,
  counts: { readonly erased: number; readonly alreadyErased: number; readonly matched: number },
  causer: EraseOptions['causer'],
): Promise<string> {
  const activity = erasureActivity(selector, counts, causer);
  const store = createStore(config);
  try {
    await store.insertMany([activity]);
  } finally {
    await store.close();
  }
  return activity.id;
}

/** Rows of a chunk that null the same fields, each with the commitments it keeps (null: none). */
interface ErasureGroup {
  readonly fields: readonly ErasableField[];
  readonly sealed: boolean;
  readonly rows: Map<string, FieldCommitments | null>;
}

interface ChunkContext {
  readonly config: DatabaseConfig;
  readonly dialect: StoreDialect;
  readonly selector: ErasureSelector;
  readonly configuredFields: readonly ErasableField[];
  readonly chunkSize: number;
  readonly after: ChunkOutcome['last'];
  readonly dryRun: boolean;
}

async function eraseChunk(trx: Kysely<ActivityDatabase>, context: ChunkContext): Promise<ChunkOutcome> {
  const { config, dialect, selector, chunkSize, after, dryRun } = context;
  const table = sql.table(config.table);
  const typeColumn = sql.id(`${selector.by}_type`);
  const idColumn = sql.id(`${selector.by}_id`);
  const createdAt = sql.id('created_at');
  const id = sql.id('id');
  // A statement that writes first makes a SQLite transaction the writer before it reads, so no
  // other process can write between the read and the UPDATE (SQLITE_BUSY_SNAPSHOT).
  if (!dryRun) await sql`UPDATE ${table} SET ${id} = ${id} WHERE 1 = 0`.execute(trx);
  const keyset =
    after === null
      ? sql``
      : sql` AND (${createdAt} > ${after.createdAt} OR (${createdAt} = ${after.createdAt} AND ${id} > ${after.id}))`;
  // Read committed (as a sealed insert), so that under MySQL the locking read locks the rows it
  // returns, not the gaps of the index range, and inserts for the same person are not held up.
  const { rows } = await sql<ActivityRow>`SELECT ${sql.join(ROW_COLUMNS.map((column) => sql.id(column)))}
    FROM ${table} WHERE ${typeColumn} = ${selector.type} AND ${idColumn} = ${selector.id}${keyset}
    ORDER BY ${createdAt}, ${id} LIMIT ${chunkSize} ${sql.raw(dryRun ? '' : dialect.lockRowsClause)}`.execute(
    trx,
  );
  const last = rows.at(-1);
  const sealedLists = await sealLists(trx, config.table, rows);
  const groups = new Map<string, ErasureGroup>();
  let alreadyErased = 0;
  let notErasable = 0;
  const altered: string[] = [];
  for (const row of rows) {
    const sealSeq = row.seal_seq === null ? null : Number(row.seal_seq);
    let plan: ReturnType<typeof planRowErasure>;
    try {
      plan = planRowErasure(
        {
          activity: decodeActivityRow(row, dialect),
          sealSeq,
          salt: row.seal_salt,
          commitments: row.seal_commitments,
        },
        sealSeq === null ? null : (sealedLists.get(sealSeq) ?? null),
        context.configuredFields,
      );
    } catch {
      altered.push(row.id);
      continue;
    }
    if (plan.kind === 'already-erased') alreadyErased++;
    else if (plan.kind === 'not-erasable') notErasable++;
    else {
      const sealed = sealSeq !== null;
      const key = `${sealed}:${plan.fields.join(',')}`;
      let group = groups.get(key);
      if (group === undefined) {
        group = { fields: plan.fields, sealed, rows: new Map() };
        groups.set(key, group);
      }
      group.rows.set(row.id, plan.commitments);
    }
  }
  let erased = 0;
  let sealedRows = 0;
  for (const group of groups.values()) {
    erased += group.rows.size;
    if (group.sealed) sealedRows += group.rows.size;
    if (!dryRun) await updateGroup(trx, config.table, group);
  }
  return {
    rows: rows.length,
    erased,
    sealed: sealedRows,
    alreadyErased,
    notErasable,
    altered,
    last: last === undefined ? null : { createdAt: last.created_at, id: last.id },
  };
}

/**
 * One UPDATE for the rows of a chunk that null the same fields: the fields, and for sealed rows
 * the salt, become null and each row's commitments are stored, in the same statement.
 */
async function updateGroup(trx: Kysely<ActivityDatabase>, table: string, group: ErasureGroup): Promise<void> {
  const id = sql.id('id');
  const ids = [...group.rows.keys()];
  const assignments = group.fields.map((field) => sql`${sql.id(field)} = NULL`);
  if (group.sealed) {
    assignments.push(sql`${sql.id('seal_salt')} = NULL`);
    const withCommitments = ids.filter((rowId) => group.rows.get(rowId) !== null);
    if (withCommitments.length > 0) {
      assignments.push(
        sql`${sql.id('seal_commitments')} = CASE ${id} ${sql.join(
          withCommitments.map((rowId) => sql`WHEN ${rowId} THEN ${JSON.stringify(group.rows.get(rowId))}`),
          sql` `,
        )} ELSE ${sql.id('seal_commitments')} END`,
      );
    }
  }
  await sql`UPDATE ${sql.table(table)} SET ${sql.join(assignments)} WHERE ${id} IN (${sql.join(ids)})`.execute(
    trx,
  );
}

/** The erasable-field list each seal of `rows` records (null for a seal that records none). */
async function sealLists(
  trx: Kysely<ActivityDatabase>,
  table: string,
  rows: readonly ActivityRow[],
): Promise<Map<number, readonly ErasableField[] | null>> {
  const seqs = [...new Set(rows.filter((row) => row.seal_seq !== null).map((row) => Number(row.seal_seq)))];
  const lists = new Map<number, readonly ErasableField[] | null>();
  if (seqs.length === 0) return lists;
  const { rows: seals } = await sql<SealRow>`SELECT * FROM ${sql.table(sealsTable(table))} WHERE ${sql.id(
    'seq',
  )} IN (${sql.join(seqs)})`.execute(trx);
  for (const seal of seals) lists.set(Number(seal.seq), sealedErasableFields(seal));
  return lists;
}

function checkSelector(selector: ErasureSelector): void {
  if (selector.by !== 'causer' && selector.by !== 'subject') {
    throw new ActivityLogError(
      'VALIDATION_FAILED',
      `selector.by must be causer or subject (got ${JSON.stringify(selector.by)})`,
      {
        field: 'selector.by',
      },
    );
  }
  for (const part of ['type', 'id'] as const) {
    const value = selector[part];
    if (typeof value !== 'string' || value.length === 0) {
      throw new ActivityLogError('VALIDATION_FAILED', `selector.${part} must be a non-empty string`, {
        field: `selector.${part}`,
      });
    }
  }
}

function checkChunkSize(chunkSize: number | undefined): number {
  if (chunkSize === undefined) return DEFAULT_ERASE_CHUNK;
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_ERASE_CHUNK) {
    throw new ActivityLogError(
      'VALIDATION_FAILED',
      `chunkSize must be a whole number from 1 to ${MAX_ERASE_CHUNK} (got ${chunkSize})`,
      { field: 'chunkSize' },
    );
  }
  return chunkSize;
}
