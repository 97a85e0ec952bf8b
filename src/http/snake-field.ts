import { ACTIVITY_FIELDS, type ActivityFieldDefinition } from '../core/activity-fields.js';
import { ActivityLogError } from '../core/errors.js';

/**
 * The library names fields as TypeScript does (`ipAddress`, `subject.type`); HTTP clients send
 * and read the column names (`ip_address`, `subject_type`). Errors must name what the client sent.
 * A `{ type, id }` reference given to the library as `subject` is `subject_type` over HTTP.
 */
const SNAKE_FIELDS: ReadonlyMap<string, string> = new Map(
  ACTIVITY_FIELDS.flatMap((field): [string, string][] => {
    const names: [string, string][] = [[field.property, field.column]];
    const ref: ActivityFieldDefinition['modelRef'] = 'modelRef' in field ? field.modelRef : undefined;
    if (ref !== undefined) {
      names.push([`${ref.model}.${ref.part}`, field.column]);
      if (ref.part === 'type') names.push([ref.model, field.column]);
    }
    return names;
  }),
);

/** Names that mean "the whole item" in the library; over HTTP that is the body or `[i]`. */
const WHOLE_ITEM = new Set(['activity', 'activities']);

/**
 * Maps a library field path to its HTTP name, keeping an array index prefix:
 * `[3].ipAddress` → `[3].ip_address`, `subject.type` → `subject_type`, `[2].activity` → `[2]`.
 */
export function snakeField(field: string): string {
  const match = /^((?:\[\d+\])?)\.?(.*)$/.exec(field)!;
  const index = match[1]!;
  const path = match[2]!;
  if (WHOLE_ITEM.has(path) || path === '') return index === '' ? 'body' : index;
  const name = SNAKE_FIELDS.get(path) ?? snakeFirstSegment(path);
  return index === '' ? name : `${index}.${name}`;
}

/** Only the column name is converted: keys below it (inside `properties`) are the client's own. */
function snakeFirstSegment(path: string): string {
  const dot = path.indexOf('.');
  const head = dot === -1 ? path : path.slice(0, dot);
  const rest = dot === -1 ? '' : path.slice(dot);
  return head.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`) + rest;
}

/**
 * Re-labels a library `VALIDATION_FAILED` (camelCase field, e.g. `[3].ipAddress: ipAddress must…`)
 * with the field the HTTP client sent (`[3].ip_address must…`). Other errors pass through.
 *
 * @example
 * try { await activityLog.logMany(inputs); } catch (error) { throw withSnakeField(error); }
 */
export function withSnakeField(error: unknown): unknown {
  if (!(error instanceof ActivityLogError) || error.code !== 'VALIDATION_FAILED') return error;
  const field = snakeField(error.field ?? 'body');
  return new ActivityLogError('VALIDATION_FAILED', `${field} ${reasonOf(error)}`, {
    field,
    details: error.details,
    cause: error,
  });
}

/**
 * The innermost library error holds the plain reason after its own field name (`logMany` wraps
 * it as `[i].field: field …`); the field is put back in its HTTP spelling by the caller.
 */
function reasonOf(error: ActivityLogError): string {
  let inner = error;
  while (inner.cause instanceof ActivityLogError && inner.cause.code === 'VALIDATION_FAILED')
    inner = inner.cause;
  const field = inner.field;
  if (field !== undefined && inner.message.startsWith(`${field} `))
    return inner.message.slice(field.length + 1);
  return inner.message;
}
