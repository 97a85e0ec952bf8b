import type { Activity } from '../core/activity.js';
import { ACTIVITY_FIELDS } from '../core/activity-fields.js';
import type { StoreDialect } from './store-dialect.js';

/** A stored row's activity columns as the activity they hold, in the form `query()` returns it. */
export function decodeActivityRow(row: object, dialect: StoreDialect): Activity {
  const values = row as Readonly<Record<string, unknown>>;
  const activity: Record<string, unknown> = {};
  for (const field of ACTIVITY_FIELDS) {
    const value = values[field.column];
    activity[field.property] =
      field.kind === 'json'
        ? decodeProperties(value)
        : field.kind === 'timestamp'
          ? dialect.decodeTimestamp(value)
          : value;
  }
  return Object.freeze(activity) as unknown as Activity;
}

/** JSON columns come back as text (MariaDB, SQLite) or already parsed (PostgreSQL jsonb, MySQL 8 JSON). */
function decodeProperties(value: unknown): Readonly<Record<string, unknown>> {
  if (value === null || value === undefined) return {};
  return (typeof value === 'string' ? JSON.parse(value) : value) as Record<string, unknown>;
}
