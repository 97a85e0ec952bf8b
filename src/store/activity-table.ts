import { createHash } from 'node:crypto';
import {
  ACTIVITY_FIELDS,
  type ActivityField,
  type ActivityFieldDefinition,
  type ColumnType,
} from '../core/activity-fields.js';

/** The table name DESIGN.md documents; its indexes carry exactly the documented names on every dialect. */
export const DEFAULT_TABLE = 'activity_log';

/** Longest identifier every supported dialect keeps intact (PostgreSQL truncates past 63 bytes). */
const MAX_IDENTIFIER_LENGTH = 63;

type RowValue<F extends ActivityField> = F['kind'] extends 'json' | 'timestamp'
  ? unknown
  : F['nullable'] extends true
    ? string | null
    : string;

/** An activity's columns as the drivers read and write them: snake_case, values in their database form. */
export type ActivityFieldRow = { [F in ActivityField as F['column']]: RowValue<F> };

/**
 * Columns the store keeps beside an activity's fields, for its seal (`integrity/`): not part of the
 * activity, its JSON or its canonical encoding, so they live here rather than in the field table.
 */
export interface SealColumnsRow {
  /** The seal that closes the row; null until one does. BIGINT: PostgreSQL returns it as text. */
  readonly seal_seq: number | string | null;
  /** 16 random bytes as 32 hex digits; null once the row is erased. */
  readonly seal_salt: string | null;
  /** JSON text of column → commitment, written when erasable fields are erased. */
  readonly seal_commitments: string | null;
}

/** A row as the drivers read and write it. */
export type ActivityRow = ActivityFieldRow & SealColumnsRow;

/** Any table name maps to the same row shape, so one Kysely instance serves a configurable table. */
export type ActivityDatabase = Record<string, ActivityRow>;

/** A column of an activity's field. */
export type ActivityColumn = keyof ActivityFieldRow;

/** A column of the seal. */
export type SealColumn = keyof SealColumnsRow;

/** The kind of value a column holds; each dialect maps a kind to its own SQL type. */
export type ColumnKind = ColumnType | StorageColumnType;

/**
 * SQL types of columns that are not activity fields: `sequence` a 64-bit integer, `salt` 32 hex
 * digits, `hash` 64 hex digits, `commitments` JSON text.
 */
export type StorageColumnType = 'sequence' | 'salt' | 'hash' | 'commitments';

export interface ColumnDefinition {
  readonly name: ActivityColumn | SealColumn;
  readonly kind: ColumnKind;
  readonly nullable: boolean;
  /** A SQL literal; only plain strings are needed. */
  readonly defaultValue?: string;
}

function columnOf(field: ActivityFieldDefinition & { readonly column: ActivityColumn }): ColumnDefinition {
  const column = { name: field.column, kind: field.columnType, nullable: field.nullable };
  return Object.freeze(
    field.defaultValue === undefined ? column : { ...column, defaultValue: field.defaultValue },
  );
}

/** The current table's columns. Column order is also the parameter order of every INSERT. */
export const ACTIVITY_COLUMNS: readonly ColumnDefinition[] = Object.freeze(ACTIVITY_FIELDS.map(columnOf));

/** Columns an INSERT writes per row at most: every activity column, and `seal_salt`, `seal_seq` when sealing. */
export const INSERT_COLUMN_COUNT = ACTIVITY_COLUMNS.length + 2;

/** The columns the migration to `version` adds, in column order. */
export function columnsAddedIn(version: number): readonly ColumnDefinition[] {
  return ACTIVITY_FIELDS.filter((field) => field.since === version).map(columnOf);
}

/** The seal's columns on every activity table, added by migration 2 whether sealing is on or not. */
export const SEAL_COLUMNS: readonly ColumnDefinition[] = Object.freeze([
  { name: 'seal_seq', kind: 'sequence', nullable: true },
  { name: 'seal_salt', kind: 'salt', nullable: true },
  { name: 'seal_commitments', kind: 'commitments', nullable: true },
] satisfies ColumnDefinition[]);

export interface IndexDefinition {
  /** The DESIGN.md name. */
  readonly name: string;
  readonly columns: readonly (ActivityColumn | SealColumn)[];
}

/** Rows of one seal, in `id` order: what `verify` and a proof read, and what sealing updates. */
export const SEAL_SEQ_INDEX: IndexDefinition = Object.freeze({
  name: 'idx_seal_seq',
  columns: Object.freeze(['seal_seq', 'id'] as const),
});

/** The seals of an activity table: `<table>_seals`. */
export function sealsTableName(table: string): string {
  return derivedIdentifier(table, '_seals');
}

/** The DESIGN.md indexes; the `…_created_at` ones serve the filtered, newest-first queries. */
export const ACTIVITY_INDEXES: readonly IndexDefinition[] = Object.freeze([
  { name: 'idx_log_name_created_at', columns: ['log_name', 'created_at'] },
  { name: 'idx_event_created_at', columns: ['event', 'created_at'] },
  { name: 'idx_subject_created_at', columns: ['subject_type', 'subject_id', 'created_at'] },
  { name: 'idx_causer_created_at', columns: ['causer_type', 'causer_id', 'created_at'] },
  { name: 'idx_ip_address', columns: ['ip_address'] },
  { name: 'idx_url', columns: ['url'] },
  { name: 'idx_method', columns: ['method'] },
  { name: 'idx_created_at', columns: ['created_at'] },
  { name: 'idx_batch_uuid', columns: ['batch_uuid'] },
] satisfies IndexDefinition[]);

/**
 * The name an index gets in the database. Where index names are scoped to the table (MySQL),
 * or for the default table, it is the DESIGN.md name. Where they are scoped to the schema
 * (PostgreSQL, SQLite), a second activity table in the same schema would clash with the first,
 * so a non-default table prefixes its index names with the table name: `audit_idx_created_at`.
 */
export function physicalIndexName(table: string, name: string, namesArePerTable: boolean): string {
  if (namesArePerTable || table === DEFAULT_TABLE) return name;
  return derivedIdentifier(table, `_${name}`);
}

/**
 * `table + suffix`, shortened with a hash of the table name when it would exceed the identifier
 * limit, so two long table names never collapse onto the same truncated identifier.
 */
export function derivedIdentifier(table: string, suffix: string): string {
  const full = `${table}${suffix}`;
  if (full.length <= MAX_IDENTIFIER_LENGTH) return full;
  const hash = createHash('sha256').update(table).digest('hex').slice(0, 8);
  const keep = MAX_IDENTIFIER_LENGTH - suffix.length - hash.length - 1;
  return `${table.slice(0, Math.max(keep, 0))}_${hash}${suffix}`.slice(-MAX_IDENTIFIER_LENGTH);
}
