import { LIMITS, type LogInput } from '../core/activity.js';
import type { SecretKeyMatcher } from '../core/redact.js';
import { captureActivityId, captureBatchUuid } from './capture-id.js';
import type { CapturedTransaction, RowChange, RowImage } from './row-change.js';

/** How row changes become activities. */
export interface CaptureMapping {
  /** Which database and slot the stream is: part of every id. */
  readonly streamKey: string;
  /** What the source is (`postgres`, `mariadb`), recorded in `properties.capture.source`. */
  readonly sourceKind: string;
  readonly logName: string;
  /** `subject_type` by `schema.table` or bare table name. */
  readonly subjectTypes: ReadonlyMap<string, string>;
  /** Tables of this schema are named without it (`public` on PostgreSQL, the database on MariaDB). */
  readonly defaultSchema: string;
  /** `schema.table.column` and `table.column` entries that are never recorded. */
  readonly excludedColumns: ReadonlySet<string>;
  /** The redacted keys: columns named like a secret are left out too. */
  readonly isSecretKey: SecretKeyMatcher;
}

/** Composite primary keys are joined with this in `subject_id` (`order_id,line_no` → `17,3`). */
export const COMPOSITE_KEY_SEPARATOR = ',';

/** Properties are kept below the column limit with room for the `capture` entry. */
const PROPERTIES_BUDGET_CHARS = LIMITS.propertiesBytes - 2048;

/** The activities (as `log()` inputs, ids fixed) of one captured transaction, in stream order. */
export function activityInputsOf(transaction: CapturedTransaction, mapping: CaptureMapping): LogInput[] {
  const commitMs = transaction.commitTime.getTime();
  const tag = transaction.tag;
  const batchUuid = tag?.batchUuid ?? captureBatchUuid(mapping.streamKey, transaction.position, commitMs);
  const causer =
    tag?.causerType !== undefined && tag.causerId !== undefined
      ? { type: tag.causerType, id: tag.causerId }
      : null;
  // An untagged change says who wrote it as far as the stream knows: the database user, or null.
  const origin = transaction.origin ?? {};
  const untagged = tag === null ? { source: origin.user ?? null } : {};
  const originFields =
    tag === null
      ? {
          ...(origin.xid === undefined ? {} : { xid: origin.xid }),
          ...(origin.replicationOrigin === undefined ? {} : { replication_origin: origin.replicationOrigin }),
          ...(origin.connectionId === undefined ? {} : { connection_id: origin.connectionId }),
        }
      : {};
  return transaction.changes.map((change, offset) => {
    const index = transaction.firstIndex + offset;
    const tableName = qualifiedName(change, mapping);
    const subjectType =
      mapping.subjectTypes.get(`${change.schema}.${change.table}`) ??
      mapping.subjectTypes.get(change.table) ??
      tableName;
    const subjectId = subjectIdOf(change);
    return {
      id: captureActivityId(mapping.streamKey, transaction.position, index, commitMs),
      logName: mapping.logName,
      description: `${change.event} ${subjectType}${subjectId === null ? '' : ` ${subjectId}`}`,
      event: change.event,
      subject: subjectId === null ? null : { type: subjectType, id: subjectId },
      causer,
      properties: {
        ...propertiesOf(change, mapping, {
          source: mapping.sourceKind,
          table: tableName,
          position: transaction.position,
          index,
          ...originFields,
        }),
        ...untagged,
      },
      batchUuid,
      ipAddress: tag?.ipAddress ?? null,
      url: tag?.url ?? null,
      method: tag?.method ?? null,
      userAgent: tag?.userAgent ?? null,
      createdAt: transaction.commitTime,
    };
  });
}

function qualifiedName(change: RowChange, mapping: CaptureMapping): string {
  return change.schema === mapping.defaultSchema ? change.table : `${change.schema}.${change.table}`;
}

