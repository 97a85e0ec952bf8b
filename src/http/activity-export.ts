import type { Activity } from '../core/activity.js';
import { CSV_FIELDS } from '../core/activity-fields.js';
import { type ActivityJson, activityToJson } from '../core/activity-json.js';

/**
 * A stored activity as the list API and the exports answer it: its JSON and `erased`, always
 * present, true when its personal data was erased (its sealed values replaced by commitments).
 */
export type StoredActivityJson = ActivityJson & { readonly erased: boolean };

/** An activity of a page as the list API and the exports answer it. */
export function storedActivityToJson(
  activity: Activity,
  erasedIds: ReadonlySet<string> | undefined,
): StoredActivityJson {
  // Set on the fresh object rather than spread into another: an export makes one per row.
  const json = activityToJson(activity) as ActivityJson & { erased: boolean };
  json.erased = erasedIds?.has(activity.id) === true;
  return json;
}

/** Columns of a CSV export, in order; `properties` is the JSON text of the properties. */
export const CSV_COLUMNS: readonly (keyof ActivityJson)[] = CSV_FIELDS.map((field) => field.column);

/**
 * One CSV cell, always quoted. Text a spreadsheet would run as a formula (starting with `=`, `+`,
 * `-`, `@`, a tab or a carriage return) gets a leading `'`, so opening an export cannot run
 * what an attacker logged.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '""';
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return `"${text.replaceAll('"', '""')}"`;
}

/** The header line of a CSV export, CRLF-terminated as RFC 4180 asks; `erased` comes last. */
export function csvHeader(): string {
  return `${[...CSV_COLUMNS, 'erased'].join(',')}\r\n`;
}

/** One activity as a CSV line; `erased` is `"true"` or `"false"`. */
export function csvLine(activity: StoredActivityJson): string {
  const cells = CSV_COLUMNS.map((column) => csvCell(activity[column]));
  cells.push(csvCell(String(activity.erased === true)));
  return `${cells.join(',')}\r\n`;
}

/** One activity as an NDJSON line. */
export function ndjsonLine(activity: StoredActivityJson): string {
  return `${JSON.stringify(activity)}\n`;
}
