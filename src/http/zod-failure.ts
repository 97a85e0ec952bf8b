import type { z } from 'zod';
import { ActivityLogError } from '../core/errors.js';

/** How many problems one 400 lists in `details.issues`; the first is also `details.field`. */
const MAX_LISTED_ISSUES = 20;

export interface FieldIssue {
  readonly field: string;
  readonly message: string;
}

export interface ZodFailureOptions {
  /** What an empty path is called: `body` or `query`. */
  readonly root?: string;
  /** What a field is called in messages: `field` or `query parameter`. */
  readonly noun?: string;
  /** Listed in the message when a name is unknown, so the client sees what it can send. */
  readonly allowedKeys?: readonly string[];
}

/** `[3, 'ip_address']` → `[3].ip_address`; `[]` → the root (the HTTP client's view of the path). */
export function fieldPath(path: readonly PropertyKey[], root = 'body'): string {
  let field = '';
  for (const key of path) {
    if (typeof key === 'number') field += `[${key}]`;
    else field += field === '' ? String(key) : `.${String(key)}`;
  }
  return field === '' ? root : field;
}

/**
 * Turns a failed zod parse of an HTTP body or query string into one `VALIDATION_FAILED` named
 * after its first problem, with every problem (up to 20) in `details.issues`. Unknown names come
 * first: a misspelt field is usually the cause of the other problems.
 */
export function zodFailure(error: z.ZodError, options: ZodFailureOptions = {}): ActivityLogError {
  const root = options.root ?? 'body';
  const noun = options.noun ?? 'field';
  const unknown: FieldIssue[] = [];
  const other: FieldIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        unknown.push({ field: fieldPath([...issue.path, key], root), message: `is not a known ${noun}` });
      }
    } else {
      other.push({ field: fieldPath(issue.path, root), message: issue.message });
    }
  }
  const issues = [...unknown, ...other];
  const first = issues[0] ?? { field: root, message: 'is not valid' };
  let message = `${first.field} ${first.message}`;
  if (unknown.length > 0) {
    const names = unknown.map((issue) => JSON.stringify(issue.field)).join(', ');
    const allowed = options.allowedKeys === undefined ? '' : `; allowed: ${options.allowedKeys.join(', ')}`;
    message = `unknown ${noun}${unknown.length === 1 ? '' : 's'} ${names}${allowed}`;
  }
  if (issues.length > 1) message += ` (${issues.length} problems in all, see details.issues)`;
  return new ActivityLogError('VALIDATION_FAILED', message, {
    field: first.field,
    details: { issues: issues.slice(0, MAX_LISTED_ISSUES) },
  });
}
