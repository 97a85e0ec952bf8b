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
 * Follows JSON.stringify's rules (toJSON, undefined/functions dropped) so the stored JSON equals the copy.
 */
export function snapshotProperties(
  properties: Readonly<Record<string, unknown>>,
  isSecret: (key: string) => boolean,
): Record<string, unknown> {
  if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) {
    throw invalid('properties', 'must be a plain object');
  }
  return copyObject(properties, isSecret, 0, []);
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

function copyValue(
  value: unknown,
  isSecret: (key: string) => boolean,
  depth: number,
  trail: (string | number)[],
): unknown {
  switch (typeof value) {
    case 'string':
      return storableAt(value, trail);
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'object': {
      if (value === null) return null;
      if (depth >= LIMITS.propertiesDepth) {
        throw invalid(
          'properties',
          `must not nest deeper than ${LIMITS.propertiesDepth} levels (is it circular?)`,
        );
      }
      const withJson = value as { toJSON?: unknown };
      if (typeof withJson.toJSON === 'function') {
        return copyValue((withJson.toJSON as () => unknown).call(value), isSecret, depth + 1, trail);
      }
      if (Array.isArray(value)) {
        const out: unknown[] = new Array(value.length);
        for (let i = 0; i < value.length; i++) {
          trail.push(i);
          const item = copyValue(value[i], isSecret, depth + 1, trail);
          trail.pop();
          out[i] = item === undefined ? null : item;
        }
        return out;
      }
      return copyObject(value as Record<string, unknown>, isSecret, depth + 1, trail);
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
  for (const rawKey of Object.keys(value)) {
    trail.push(rawKey);
    const key = storableAt(rawKey, trail);
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
