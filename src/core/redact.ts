import { invalid, LIMITS, REDACTED, storableText, type WellFormedString } from './activity.js';

/** Case-insensitive "contains" matcher for keys that look secret (`api_token`, `passwordConfirmation`…). */
export function secretKeyMatcher(keys: readonly string[]): (key: string) => boolean {
  if (keys.length === 0) return () => false;
  const escaped = keys.map((key) => key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const pattern = new RegExp(escaped.join('|'), 'i');
  return (key) => pattern.test(key);
}

/**
 * Copies `properties` into plain JSON data, replacing the values of secret-looking keys.
 * The copy is what gets stored, so later changes to the caller's object do not leak into the log.
 * Follows JSON.stringify's rules (toJSON read once, undefined/functions dropped) so the stored JSON
 * equals the copy, and refuses what some database would refuse or read back otherwise: nesting
 * past {@link LIMITS.propertiesDepth}, numbers JSON does not carry exactly, NUL characters.
 */
export function snapshotProperties(
  properties: Readonly<Record<string, unknown>>,
  isSecret: (key: string) => boolean,
): Record<string, unknown> {
  if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) {
    throw invalid('properties', 'must be a plain object');
  }
  return copyObject(properties, isSecret, 1, []);
}

/** `properties.lines[2].note`: where in the properties a value sits, built only for an error. */
function pathOf(trail: readonly (string | number)[]): string {
  return trail.reduce<string>(
    (path, step) => (typeof step === 'number' ? `${path}[${step}]` : `${path}.${step}`),
    'properties',
  );
}

/** Text as {@link storableText} keeps it; the check is on the hot path, the path only on failure. */
function storableAt(value: string, trail: readonly (string | number)[]): string {
  if (!value.includes('\u0000') && (value as WellFormedString).isWellFormed()) return value;
  return storableText(pathOf(trail), value);
}

/**
 * A number every dialect reads back as it was given. NaN and ±Infinity have no JSON form (JSON
 * writes null); past 2^53 − 1 whole numbers have already lost digits (an id of 2^53 + 1 arrives
 * as 2^53), so both are refused. -0 is written as 0 by JSON, so it is stored as 0.
 */
function storableNumber(value: number, trail: readonly (string | number)[]): number {
  if (value <= Number.MAX_SAFE_INTEGER && value >= -Number.MAX_SAFE_INTEGER) {
    return value === 0 ? 0 : value;
  }
  if (Number.isNaN(value) || !Number.isFinite(value)) {
    throw invalid(pathOf(trail), `must be a finite number (got ${value}); JSON has no NaN or Infinity`);
  }
  throw invalid(
    pathOf(trail),
    `must be at most ${Number.MAX_SAFE_INTEGER} in magnitude (got ${value}): larger numbers have lost digits in JavaScript; send them as strings`,
  );
}

/** `depth` is the nesting level of the container holding `value`; properties itself is level 1. */
function copyValue(
  value: unknown,
  isSecret: (key: string) => boolean,
  depth: number,
  trail: (string | number)[],
): unknown {
  let json = value;
  if (typeof value === 'object' && value !== null) {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') json = toJSON.call(value);
  }
  switch (typeof json) {
    case 'string':
      return storableAt(json, trail);
    case 'boolean':
      return json;
    case 'number':
      return storableNumber(json, trail);
    case 'bigint':
      return json.toString();
    case 'object': {
      if (json === null) return null;
      if (depth >= LIMITS.propertiesDepth) {
        throw invalid(
          pathOf(trail),
          `must not nest deeper than ${LIMITS.propertiesDepth} levels, counting properties itself (is it circular?)`,
        );
      }
      if (Array.isArray(json)) {
        const out: unknown[] = new Array(json.length);
        for (let i = 0; i < json.length; i++) {
          trail.push(i);
          const item = copyValue(json[i], isSecret, depth + 1, trail);
          trail.pop();
          out[i] = item === undefined ? null : item;
        }
        return out;
      }
      return copyObject(json as Record<string, unknown>, isSecret, depth + 1, trail);
    }
    default:
      return undefined;
  }
}

function copyObject(
  value: Readonly<Record<string, unknown>>,
  isSecret: (key: string) => boolean,
  depth: number,
  trail: (string | number)[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let rewroteKey = false;
  for (const rawKey of Object.keys(value)) {
    trail.push(rawKey);
    const key = storableAt(rawKey, trail);
    if (key !== rawKey) rewroteKey = true;
    // Keys are distinct until half surrogates become U+FFFD; then one value would silently win.
    if (rewroteKey && Object.hasOwn(out, key)) {
      trail[trail.length - 1] = key;
      throw invalid(
        pathOf(trail),
        'is two keys once half surrogate pairs are replaced with U+FFFD; one value would be lost',
      );
    }
    const item = isSecret(key) ? REDACTED : copyValue(value[rawKey], isSecret, depth, trail);
    trail.pop();
    if (item === undefined) continue;
    // Assigning `__proto__` would set the copy's prototype and lose the key; JSON keeps it as data.
    if (key === '__proto__') {
      Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
    } else out[key] = item;
  }
  return out;
}

/** Serializes a properties snapshot and enforces the stored size limit. */
export function serializeProperties(snapshot: Readonly<Record<string, unknown>>): string {
  const json = JSON.stringify(snapshot);
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
