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

/** A row as the drivers read and write it: snake_case columns, values in their database form. */
export type ActivityRow = { [F in ActivityField as F['column']]: RowValue<F> };

/** Any table name maps to the same row shape, so one Kysely instance serves a configurable table. */
export type ActivityDatabase = Record<string, ActivityRow>;

export type ActivityColumn = keyof ActivityRow;

/** The kind of value a column holds; each dialect maps a kind to its own SQL type. */
export type ColumnKind = ColumnType;

export interface ColumnDefinition {
  readonly name: ActivityColumn;
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

/** The columns the migration to `version` adds, in column order. */
export function columnsAddedIn(version: number): readonly ColumnDefinition[] {
  return ACTIVITY_FIELDS.filter((field) => field.since === version).map(columnOf);
}

export interface IndexDefinition {
  /** The DESIGN.md name. */
  readonly name: string;
  readonly columns: readonly ActivityColumn[];
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
