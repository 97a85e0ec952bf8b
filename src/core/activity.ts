import { isIP } from 'node:net';
import { type ActivityValues, maxBytesOf, maxCharsOf, type PlainInputValues } from './activity-fields.js';
import { ActivityLogError } from './errors.js';
import { parseIsoTimestamp } from './iso-timestamp.js';

/**
 * One recorded activity: who did what to which record, from where, when. Immutable once built.
 * Its fields are those of {@link ACTIVITY_FIELDS}: `id` is the UUIDv7 made when `log()` was
 * called; `createdAt` is when `log()` was called (or the override), millisecond precision, UTC.
 */
export type Activity = ActivityValues;

/** A record reference: the `subject_*` / `causer_*` columns. */
export interface ModelRef {
  readonly type: string;
  readonly id: string | number;
}

/** Anything a subject or causer can be given as: a `{ type, id }` reference, or a model the resolver maps. */
export type ModelLike = ModelRef | object;

/** Turns an application object (an ORM entity, a user) into a `{ type, id }` reference, or null if it cannot. */
export type ModelResolver = (model: object) => ModelRef | null;

/** What `log()` accepts. Only `description` is required. */
export interface LogInput extends PlainInputValues {
  readonly description: string;
  readonly logName?: string | undefined;
  readonly event?: string | null | undefined;
  readonly subject?: ModelLike | null | undefined;
  readonly causer?: ModelLike | null | undefined;
  readonly properties?: Readonly<Record<string, unknown>> | null | undefined;
  readonly batchUuid?: string | null | undefined;
  readonly ipAddress?: string | null | undefined;
  readonly url?: string | null | undefined;
  readonly method?: string | null | undefined;
  readonly userAgent?: string | null | undefined;
  readonly createdAt?: Date | string | number | undefined;
  /** A UUID chosen by the caller, so that a retried call (e.g. an HTTP ingest) stores once. */
  readonly id?: string | undefined;
}

/** The limits of {@link ACTIVITY_FIELDS}, by the names messages and callers know them by. */
export const LIMITS = Object.freeze({
  descriptionBytes: maxBytesOf('description'),
  propertiesBytes: maxBytesOf('properties'),
  nameChars: maxCharsOf('logName'),
  urlChars: maxCharsOf('url'),
  methodChars: maxCharsOf('method'),
  userAgentChars: maxCharsOf('userAgent'),
  /** The `ip_address` column: the longest IPv6 text (with an embedded IPv4 address) is 45. */
  ipAddressChars: maxCharsOf('ipAddress'),
  /** Containers nested, counting `properties` itself: MariaDB's JSON check refuses 32. */
  propertiesDepth: 31,
});

export const DEFAULT_LOG_NAME = 'default';
export { DEFAULT_REDACT_KEYS } from '../config/default-redact-keys.js';
export const REDACTED = '[REDACTED]';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return value.length === 36 && UUID_PATTERN.test(value);
}

export function invalid(field: string, message: string, details?: unknown): ActivityLogError {
  return new ActivityLogError('VALIDATION_FAILED', `${field} ${message}`, { field, details });
}

/** The default resolver: `{ type, id }` as given; otherwise the constructor name and the `id` property. */
export const defaultModelResolver: ModelResolver = (model) => {
  const candidate = model as { type?: unknown; id?: unknown; constructor?: { name?: unknown } };
  const id = candidate.id;
  if (typeof id !== 'string' && typeof id !== 'number' && typeof id !== 'bigint') return null;
  if (typeof candidate.type === 'string') return { type: candidate.type, id: String(id) };
  const name = candidate.constructor?.name;
  if (typeof name !== 'string' || name === '' || name === 'Object') return null;
  return { type: name, id: String(id) };
};

export function resolveModel(
  field: 'subject' | 'causer',
  model: ModelLike,
  resolver: ModelResolver,
): { readonly type: string; readonly id: string } {
  if (typeof model !== 'object' || model === null) {
    throw invalid(field, 'must be { type, id } or a model object with an id');
  }
  // The default resolver turns a numeric id into text, so it is checked before and after.
  checkNumericId(field, (model as { id?: unknown }).id);
  const ref = resolver(model);
  if (ref === null) {
    throw invalid(
      field,
      'must be { type, id } or a model the resolver understands (a class instance with an `id`)',
    );
  }
  checkNumericId(field, ref.id);
  return { type: checkName(`${field}.type`, ref.type), id: checkName(`${field}.id`, String(ref.id)) };
}

/** A number past 2^53 has already lost digits (JSON and JavaScript round it): the row would name another record. */
function checkNumericId(field: 'subject' | 'causer', id: unknown): void {
  if (typeof id === 'number' && !Number.isSafeInteger(id)) {
    throw invalid(
      `${field}.id`,
      `must be a string or a whole number of at most ${Number.MAX_SAFE_INTEGER} (got ${id}); send larger ids as strings`,
    );
  }
}

