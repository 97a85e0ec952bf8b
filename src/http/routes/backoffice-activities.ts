import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { LIMITS } from '../../core/activity.js';
import { activityToJson } from '../../core/activity-json.js';
import { ActivityLogError } from '../../core/errors.js';
import { parseIsoTimestamp } from '../../core/iso-timestamp.js';
import { type ActivityPage, type ActivityQuery, MAX_QUERY_LIMIT } from '../../store/activity-store.js';
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

const querySchema = z
  .strictObject({
    log_name: name(),
    event: name(),
    subject_type: name(),
    subject_id: name(),
    causer_type: name(),
    causer_id: name(),
    ip_address: name(45),
    url: name(LIMITS.urlChars),
    method: name(LIMITS.methodChars),
    batch_uuid: name(36),
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
  });

const QUERY_PARAMETERS: readonly string[] = Object.keys(querySchema.shape);

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
        data: page.data.map(activityToJson),
        next_cursor: page.nextCursor,
      };
    },
  );
}

/** The query string as an {@link ActivityQuery}; a bad or unknown parameter is a 400 naming it. */
export function parseActivityQuery(query: unknown): ActivityQuery {
  const result = querySchema.safeParse(query ?? {});
  if (!result.success) {
    throw zodFailure(result.error, {
      root: 'query',
      noun: 'query parameter',
      allowedKeys: QUERY_PARAMETERS,
    });
  }
  const q = result.data;
  if (q.batch_uuid !== undefined && !/^[0-9a-f-]{36}$/i.test(q.batch_uuid)) {
    throw new ActivityLogError(
      'VALIDATION_FAILED',
      `batch_uuid must be a UUID (got ${JSON.stringify(q.batch_uuid)})`,
      {
        field: 'batch_uuid',
      },
    );
  }
  return {
    logName: q.log_name,
    event: q.event,
    subjectType: q.subject_type,
    subjectId: q.subject_id,
    causerType: q.causer_type,
    causerId: q.causer_id,
    ipAddress: q.ip_address,
    url: q.url,
    // Methods are stored upper-case; `method=post` should find them.
    method: q.method?.toUpperCase(),
    batchUuid: q.batch_uuid?.toLowerCase(),
    from: q.from,
    to: q.to,
    limit: q.limit,
    cursor: q.cursor,
  };
}
