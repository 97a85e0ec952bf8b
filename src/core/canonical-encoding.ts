import type { Activity } from './activity.js';
import { invalid, LIMITS } from './activity.js';
import { ACTIVITY_FIELDS } from './activity-fields.js';

/**
 * The canonical encoding of an activity: the one byte string that stands for it wherever it goes
 * (the store's `properties` column, a spool record, a hash), the same from every dialect.
 *
 * - The activity as one JSON object keyed by column name (`log_name`, `created_at`): every field
 *   of the first schema version present, `null` where it has no value; a field added by a later
 *   migration only when it has one, so adding a column leaves every stored activity's encoding
 *   as it was.
 * - Object keys sorted by UTF-16 code unit, at every depth (as RFC 8785, JCS, sorts them); no
 *   whitespace; strings escaped as `JSON.stringify` escapes them; numbers as JSON writes them
 *   (`10.5`, `1e+21`, `-0` as `0`).
 * - `created_at` as ISO-8601 in UTC with milliseconds: `2025-11-28T09:30:00.000Z`.
 * - The text as UTF-8 bytes.
 *
 * Test vector: the activity with id `0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2b`, log name `orders`,
 * description `updated order 42`, subject `Order` `42`, event `updated`, causer `User` `7`,
 * properties `{ old: { total: 9.99 }, attributes: { total: 10.5, note: 'é' } }`, batch
 * `0190a4f0-0000-7000-8000-000000000001`, ip `192.0.2.1`, url `/orders/42`, method `PATCH`,
 * user agent `curl/8.5`, created at `2025-11-28T09:30:00.123Z` encodes to
 *
 * ```
 * {"batch_uuid":"0190a4f0-0000-7000-8000-000000000001","causer_id":"7","causer_type":"User",
 * "created_at":"2025-11-28T09:30:00.123Z","description":"updated order 42","event":"updated",
 * "id":"0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2b","ip_address":"192.0.2.1","log_name":"orders",
 * "method":"PATCH","properties":{"attributes":{"note":"é","total":10.5},"old":{"total":9.99}},
 * "subject_id":"42","subject_type":"Order","url":"/orders/42","user_agent":"curl/8.5"}
 * ```
 *
 * (one line, 447 bytes), SHA-256
 * `95c95ba0ba9c19c60c7439e0950ee1552b80148b2dbe896ebb0c3c6c97dc97de`.
 */
export function canonicalEncoding(activity: Activity): Buffer {
  return Buffer.from(canonicalActivityJson(activity), 'utf8');
}

interface Encoding {
  readonly properties: string;
  activity?: string;
}

/**
 * Encodings already made, per activity: the first step that needs one (the store's insert, the
 * spool, or `log()` when it had to measure large properties) makes it, and every later step
 * (a retried or halved insert, the spool after a failed write) reuses it.
 */
const encodings = new WeakMap<Activity, Encoding>();

function encodingOf(activity: Activity): Encoding {
  let encoding = encodings.get(activity);
  if (encoding === undefined) {
    encoding = { properties: canonicalJson(activity.properties) };
    encodings.set(activity, encoding);
  }
  return encoding;
}

/** The canonical text of an activity (see {@link canonicalEncoding}), made once per activity. */
export function canonicalActivityJson(activity: Activity): string {
  const encoding = encodingOf(activity);
  encoding.activity ??= encodeActivity(activity, encoding.properties);
  return encoding.activity;
}

/** The canonical text of an activity's properties: what the store's `properties` column holds. */
export function propertiesJson(activity: Activity): string {
  return encodingOf(activity).properties;
}

/** Keeps the properties' text `log()` made, so no later step serializes them again. */
export function rememberPropertiesJson(activity: Activity, json: string): void {
  encodings.set(activity, { properties: json });
}

/**
 * Refuses a properties snapshot whose JSON text would be over the stored size limit. Most
 * properties are far below it, and a walk that bounds the text's size shows that without writing
 * the text: serializing waits for the flush, off the caller's path. Only properties that could be
 * near the limit are serialized here, to measure them exactly; that text is returned for reuse.
 *
 * @returns The canonical text when it was made, `null` when the bound sufficed.
 * @throws ActivityLogError `VALIDATION_FAILED` naming `properties` when the text is too long.
 */
export function checkPropertiesSize(snapshot: Readonly<Record<string, unknown>>): string | null {
  if (jsonBytesBound(snapshot, LIMITS.propertiesBytes) <= LIMITS.propertiesBytes) return null;
  const json = canonicalJson(snapshot);
  if (json.length * 3 > LIMITS.propertiesBytes) {
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > LIMITS.propertiesBytes) {
      throw invalid(
        'properties',
        `must serialize to at most ${LIMITS.propertiesBytes} bytes of JSON (got ${bytes})`,
      );
    }
  }
  return json;
}

