import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { LIMITS } from '../../core/activity.js';
import { FILTER_FIELDS } from '../../core/activity-fields.js';
import { ActivityLogError } from '../../core/errors.js';
import { parseIsoTimestamp } from '../../core/iso-timestamp.js';
import { type ActivityPage, type ActivityQuery, MAX_QUERY_LIMIT } from '../../store/activity-store.js';
import { storedActivityToJson } from '../activity-export.js';
import { requireToken } from '../auth.js';
import { withSnakeField } from '../snake-field.js';
import { zodFailure } from '../zod-failure.js';

export interface BackofficeActivitiesRouteOptions {
  /** Reads a page of the log (the activity log's `query`). */
  readonly query: (query: ActivityQuery) => Promise<ActivityPage>;
  readonly adminToken: string | null;
}

// Forms submit blank inputs as `name=`; a blank filter means "no filter", not "match the empty string".
const blankAsAbsent = (value: unknown) => (value === '' ? undefined : value);
const once = 'must be given once, as text';

const name = (maxChars: number = LIMITS.nameChars) =>
  z.preprocess(
    blankAsAbsent,
    z
      .string({ error: once })
      .max(maxChars, { error: `must be at most ${maxChars} characters` })
      .optional(),
  );

const timestamp = z.preprocess(
  blankAsAbsent,
  z
    .string({ error: once })
    .transform((value, context) => {
      const date = parseIsoTimestamp(value);
      if (date === null) {
        context.addIssue({
          code: 'custom',
          message: `must be an ISO-8601 date or time, e.g. 2025-11-28 or 2025-11-28T09:30:00Z (got ${JSON.stringify(value)})`,
        });
        return z.NEVER;
      }
      return date;
    })
    .optional(),
);

export { parseIsoTimestamp };

/** The query string as parsed: the range and paging parameters, and each filter by its column. */
interface ParsedQuery {
  readonly from?: Date | undefined;
  readonly to?: Date | undefined;
  readonly limit?: number | undefined;
  readonly cursor?: string | undefined;
}

/** Filters on UUID columns, checked for the UUID shape after the lengths. */
const UUID_FILTERS: readonly string[] = FILTER_FIELDS.filter((field) => field.kind === 'uuid').map(
  (field) => field.column,
);

/** The query string of the list API (and, without paging, of the exports); `GET /openapi.json` describes it. */
export const activityQuerySchema = z
  .strictObject({
    ...Object.fromEntries(FILTER_FIELDS.map((field) => [field.column, name(field.maxChars)])),
    from: timestamp,
    to: timestamp,
    limit: z.preprocess(
      blankAsAbsent,
      z
        .string({ error: once })
        .regex(/^\d+$/, { error: `must be a whole number from 1 to ${MAX_QUERY_LIMIT}` })
        .transform(Number)
        .pipe(
          z
            .number()
            .min(1, { error: `must be a whole number from 1 to ${MAX_QUERY_LIMIT}` })
            .max(MAX_QUERY_LIMIT, { error: `must be a whole number from 1 to ${MAX_QUERY_LIMIT}` }),
        )
        .optional(),
    ),
    cursor: name(1024),
  })
  .refine((query) => query.from === undefined || query.to === undefined || query.from < query.to, {
    path: ['to'],
    message: 'must be later than from',
  }) as unknown as z.ZodType<ParsedQuery>;

const QUERY_PARAMETERS: readonly string[] = [
  ...FILTER_FIELDS.map((field) => field.column),
  'from',
  'to',
  'limit',
  'cursor',
];

/**
 * `GET /api/backoffice/activity-logs` (admin token): the log, newest first, filtered on indexed
 * columns with keyset paging. Answers `{ success, data, next_cursor }` in snake_case.
 */
export function registerBackofficeActivitiesRoute(
  app: FastifyInstance,
  options: BackofficeActivitiesRouteOptions,
): void {
  const { query: readLog } = options;
  app.get<{ Querystring: unknown }>(
    '/api/backoffice/activity-logs',
    { onRequest: requireToken({ token: options.adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' }) },
    async (request) => {
      const query = parseActivityQuery(request.query);
      const page = await readLog(query).catch((error: unknown) => {
        throw withSnakeField(error);
      });
      return {
        success: true,
        data: page.data.map((activity) => storedActivityToJson(activity, page.erasedIds)),
        next_cursor: page.nextCursor,
      };
    },
  );
}

/** The query string as an {@link ActivityQuery}; a bad or unknown parameter is a 400 naming it. */
export function parseActivityQuery(query: unknown): ActivityQuery {
  const result = activityQuerySchema.safeParse(query ?? {});
  if (!result.success) {
    throw zodFailure(result.error, {
      root: 'query',
      noun: 'query parameter',
      allowedKeys: QUERY_PARAMETERS,
    });
  }
  const q = result.data;
  const columns = q as Readonly<Record<string, string | undefined>>;
  const uuidFilter = UUID_FILTERS.find((column) => {
    const value = columns[column];
    return value !== undefined && !/^[0-9a-f-]{36}$/i.test(value);
  });
  if (uuidFilter !== undefined) {
    throw new ActivityLogError(
      'VALIDATION_FAILED',
      `${uuidFilter} must be a UUID (got ${JSON.stringify(columns[uuidFilter])})`,
      {
        field: uuidFilter,
      },
    );
  }
  const filters: Record<string, string | undefined> = {};
  for (const field of FILTER_FIELDS) {
    const value = columns[field.column];
    // Methods are stored upper-case; `method=post` should find them. UUIDs are stored lower-case.
    filters[field.property] =
      value === undefined
        ? undefined
        : 'upperCase' in field
          ? value.toUpperCase()
          : field.kind === 'uuid'
            ? value.toLowerCase()
            : value;
  }
  return {
    ...filters,
    from: q.from,
    to: q.to,
    limit: q.limit,
    cursor: q.cursor,
  };
}
