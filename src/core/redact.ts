import { invalid, LIMITS, REDACTED, storableText, type WellFormedString } from './activity.js';

/**
 * Decides whether a key holds a secret. `within` are the keys of the objects around it, outermost
 * first (array indexes may appear and are skipped); only `parent.child` entries read it.
 */
export type SecretKeyMatcher = (key: string, within?: readonly (string | number)[]) => boolean;

/** Entries of at most this many characters (normalized) must be a whole word of the key, not any part of it. */
const SHORT_ENTRY_CHARS = 4;

const SEPARATORS = /[-_. ]/g;

/** `X-Api-Key`, `api_key`, `API KEY` and `apiKey` all become `apikey`. */
function normalizeKey(key: string): string {
  return key.replace(SEPARATORS, '').toLowerCase();
}

/** `basicAuth` → basic, auth; `JWTHeader` → jwt, header; `user-pwd_2` → user, pwd, 2. */
function keyWords(key: string): string[] {
  return key
    .replace(/([\p{Ll}\p{N}])(\p{Lu})/gu, '$1 $2')
    .replace(/(\p{Lu})(\p{Lu}\p{Ll})/gu, '$1 $2')
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u);
}

/** Keys remembered per matcher; past this the memory starts over, so it stays small whatever keys come. */
const MAX_REMEMBERED_KEYS = 2048;
/** Longer keys are rare and are matched each time rather than held in memory. */
const MAX_REMEMBERED_KEY_CHARS = 64;

/**
 * Remembers a matcher's answers: the same few property names come with nearly every activity, and
 * normalizing and splitting a key costs several times more than looking it up.
 */
