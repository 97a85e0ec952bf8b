import {
  checkIpAddress,
  checkMethod,
  checkName,
  checkUserAgent,
  isUuid,
  LIMITS,
  type ModelResolver,
  resolveModel,
} from './activity.js';
import { type ActivityContext, contextCauser } from './context.js';

/** The prefix of the logical message (PostgreSQL) that carries a transaction's tag. */
export const TRANSACTION_TAG_PREFIX = 'activity-log';

/** The table (MariaDB/MySQL) whose rows carry a transaction's tag, keyed by connection id. */
export const CAPTURE_CONTEXT_TABLE = 'activity_log_capture_context';

/**
 * The request context a transaction is tagged with: who caused its row changes and from where.
 * Change capture gives it to every activity made from that transaction.
 */
export interface TransactionTag {
  readonly causerType?: string;
  readonly causerId?: string;
  readonly batchUuid?: string;
  readonly ipAddress?: string;
  readonly url?: string;
  readonly method?: string;
  readonly userAgent?: string;
}

const TEXT_FIELDS = [
  'causerType',
  'causerId',
  'batchUuid',
  'ipAddress',
  'url',
  'method',
  'userAgent',
] as const;

/** Names in the JSON the tag travels as (the column names, like HTTP bodies). */
const JSON_NAMES: Readonly<Record<(typeof TEXT_FIELDS)[number], string>> = {
  causerType: 'causer_type',
  causerId: 'causer_id',
  batchUuid: 'batch_uuid',
  ipAddress: 'ip_address',
  url: 'url',
  method: 'method',
  userAgent: 'user_agent',
};

/** The tag the current request context (or the given causer) makes; empty outside any context. */
export function transactionTagOf(
  context: ActivityContext | undefined,
  resolver: ModelResolver,
  causer?: object | null,
): TransactionTag {
  const model = causer !== undefined ? causer : contextCauser(context);
  const ref = model === null ? null : resolveModel('causer', model, resolver);
  const tag: Record<string, string> = {};
  if (ref !== null) {
    tag.causerType = ref.type;
    tag.causerId = ref.id;
  }
  if (context?.batchUuid !== undefined) tag.batchUuid = context.batchUuid;
  if (context?.ipAddress !== undefined) tag.ipAddress = context.ipAddress;
  if (context?.url !== undefined) tag.url = context.url;
  if (context?.method !== undefined) tag.method = context.method;
  if (context?.userAgent !== undefined) tag.userAgent = context.userAgent;
  return Object.freeze(tag);
}

/**
 * The tag as JSON text. It is always sent as a bound parameter, never spliced into SQL, and read
 * back with {@link decodeTransactionTag}, so no value in it can end the tag or run as a statement.
 */
export function encodeTransactionTag(tag: TransactionTag): string {
  const json: Record<string, string> = { v: '1' };
  for (const field of TEXT_FIELDS) {
    const value = tag[field];
    if (value !== undefined) json[JSON_NAMES[field]] = value;
  }
  return JSON.stringify(json);
}

/** The tag in `text`, or null when it is not one this library wrote (a foreign message, garbage). */
export function decodeTransactionTag(text: string): TransactionTag | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || (parsed as { v?: unknown }).v !== '1') return null;
  const tag: Record<string, string> = {};
  for (const field of TEXT_FIELDS) {
    const value = (parsed as Record<string, unknown>)[JSON_NAMES[field]];
    // A value `log()` would refuse is left out: a tag never makes capture fail.
    if (typeof value === 'string' && value !== '' && acceptable(field, value)) tag[field] = value;
  }
  if ((tag.causerType === undefined) !== (tag.causerId === undefined)) {
    delete tag.causerType;
    delete tag.causerId;
  }
  return Object.freeze(tag);
}

function acceptable(field: (typeof TEXT_FIELDS)[number], value: string): boolean {
  try {
    switch (field) {
      case 'batchUuid':
        return isUuid(value);
      case 'ipAddress':
        return checkIpAddress(value) !== null;
      case 'method':
        return checkMethod(value) !== null;
      case 'userAgent':
        return checkUserAgent(value) !== null;
      case 'url':
        return checkName('url', value, LIMITS.urlChars) === value;
      default:
        return checkName(field, value) === value;
    }
  } catch {
    return false;
  }
}
