import type { Activity } from './activity.js';
import { ACTIVITY_FIELDS, type ActivityJsonValues } from './activity-fields.js';

/** An activity as plain JSON (queue jobs, spool records, HTTP): snake_case, `created_at` as ISO-8601. */
export type ActivityJson = ActivityJsonValues;

type Converter = (value: unknown) => unknown;

const toJsonValue = (kind: string): Converter | null =>
  kind === 'timestamp' ? (value) => (value as Date).toISOString() : null;

const fromJsonValue = (kind: string): Converter | null =>
  kind === 'timestamp' ? (value) => new Date(value as string) : null;

/** [property, column, to JSON, from JSON, nullable] per field, in column order, as JSON keys are. */
const CODEC = ACTIVITY_FIELDS.map(
  (field) =>
    [
      field.property,
      field.column,
      toJsonValue(field.kind),
      fromJsonValue(field.kind),
      field.nullable && field.kind !== 'json',
    ] as const,
);

export function activityToJson(activity: Activity): ActivityJson {
  const source = activity as unknown as Readonly<Record<string, unknown>>;
  const json: Record<string, unknown> = {};
  for (const [property, column, convert] of CODEC) {
    const value = source[property];
    json[column] = convert === null ? value : convert(value);
  }
  return json as ActivityJson;
}

/**
 * Rebuilds an activity from JSON this library wrote (a queue job, a spool record). It was validated
 * when it was logged, so only the shape is restored here, not re-checked.
 */
export function activityFromJson(json: ActivityJson): Activity {
  const source = json as unknown as Readonly<Record<string, unknown>>;
  const activity: Record<string, unknown> = {};
  for (const [property, column, , convert, nullable] of CODEC) {
    const value = source[column];
    // A record written before a column existed has no key for it.
    if (value === undefined && nullable) activity[property] = null;
    else activity[property] = convert === null ? value : convert(value);
  }
  return Object.freeze(activity) as unknown as Activity;
}