function remembered(match: (key: string) => boolean): (key: string) => boolean {
  const answers = new Map<string, boolean>();
  return (key) => {
    const known = answers.get(key);
    if (known !== undefined) return known;
    const answer = match(key);
    if (key.length <= MAX_REMEMBERED_KEY_CHARS) {
      if (answers.size >= MAX_REMEMBERED_KEYS) answers.clear();
      answers.set(key, answer);
    }
    return answer;
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Matches a key against normalized names: a long name anywhere in the normalized key
 * (`token` in `csrfToken`), a short one only as the whole key or one of its words, so `auth`
 * finds `basic_auth` and `authCode` but not `author` or `authored_at`.
 */
function nameMatcher(names: readonly string[]): (key: string) => boolean {
  const long = names.filter((name) => name.length > SHORT_ENTRY_CHARS);
  const short = new Set(names.filter((name) => name.length <= SHORT_ENTRY_CHARS));
  const longPattern = long.length === 0 ? null : new RegExp(long.map(escapeRegExp).join('|'));
  // Most keys contain no short name at all; only those few are split into words.
  const shortProbe = short.size === 0 ? null : new RegExp([...short].map(escapeRegExp).join('|'));
  return remembered((key) => {
    const normalized = normalizeKey(key);
    if (longPattern?.test(normalized)) return true;
    if (shortProbe === null || !shortProbe.test(normalized)) return false;
    return short.has(normalized) || keyWords(key).some((word) => short.has(word));
  });
}

/** `credentials.key`: a key matching the last part inside objects matching the others, in order, at any depth. */
function pathMatcher(parts: readonly string[]): SecretKeyMatcher {
  const matchers = parts.map((part) => nameMatcher([part]));
  const own = matchers[matchers.length - 1]!;
  const enclosing = matchers.slice(0, -1);
  return (key, within = []) => {
    if (!own(key)) return false;
    let next = 0;
    for (const outer of within) {
      if (typeof outer === 'string' && enclosing[next]!(outer)) next++;
      if (next === enclosing.length) return true;
    }
    return false;
  };
}

/**
 * The matcher for a redaction list (`ACTIVITY_LOG_REDACT_KEYS`). Keys and entries are compared
 * normalized (lower-cased, without `_`, `-`, `.` and spaces). An entry of more than 4 characters
 * matches every key that contains it; a shorter one only a key that is it or has it as a whole word
 * (words split at other characters and camelCase). An entry with a dot, `credentials.key`, also matches a
 * key matching `key` nested anywhere inside a key matching `credentials`.
 *
 * @example
 * const isSecret = secretKeyMatcher(['api_key', 'auth', 'credentials.key']);
 * isSecret('X-Api-Key'); // true
 * isSecret('author'); // false
 * isSecret('private_key', ['credentials']); // true
 */
export function secretKeyMatcher(entries: readonly string[]): SecretKeyMatcher {
  const names = entries.map(normalizeKey).filter((name) => name !== '');
  if (names.length === 0) return () => false;
  const isSecretName = nameMatcher(names);
  const paths = entries
    .map((entry) =>
      entry
        .split('.')
        .map(normalizeKey)
        .filter((part) => part !== ''),
    )
    .filter((parts) => parts.length > 1)
    .map(pathMatcher);
  if (paths.length === 0) return (key) => isSecretName(key);
  return (key, within) => isSecretName(key) || paths.some((matches) => matches(key, within));
}

/** Whether any step of a dotted path (`profile.credentials.key`) names a secret, given the steps before it. */
export function pathNamesSecret(steps: readonly string[], isSecret: SecretKeyMatcher): boolean {
  return steps.some((step, index) => isSecret(step, steps.slice(0, index)));
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
  isSecret: SecretKeyMatcher,
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
  isSecret: SecretKeyMatcher,
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
  isSecret: SecretKeyMatcher,
  depth: number,
  trail: (string | number)[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let rewroteKey = false;
  for (const rawKey of Object.keys(value)) {
    const secret = isSecret(rawKey, trail);
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
    const item = secret ? REDACTED : copyValue(value[rawKey], isSecret, depth, trail);
    trail.pop();
    if (item === undefined) continue;
    // Assigning `__proto__` would set the copy's prototype and lose the key; JSON keeps it as data.
    if (key === '__proto__') {
      Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
    } else out[key] = item;
  }
  return out;
}

/**
 * The URL with the values of secret-looking parameters replaced by {@link REDACTED}, names kept so
 * the row still shows which parameters came: those of the query, and of the fragment when it holds
 * parameters (`#access_token=…`, `#/route?token=…`). Names are matched as property keys are
 * (percent-decoded; `a[b]` is `b` inside `a`). The password of `scheme://user:password@host` is
 * redacted when `password` is on the list. The path is kept as it is.
 *
 * @example
 * redactUrl('/reset?token=abc&next=%2F', isSecret); // '/reset?token=[REDACTED]&next=%2F'
 */
export function redactUrl(url: string, isSecret: SecretKeyMatcher): string {
  const queryAt = url.indexOf('?');
  const fragmentAt = url.indexOf('#');
  if (queryAt === -1 && fragmentAt === -1 && !url.includes('@')) return url;
  const hasQuery = queryAt !== -1 && (fragmentAt === -1 || queryAt < fragmentAt);
  const baseEnd = hasQuery ? queryAt : fragmentAt === -1 ? url.length : fragmentAt;
  const queryEnd = fragmentAt === -1 ? url.length : fragmentAt;
  const base = url.slice(0, baseEnd);
  const query = hasQuery ? url.slice(queryAt + 1, queryEnd) : '';
  const fragment = fragmentAt === -1 ? '' : url.slice(fragmentAt + 1);
  const redactedBase = redactUserInfo(base, isSecret);
  const redactedQuery = redactParameters(query, isSecret);
  const redactedFragment = redactFragment(fragment, isSecret);
  // Most URLs hold no secret: each part comes back as the very string it was given, and so does the URL.
  if (redactedBase === base && redactedQuery === query && redactedFragment === fragment) return url;
  return `${redactedBase}${hasQuery ? `?${redactedQuery}` : ''}${fragmentAt === -1 ? '' : `#${redactedFragment}`}`;
}

const USER_INFO_PASSWORD = /^([A-Za-z][A-Za-z\d+.-]*:\/\/[^/@:]*:)[^/@]+@/;

function redactUserInfo(base: string, isSecret: SecretKeyMatcher): string {
  if (!base.includes('@') || !isSecret('password')) return base;
  return base.replace(USER_INFO_PASSWORD, `$1${REDACTED}@`);
}

/** A single-page app's route (`#/reset?token=…`) carries its own query; OAuth puts parameters right after `#`. */
function redactFragment(fragment: string, isSecret: SecretKeyMatcher): string {
  const queryAt = fragment.indexOf('?');
  if (queryAt === -1) return redactParameters(fragment, isSecret);
  return `${fragment.slice(0, queryAt + 1)}${redactParameters(fragment.slice(queryAt + 1), isSecret)}`;
}

/** `a=1&token=2` → `a=1&token=[REDACTED]`; the text itself when nothing is secret, without copying it. */
function redactParameters(text: string, isSecret: SecretKeyMatcher): string {
  let pieces: string[] | null = null;
  let copiedUpTo = 0;
  for (let start = 0; start < text.length; ) {
    const ampersandAt = text.indexOf('&', start);
    const end = ampersandAt === -1 ? text.length : ampersandAt;
    const equalsAt = text.indexOf('=', start);
    // Without a name or a value there is nothing to hide.
    if (equalsAt > start && equalsAt < end - 1 && parameterIsSecret(text.slice(start, equalsAt), isSecret)) {
      pieces ??= [];
      pieces.push(text.slice(copiedUpTo, equalsAt + 1), REDACTED);
      copiedUpTo = end;
    }
    if (equalsAt === -1) break;
    start = end + 1;
  }
  if (pieces === null) return text;
  pieces.push(text.slice(copiedUpTo));
  return pieces.join('');
}

function parameterIsSecret(rawName: string, isSecret: SecretKeyMatcher): boolean {
  const name = rawName.includes('%') || rawName.includes('+') ? decodeParameterName(rawName) : rawName;
  if (!name.includes('[')) return isSecret(name);
  const steps = name.split(/[[\]]+/).filter((step) => step !== '');
  return pathNamesSecret(steps, isSecret);
}

function decodeParameterName(rawName: string): string {
  const spaced = rawName.replaceAll('+', ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}
