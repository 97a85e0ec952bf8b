import { sql } from 'kysely';
import { derivedIdentifier } from '../activity-table.js';
import type { PartitionDialect, StoredPartition } from '../store-dialect.js';

/**
 * Declarative RANGE partitioning on PostgreSQL: each partition a table `<table>_p202612`, the
 * first one from MINVALUE (it holds everything older), and `<table>_default` for rows no range
 * holds. A partition whose period has rows in the default one is made as a plain table, filled
 * from the default one, emptied there and attached, in one transaction; PostgreSQL refuses to
 * attach (or create) a partition whose rows the default one still holds.
 */
export const POSTGRES_PARTITIONS: PartitionDialect = Object.freeze({
  contiguous: false,
  createTableClause: () => sql`PARTITION BY RANGE (${sql.id('created_at')})`,
  afterCreateTable: async (db, table, ranges) => {
    await sql`CREATE TABLE IF NOT EXISTS ${sql.table(defaultPartition(table))} PARTITION OF ${sql.table(table)} DEFAULT`.execute(
      db,
    );
    for (const [index, range] of ranges.entries()) {
      const from = index === 0 ? sql`MINVALUE` : sql.lit(range.from.toISOString());
      await sql`CREATE TABLE IF NOT EXISTS ${sql.table(partitionTable(table, range.name))} PARTITION OF ${sql.table(
        table,
      )} FOR VALUES FROM (${from}) TO (${sql.lit(range.to.toISOString())})`.execute(db);
    }
  },
  list: async (db, table) => {
    const { rows } = await sql<{
      name: string;
      bound: string;
      estimate: number | string;
      bytes: number | string;
    }>`SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound,
        GREATEST(c.reltuples, 0)::bigint AS estimate, pg_total_relation_size(c.oid) AS bytes
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = to_regclass(${quotedName(table)})`.execute(db);
    const partitions = rows.map((row) => decodePartition(row));
    return partitions.sort(byBound);
  },
  oldestInCatchAll: async (db, table, from) => {
    const { rows } = await sql<{ oldest: Date | string | null }>`SELECT MIN(${sql.id('created_at')}) AS oldest
      FROM ${sql.table(defaultPartition(table))}${
        from === null ? sql`` : sql` WHERE ${sql.id('created_at')} >= ${from.toISOString()}`
      }`.execute(db);
    const oldest = rows[0]?.oldest ?? null;
    return oldest === null ? null : new Date(oldest);
  },
  add: async (db, table, ranges) => {
    let moved = 0;
    for (const range of ranges) {
      const partition = sql.table(partitionTable(table, range.name));
      const from = range.from.toISOString();
      const to = range.to.toISOString();
      const createdAt = sql.id('created_at');
      await db.transaction().execute(async (trx) => {
        const catchAll = sql.table(defaultPartition(table));
        const inRange = sql`${createdAt} >= ${from} AND ${createdAt} < ${to}`;
        const { rows } = await sql<{
          one: number;
        }>`SELECT 1 AS one FROM ${catchAll} WHERE ${inRange} LIMIT 1`.execute(trx);
        if (rows.length === 0) {
          await sql`CREATE TABLE IF NOT EXISTS ${partition} PARTITION OF ${sql.table(table)}
            FOR VALUES FROM (${sql.lit(from)}) TO (${sql.lit(to)})`.execute(trx);
          return;
        }
        // The default partition's rows of this period move to the new one before it is attached.
        await sql`CREATE TABLE ${partition} (LIKE ${sql.table(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`.execute(
          trx,
        );
        const copied = await sql`INSERT INTO ${partition} SELECT * FROM ${catchAll} WHERE ${inRange}`.execute(
          trx,
        );
        await sql`DELETE FROM ${catchAll} WHERE ${inRange}`.execute(trx);
        await sql`ALTER TABLE ${sql.table(table)} ATTACH PARTITION ${partition}
          FOR VALUES FROM (${sql.lit(from)}) TO (${sql.lit(to)})`.execute(trx);
        moved += Number(copied.numAffectedRows ?? 0n);
      });
    }
    return moved;
  },
  // DETACH … CONCURRENTLY would spare the parent its short exclusive lock, but PostgreSQL refuses
  // it while a DEFAULT partition exists.
  drop: async (db, _table, partition) => {
    await sql`DROP TABLE ${sql.table(partition.name)}`.execute(db);
  },
} satisfies PartitionDialect);

/** `<table>_p202612`. */
function partitionTable(table: string, name: string): string {
  return derivedIdentifier(table, `_${name}`);
}

function defaultPartition(table: string): string {
  return derivedIdentifier(table, '_default');
}

/** The table's name as `to_regclass` reads it: quoted, so that case is kept. */
function quotedName(table: string): string {
  return `"${table.replaceAll('"', '""')}"`;
}

const BOUND = /FROM \((.+?)\) TO \((.+?)\)/;

function decodePartition(row: {
  name: string;
  bound: string;
  estimate: number | string;
  bytes: number | string;
}): StoredPartition {
  const base = { name: row.name, rowEstimate: Number(row.estimate), bytes: Number(row.bytes) };
  const match = BOUND.exec(row.bound);
  if (match === null) return { ...base, from: null, to: null, catchAll: true };
  return { ...base, from: boundDate(match[1]!), to: boundDate(match[2]!), catchAll: false };
}

/** `'2026-12-01 00:00:00+00'` (sessions run in UTC), or MINVALUE/MAXVALUE as null. */
function boundDate(text: string): Date | null {
  const quoted = /^'(.*)'$/.exec(text.trim());
  if (quoted === null) return null;
  return new Date(quoted[1]!.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
}

/** Range partitions by bound, the default one last. */
export function byBound(a: StoredPartition, b: StoredPartition): number {
  if (a.catchAll !== b.catchAll) return a.catchAll ? 1 : -1;
  return (a.to?.getTime() ?? Number.POSITIVE_INFINITY) - (b.to?.getTime() ?? Number.POSITIVE_INFINITY);
}
