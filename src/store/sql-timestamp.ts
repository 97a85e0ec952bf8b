/**
 * `created_at` as fixed-width UTC text, `YYYY-MM-DD HH:MM:SS.sss`: what MySQL DATETIME(3) accepts
 * without any session time zone involved, and what SQLite stores so that text order is time order
 * (activities are limited to the years 1970-9999, so the width never changes).
 */
export function toSqlTimestamp(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

/** Reads {@link toSqlTimestamp} text (or a Date a driver already made) back as a UTC instant. */
export function fromSqlTimestamp(value: unknown): Date {
  if (value instanceof Date) return value;
  const text = String(value);
  return new Date(`${text.slice(0, 10)}T${text.slice(11)}Z`);
}
