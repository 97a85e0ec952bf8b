/** ISO-8601 timestamps as the API and `log()` read them: strict, and UTC unless an offset says otherwise. */

const ISO_8601 =
  /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+\- ]\d{2}:?\d{2})?)?$/i;

/**
 * `2025-11-28`, `2025-11-28T09:30:00Z`, `2025-11-28T09:30:00+02:00`. A time without an offset is
 * UTC, as `created_at` is (JavaScript alone would read it as local time), and a `+` that the query
 * string decoded to a space is read as `+`.
 */
export function parseIsoTimestamp(value: string): Date | null {
  const match = ISO_8601.exec(value);
  if (match === null) return null;
  const [, day, time, offset] = match;
  // JavaScript rolls 2025-02-30 over to March 2; a filter should say what it means.
  const midnight = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(midnight.getTime()) || midnight.toISOString().slice(0, 10) !== day) return null;
  const zone = offset === undefined ? 'Z' : offset.startsWith(' ') ? `+${offset.slice(1)}` : offset;
  const date = new Date(time === undefined ? `${day}T00:00:00Z` : `${day}T${time}${zone}`);
  return Number.isNaN(date.getTime()) ? null : date;
}