/** String methods of ES2024, present in Node 20 but not in the ES2023 library types. */
export type WellFormedString = string & { isWellFormed(): boolean; toWellFormed(): string };

/**
 * Text every dialect can store: a NUL character (`\u0000`) is refused, as PostgreSQL refuses it in
 * text and JSON; half of a surrogate pair (a string cut inside an emoji) becomes U+FFFD, as the
 * UTF-8 encoders of MySQL and SQLite drivers make it anyway, instead of failing on PostgreSQL
 * long after `log()` returned.
 */
export function storableText(field: string, value: string): string {
  if (value.includes('\u0000')) {
    throw invalid(field, 'must not contain NUL characters (\\u0000), which databases do not store in text');
  }
  const text = value as WellFormedString;
  return text.isWellFormed() ? value : text.toWellFormed();
}

export function checkName(field: string, value: unknown, maxChars: number = LIMITS.nameChars): string {
  if (typeof value !== 'string') throw invalid(field, `must be a string (got ${typeName(value)})`);
  if (value.length === 0) throw invalid(field, 'must not be empty');
  if (value.length > maxChars)
    throw invalid(field, `must be at most ${maxChars} characters (got ${value.length})`);
  return storableText(field, value);
}

export function optionalName(
  field: string,
  value: unknown,
  maxChars: number = LIMITS.nameChars,
): string | null {
  return value === undefined || value === null ? null : checkName(field, value, maxChars);
}

export function checkDescription(value: unknown): string {
  if (typeof value !== 'string')
    throw invalid('description', `is required and must be a string (got ${typeName(value)})`);
  if (value.trim().length === 0) throw invalid('description', 'must not be empty');
  const text = storableText('description', value);
  // Only measure bytes when the string could be over the limit (3 bytes per UTF-16 unit at most).
  if (text.length * 3 > LIMITS.descriptionBytes) {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > LIMITS.descriptionBytes) {
      throw invalid('description', `must be at most ${LIMITS.descriptionBytes} bytes (got ${bytes})`);
    }
  }
  return text;
}

/**
 * An address as `net.isIP` reads it, kept as written. A zone id (`fe80::1%eth0`, ASCII by isIP's
 * rules) is kept when the whole text fits the column.
 */
export function checkIpAddress(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || isIP(value) === 0) {
    throw invalid('ipAddress', `must be an IPv4 or IPv6 address (got ${JSON.stringify(value)})`);
  }
  if (value.length > LIMITS.ipAddressChars) {
    throw invalid(
      'ipAddress',
      `must be at most ${LIMITS.ipAddressChars} characters, zone id included (got ${value.length})`,
    );
  }
  return value;
}

export function checkMethod(value: unknown): string | null {
  const method = optionalName('method', value, LIMITS.methodChars);
  if (method === null) return null;
  // Upper-casing can lengthen text ('ß' becomes 'SS'); the column holds what is stored.
  const upper = method.toUpperCase();
  if (upper.length > LIMITS.methodChars) {
    throw invalid(
      'method',
      `must be at most ${LIMITS.methodChars} characters upper-cased (got ${upper.length})`,
    );
  }
  return upper;
}

export function checkUserAgent(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw invalid('userAgent', `must be a string (got ${typeName(value)})`);
  // A user agent is request metadata the caller does not control; keep the activity, cut the
  // header and drop what no column stores.
  const cut = value.length > LIMITS.userAgentChars ? value.slice(0, LIMITS.userAgentChars) : value;
  return storableText('userAgent', cut.replaceAll('\u0000', ''));
}

export function checkBatchUuid(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !isUuid(value)) {
    throw invalid('batchUuid', `must be a UUID (got ${JSON.stringify(value)})`);
  }
  return value.toLowerCase();
}

/** `created_at` is always within 1970-01-01 and 9999-12-31T23:59:59.999Z (epoch milliseconds). */
export const CREATED_AT_MIN_MS = 0;
export const CREATED_AT_MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

export function checkCreatedAt(value: unknown): Date {
  // Strings are read as strict ISO-8601 (UTC without an offset), not by JavaScript's lenient
  // parser, which takes "1" for 2001 and a time without offset for the server's local time.
  const date =
    value instanceof Date
      ? new Date(value.getTime())
      : typeof value === 'string'
        ? parseIsoTimestamp(value)
        : typeof value === 'number'
          ? new Date(value)
          : null;
  if (date === null || Number.isNaN(date.getTime())) {
    throw invalid(
      'createdAt',
      `must be a Date, an ISO-8601 string (2025-11-28T09:30:00Z) or epoch milliseconds (got ${JSON.stringify(value)})`,
    );
  }
  const year = date.getUTCFullYear();
  if (year < 1970 || year > 9999)
    throw invalid('createdAt', `must be between 1970 and 9999 (got ${date.toISOString()})`);
  return date;
}

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