/** The primary key's values, joined; null when the table has no key or a key value is missing. */
function subjectIdOf(change: RowChange): string | null {
  if (change.keyColumns.length === 0) return null;
  const parts: string[] = [];
  for (const column of change.keyColumns) {
    const value = change.new?.[column] ?? change.old?.[column];
    if (value === undefined || value === null) return null;
    parts.push(textOf(value));
  }
  const id = parts.join(COMPOSITE_KEY_SEPARATOR);
  return id.length > LIMITS.nameChars ? null : id;
}

function propertiesOf(
  change: RowChange,
  mapping: CaptureMapping,
  capture: Record<string, unknown>,
): Record<string, unknown> {
  const recorded = (column: string): boolean =>
    !mapping.excludedColumns.has(`${change.schema}.${change.table}.${column}`) &&
    !mapping.excludedColumns.has(`${change.table}.${column}`) &&
    !mapping.isSecretKey(column);
  const properties: Record<string, Record<string, unknown>> = {};
  switch (change.event) {
    case 'created':
      properties.attributes = imageOf(change.new, recorded);
      break;
    case 'deleted':
      properties.old = imageOf(change.old, recorded);
      break;
    case 'truncated':
      break;
    case 'updated': {
      const after = imageOf(change.new, recorded);
      if (change.old === null) {
        // No before-image (the table lacks REPLICA IDENTITY FULL): the new values, as sent.
        properties.attributes = after;
        break;
      }
      const before = imageOf(change.old, recorded);
      const attributes: Record<string, unknown> = {};
      const old: Record<string, unknown> = {};
      for (const [column, value] of Object.entries(after)) {
        if (change.unchanged.includes(column)) continue;
        if (column in before && sameValue(before[column], value)) continue;
        attributes[column] = value;
        old[column] = before[column] ?? null;
      }
      properties.attributes = attributes;
      properties.old = old;
      break;
    }
  }
  const unchanged = change.unchanged.filter(recorded);
  const truncated = fitToBudget(properties);
  return {
    ...properties,
    capture: {
      ...capture,
      ...(unchanged.length > 0 ? { unchanged } : {}),
      ...(truncated.length > 0 ? { truncated } : {}),
    },
  };
}

/** The recorded columns of `image` as JSON values; unchanged (undefined) values are left out. */
function imageOf(image: RowImage | null, recorded: (column: string) => boolean): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  if (image === null) return values;
  for (const [column, value] of Object.entries(image)) {
    if (value === undefined || !recorded(column)) continue;
    values[column] = jsonValueOf(value);
  }
  return values;
}

/**
 * A decoded column value as JSON carries it: bytes as `\x` hex (PostgreSQL's text form), dates
 * as ISO text, numbers JSON cannot hold (NaN, Infinity, past 2^53) as text.
 */
export function jsonValueOf(value: unknown): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER ? value : String(value);
    case 'bigint':
      return value.toString();
    case 'object': {
      if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
      if (Array.isArray(value)) return value.map(jsonValueOf);
      const copy: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value))
        if (inner !== undefined) copy[key] = jsonValueOf(inner);
      return copy;
    }
    default:
      return String(value);
  }
}

function textOf(value: unknown): string {
  const json = jsonValueOf(value);
  return typeof json === 'string' ? json : JSON.stringify(json);
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Replaces the longest values by a note of their size until the properties fit the column
 * (a row with a megabyte of text still becomes an activity); returns the columns cut.
 */
function fitToBudget(properties: Record<string, Record<string, unknown>>): string[] {
  let size = JSON.stringify(properties).length;
  const truncated: string[] = [];
  while (size > PROPERTIES_BUDGET_CHARS) {
    let longest: { image: Record<string, unknown>; column: string; chars: number } | null = null;
    for (const image of Object.values(properties)) {
      for (const [column, value] of Object.entries(image)) {
        const chars = JSON.stringify(value).length;
        if (longest === null || chars > longest.chars) longest = { image, column, chars };
      }
    }
    if (longest === null || longest.chars < 64) break;
    longest.image[longest.column] = `[TRUNCATED ${longest.chars} characters]`;
    if (!truncated.includes(longest.column)) truncated.push(longest.column);
    size = JSON.stringify(properties).length;
  }
  return truncated;
}