/** The most bytes a string can take in JSON text: `\u001f` is six bytes for one UTF-16 unit. */
const MAX_BYTES_PER_UNIT = 6;
/** The longest number JSON writes, `-0.0000012345678901234567` or `-1.2345678901234567e-308`, rounded up. */
const MAX_NUMBER_BYTES = 32;

/**
 * An upper bound of the UTF-8 size of `JSON.stringify(value)` for plain JSON data (what a
 * properties snapshot holds), giving up as soon as it passes `budget`.
 */
function jsonBytesBound(value: unknown, budget: number): number {
  switch (typeof value) {
    case 'string':
      return value.length * MAX_BYTES_PER_UNIT + 2;
    case 'number':
      return MAX_NUMBER_BYTES;
    case 'boolean':
      return 5;
    case 'object': {
      if (value === null) return 4;
      let bytes = 2;
      if (Array.isArray(value)) {
        for (const item of value) {
          bytes += jsonBytesBound(item, budget - bytes) + 1;
          if (bytes > budget) return bytes;
        }
        return bytes;
      }
      const record = value as Readonly<Record<string, unknown>>;
      for (const key in record) {
        if (!Object.hasOwn(record, key)) continue;
        bytes += key.length * MAX_BYTES_PER_UNIT + 4 + jsonBytesBound(record[key], budget - bytes);
        if (bytes > budget) return bytes;
      }
      return bytes;
    }
    default:
      // Not plain data: only serializing can tell.
      return Number.POSITIVE_INFINITY;
  }
}

/** A field in canonical key order, with how its value is written. */
export interface CanonicalField {
  readonly property: string;
  readonly column: string;
  readonly kind: (typeof ACTIVITY_FIELDS)[number]['kind'];
  /** `"column":`, the key as the encoding writes it. */
  readonly key: string;
  /** A field added after the first schema version is left out while it has no value. */
  readonly omittedWhenNull: boolean;
}

/** Every field in canonical key order (by column name, UTF-16 code units). */
export const CANONICAL_FIELDS: readonly CanonicalField[] = Object.freeze(
  [...ACTIVITY_FIELDS]
    .sort((a, b) => (a.column < b.column ? -1 : a.column > b.column ? 1 : 0))
    .map((field) =>
      Object.freeze({
        property: field.property,
        column: field.column,
        kind: field.kind,
        key: `${JSON.stringify(field.column)}:`,
        omittedWhenNull: (field.since as number) > 1,
      }),
    ),
);

function encodeActivity(activity: Activity, properties: string): string {
  const values = activity as unknown as Readonly<Record<string, unknown>>;
  let text = '';
  for (const field of CANONICAL_FIELDS) {
    const value = values[field.property];
    const isNull = value === null || value === undefined;
    if (isNull && field.omittedWhenNull) continue;
    text += `${text === '' ? '{' : ','}${field.key}`;
    if (field.kind === 'json') text += properties;
    else if (field.kind === 'timestamp') text += `"${(value as Date).toISOString()}"`;
    else text += isNull ? 'null' : JSON.stringify(value);
  }
  return `${text}}`;
}

/**
 * JSON text of `value` with object keys sorted by UTF-16 code unit at every depth, otherwise as
 * `JSON.stringify` writes it (`toJSON` called, `undefined` and functions dropped from objects and
 * written as `null` in arrays, non-finite numbers as `null`).
 */
export function canonicalJson(value: unknown): string {
  return writeValue(value) ?? 'null';
}

function writeValue(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      return value === null ? 'null' : writeObject(value);
    case 'bigint':
      // As JSON.stringify does: a bigint has no JSON form.
      throw new TypeError('Do not know how to serialize a BigInt');
    default:
      return undefined;
  }
}

function writeObject(value: object): string | undefined {
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return writeValue(toJSON.call(value));
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) text += ',';
      text += writeValue(value[i]) ?? 'null';
    }
    return `${text}]`;
  }
  const record = value as Readonly<Record<string, unknown>>;
  const keys = Object.keys(record).sort();
  let text = '{';
  for (const key of keys) {
    const item = writeValue(record[key]);
    if (item === undefined) continue;
    if (text.length > 1) text += ',';
    text += `${JSON.stringify(key)}:${item}`;
  }
  return `${text}}`;
}
