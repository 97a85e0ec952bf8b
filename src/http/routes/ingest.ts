import type { FastifyInstance } from 'fastify';
import { type ZodType, z } from 'zod';
import type { Activity, LogInput } from '../../core/activity.js';
import { INGEST_FIELDS, type IngestType } from '../../core/activity-fields.js';
import { ActivityLogError } from '../../core/errors.js';
import type { ActivityLog } from '../../runtime/create-activity-log.js';
import { requireToken } from '../auth.js';
import { withSnakeField } from '../snake-field.js';
import { zodFailure } from '../zod-failure.js';

export interface IngestRouteOptions {
  /** Where accepted activities are logged. */
  readonly activityLog: Pick<ActivityLog, 'log' | 'logMany'>;
  readonly ingestToken: string | null;
  /** Largest accepted body in bytes. */
  readonly bodyLimitBytes: number;
}

/** Most activities one request may carry. */
export const MAX_INGEST_ACTIVITIES = 1000;

const nullableName = z.string({ error: 'must be a string or null' }).nullable().optional();

/** How each ingest type of the field table is read from JSON. */
const INGEST_SCHEMAS: Readonly<Record<IngestType, ZodType>> = {
  name: nullableName,
  text: z.string({ error: 'is required and must be a string' }),
  modelId: z
    .union([z.string(), z.number()], { error: 'must be a string, a number or null' })
    .nullable()
    .optional(),
  object: z.record(z.string(), z.unknown(), { error: 'must be a JSON object or null' }).nullable().optional(),
  time: z
    .union([z.string(), z.number()], { error: 'must be an ISO-8601 string, epoch milliseconds or null' })
    .nullable()
    .optional(),
  uuid: z.string({ error: 'must be a UUID string or null' }).nullable().optional(),
};

/** One activity's fields as an HTTP client sends them: the column names, values of any JSON type. */
type IngestActivity = { readonly description: string } & Readonly<Record<string, unknown>>;

/**
 * One activity as HTTP clients send it: the column names. Types are checked here; lengths,
 * formats and limits are checked once, by the library, exactly as for `log()`.
 */
export const ingestActivitySchema = z
  .strictObject(
    Object.fromEntries(INGEST_FIELDS.map((field) => [field.column, INGEST_SCHEMAS[field.ingest.type]])),
  )
  .superRefine((activity, context) => {
    for (const model of ['subject', 'causer'] as const) {
      const type = activity[`${model}_type`];
      const id = activity[`${model}_id`];
      const hasType = type !== undefined && type !== null;
      const hasId = id !== undefined && id !== null;
      if (hasType && !hasId)
        context.addIssue({
          code: 'custom',
          path: [`${model}_id`],
          message: `is required when ${model}_type is set`,
        });
      if (hasId && !hasType)
        context.addIssue({
          code: 'custom',
          path: [`${model}_type`],
          message: `is required when ${model}_id is set`,
        });
    }
  }) as unknown as ZodType<IngestActivity>;

const INGEST_NAMES: readonly string[] = INGEST_FIELDS.map((field) => field.column);

export const ingestBatchSchema: ZodType<IngestActivity[]> = z
  .array(ingestActivitySchema, { error: 'must be an activity object or an array of them' })
  .min(1, { error: 'must hold at least one activity' })
  .max(MAX_INGEST_ACTIVITIES, { error: `must hold at most ${MAX_INGEST_ACTIVITIES} activities` });

/**
 * `POST /api/activities` (ingest token): one activity object or an array of up to 1000, in
 * snake_case. All-or-nothing: every item is validated before any is accepted. Answers 202
 * `{ accepted, ids }`; a client that sends its own `id`s can retry safely (inserts are idempotent).
 */
export function registerIngestRoute(app: FastifyInstance, options: IngestRouteOptions): void {
  const { activityLog } = options;
  app.post<{ Body: unknown }>(
    '/api/activities',
    {
      bodyLimit: options.bodyLimitBytes,
      onRequest: requireToken({ token: options.ingestToken, variable: 'ACTIVITY_LOG_INGEST_TOKEN' }),
      preValidation: async (request) => {
        // Fastify passes a body-less request without a content type straight through.
        if (request.headers['content-type'] === undefined) {
          throw new ActivityLogError(
            'UNSUPPORTED_MEDIA_TYPE',
            'the body must be JSON: send it with "Content-Type: application/json"',
          );
        }
      },
    },
    async (request, reply) => {
      const items = parseIngestBody(request.body);
      // The request's own IP and user agent are the forwarding service's, not the actor's: they are
      // never filled in here. Each activity carries its context in its own fields.
      const inputs = items.map(toLogInput);
      let activities: readonly Activity[];
      try {
        // A single object is logged alone so that its errors name `ip_address`, not `[0].ip_address`.
        activities = Array.isArray(request.body)
          ? await activityLog.logMany(inputs)
          : [await activityLog.log(inputs[0]!)];
      } catch (error) {
        throw withSnakeField(error);
      }
      return reply.code(202).send({
        success: true,
        accepted: activities.length,
        ids: activities.map((activity) => activity.id),
      });
    },
  );
}

/** Validates the body's shape; errors name the snake_case field with its index, e.g. `[3].ip_address`. */
export function parseIngestBody(body: unknown): IngestActivity[] {
  if (Array.isArray(body)) {
    const result = ingestBatchSchema.safeParse(body);
    if (!result.success) throw zodFailure(result.error, { allowedKeys: INGEST_NAMES });
    return result.data;
  }
  if (typeof body !== 'object' || body === null) {
    throw new ActivityLogError('VALIDATION_FAILED', 'body must be an activity object or an array of them', {
      field: 'body',
    });
  }
  const result = ingestActivitySchema.safeParse(body);
  if (!result.success) throw zodFailure(result.error, { allowedKeys: INGEST_NAMES });
  return [result.data];
}

/** Fields a `LogInput` takes under their own name; `subject_*` and `causer_*` become references. */
const INPUT_FIELDS = INGEST_FIELDS.filter((field) => !('modelRef' in field));

function toLogInput(item: IngestActivity): LogInput {
  const input: Record<string, unknown> = {
    subject: modelRef(item.subject_type, item.subject_id),
    causer: modelRef(item.causer_type, item.causer_id),
  };
  for (const field of INPUT_FIELDS) {
    const value = item[field.column];
    // Null in the optional fields means "not given" (many JSON encoders write every key); where
    // a field can be null, null is the value.
    input[field.property] = value === null && !field.nullable ? undefined : value;
  }
  return input as unknown as LogInput;
}

function modelRef(type: unknown, id: unknown): { type: string; id: string | number } | null {
  return type === undefined || type === null || id === undefined || id === null
    ? null
    : { type: type as string, id: id as string | number };
}
