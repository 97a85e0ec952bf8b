import { CSV_FIELDS } from '../core/activity-fields.js';
import type { ActivityJson } from '../core/activity-json.js';

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

/** The header line of a CSV export, CRLF-terminated as RFC 4180 asks. */
export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

/** One activity as a CSV line. */
export function csvLine(activity: ActivityJson): string {
  return `${CSV_COLUMNS.map((column) => csvCell(activity[column])).join(',')}\r\n`;
}

/** One activity as an NDJSON line. */
export function ndjsonLine(activity: ActivityJson): string {
  return `${JSON.stringify(activity)}\n`;
}
