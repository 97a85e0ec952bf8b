import {
  type Activity,
  checkBatchUuid,
  checkCreatedAt,
  checkDescription,
  checkIpAddress,
  checkMethod,
  checkName,
  checkUserAgent,
  DEFAULT_LOG_NAME,
  invalid,
  isUuid,
  LIMITS,
  type LogInput,
  type ModelLike,
  type ModelResolver,
  optionalName,
  REDACTED,
  resolveModel,
  storableText,
} from './activity.js';
import { PLAIN_INPUT_FIELDS, type PlainInputField } from './activity-fields.js';
import { checkPropertiesSize, rememberPropertiesJson } from './canonical-encoding.js';
import { type ActivityContext, contextCauser } from './context.js';
import { ActivityLogError } from './errors.js';
import { newActivityId } from './ids.js';
import { pathNamesSecret, redactUrl, type SecretKeyMatcher, snapshotProperties } from './redact.js';

export interface BuildOptions {
  readonly resolveModel: ModelResolver;
  readonly isSecretKey: SecretKeyMatcher;
}

const EMPTY_PROPERTIES: Readonly<Record<string, unknown>> = Object.freeze({});
const PLACEHOLDER = /:(subject|causer|properties)\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)/g;

/**
 * Turns what the caller passed (plus the ambient context) into a validated, frozen Activity.
 * Everything is fixed here, at `log()` time: id, timestamp, context and a snapshot of the properties.
 */
export function buildActivity(
  input: LogInput,
  context: ActivityContext | undefined,
  options: BuildOptions,
): Activity {
  if (typeof input !== 'object' || input === null) throw invalid('activity', 'must be an object');
  const description = checkDescription(input.description);
  const logName = input.logName === undefined ? DEFAULT_LOG_NAME : checkName('logName', input.logName);
  const event = optionalName('event', input.event);

  const subjectModel = input.subject ?? null;
  const causerModel = input.causer !== undefined ? input.causer : contextCauser(context);
  const subject = subjectModel === null ? null : resolveModel('subject', subjectModel, options.resolveModel);
  const causer = causerModel === null ? null : resolveModel('causer', causerModel, options.resolveModel);

  const properties =
    input.properties === undefined || input.properties === null
      ? EMPTY_PROPERTIES
      : snapshotProperties(input.properties, options.isSecretKey);
  const propertiesText = properties === EMPTY_PROPERTIES ? null : checkPropertiesSize(properties);

  let id: string;
  if (input.id === undefined) {
    id = newActivityId();
  } else {
    if (typeof input.id !== 'string' || !isUuid(input.id)) throw invalid('id', 'must be a UUID');
    id = input.id.toLowerCase();
  }

  const url = input.url !== undefined ? input.url : (context?.url ?? null);
  const activity = {
    id,
    logName,
    description: description.includes(':')
      ? storableText(
          'description',
          fillPlaceholders(description, subjectModel, causerModel, properties, options.isSecretKey),
        )
      : description,
    subjectType: subject === null ? null : subject.type,
    subjectId: subject === null ? null : subject.id,
    event,
    causerType: causer === null ? null : causer.type,
    causerId: causer === null ? null : causer.id,
    properties,
    batchUuid: checkBatchUuid(input.batchUuid !== undefined ? input.batchUuid : context?.batchUuid),
    ipAddress: checkIpAddress(input.ipAddress !== undefined ? input.ipAddress : context?.ipAddress),
    url: storedUrl(optionalName('url', url, LIMITS.urlChars), options.isSecretKey),
    method: checkMethod(input.method !== undefined ? input.method : context?.method),
    userAgent: checkUserAgent(input.userAgent !== undefined ? input.userAgent : context?.userAgent),
    createdAt: input.createdAt === undefined ? new Date() : checkCreatedAt(input.createdAt),
  } satisfies Omit<Activity, PlainInputField['property']>;
  const values = activity as Record<string, unknown>;
  for (const field of PLAIN_INPUT_FIELDS) {
    values[field.property] = optionalName(
      field.property,
      (input as unknown as Readonly<Record<string, unknown>>)[field.property],
      field.maxChars,
    );
  }
  if (activity.description.length * 3 > LIMITS.descriptionBytes) checkDescription(activity.description);
  const built = Object.freeze(activity) as unknown as Activity;
  if (propertiesText !== null) rememberPropertiesJson(built, propertiesText);
  return built;
}

/**
 * The URL with its secret parameters redacted, cut to the column's limit: `[REDACTED]` can be
 * longer than the value it replaces, and a URL that was valid must not fail the log because of it.
 */
function storedUrl(url: string | null, isSecretKey: SecretKeyMatcher): string | null {
  if (url === null) return null;
  const redacted = redactUrl(url, isSecretKey);
  if (redacted.length <= LIMITS.urlChars) return redacted;
  // Never cut between the two halves of a surrogate pair.
  const code = redacted.charCodeAt(LIMITS.urlChars - 1);
  return redacted.slice(0, code >= 0xd800 && code <= 0xdbff ? LIMITS.urlChars - 1 : LIMITS.urlChars);
}

/** Validates every input before any is accepted, naming the failing one as `[i].field`. */
export function buildActivities(
  inputs: readonly LogInput[],
  context: ActivityContext | undefined,
  options: BuildOptions,
): Activity[] {
  if (!Array.isArray(inputs)) throw invalid('activities', 'must be an array');
  const firstIndexOf = new Map<string, number>();
  return inputs.map((input, index) => {
    let activity: Activity;
    try {
      activity = buildActivity(input, context, options);
    } catch (error) {
      if (error instanceof ActivityLogError && error.code === 'VALIDATION_FAILED') {
        const field = `[${index}].${error.field ?? 'activity'}`;
        throw new ActivityLogError('VALIDATION_FAILED', `${field}: ${error.message}`, {
          field,
          cause: error,
        });
      }
      throw error;
    }
    // Two activities with one id would be stored once, the second silently dropped.
    const first = firstIndexOf.get(activity.id);
    if (first !== undefined) {
      throw invalid(
        `[${index}].id`,
        `[${index}].id: repeats the id of [${first}]; each activity needs its own`,
      );
    }
    firstIndexOf.set(activity.id, index);
    return activity;
  });
}

/** `:subject.name`, `:causer.email`, `:properties.total` (dot paths allowed); unknown paths stay as written. */
function fillPlaceholders(
  description: string,
  subject: ModelLike | null,
  causer: ModelLike | null,
  properties: Readonly<Record<string, unknown>>,
  isSecretKey: SecretKeyMatcher,
): string {
  return description.replace(PLACEHOLDER, (match, root: string, path: string) => {
    // The models are read as they are, so a secret-looking field is redacted here as in properties.
    if (root !== 'properties' && pathNamesSecret(path.split('.'), isSecretKey)) return REDACTED;
    const base = root === 'subject' ? subject : root === 'causer' ? causer : properties;
    const value = readPath(base, path);
    if (value === undefined || value === null || typeof value === 'object' || typeof value === 'function') {
      return match;
    }
    return String(value);
  });
}

function readPath(base: unknown, path: string): unknown {
  let value = base;
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}
