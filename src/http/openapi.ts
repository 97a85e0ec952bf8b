import { readFileSync } from 'node:fs';
import { type ZodType, z } from 'zod';
import {
  ACTIVITY_FIELDS,
  type ActivityField,
  FILTER_FIELDS,
  INGEST_FIELDS,
} from '../core/activity-fields.js';
import { ERROR_CATALOGUE, type ErrorCode } from '../core/errors.js';
import { MAX_QUERY_LIMIT } from '../store/activity-store.js';
import { ACTIVITY_FIELDS_SCRIPT_PATH } from './activity-fields-script.js';
import { activityQuerySchema } from './routes/backoffice-activities.js';
import { proofQuerySchema } from './routes/backoffice-activity.js';
import { MAX_LISTED_FAILED_JOBS, retryFailedJobsBody } from './routes/backoffice-failed-jobs.js';
import { ingestActivitySchema, ingestBatchSchema, MAX_INGEST_ACTIVITIES } from './routes/ingest.js';
import { SESSION_COOKIE, SESSION_TTL_MS } from './session.js';

/** Where the document is served; it describes the routes and reveals no data, so it needs no token. */
export const OPENAPI_PATH = '/openapi.json';

/**
 * Paths the server answers that the document leaves out: the backoffice's static scripts and
 * styles (one route per file found at start-up, public code without data).
 */
export const UNDESCRIBED_PATH_PREFIXES: readonly string[] = ['/backoffice/assets/'];

type JsonObject = Record<string, unknown>;

const ref = (name: string): JsonObject => ({ $ref: `#/components/schemas/${name}` });

// ---------------------------------------------------------------------------------------------
// Answers. The routes build these by hand; the HTTP tests parse real answers with these schemas.
// ---------------------------------------------------------------------------------------------

function activityFieldSchema(field: ActivityField): ZodType {
  const described = (schema: ZodType): ZodType => {
    const nullable = field.nullable && field.kind !== 'json';
    const withNull = nullable ? schema.nullable() : schema;
    return 'label' in field ? withNull.meta({ description: field.label }) : withNull;
  };
  switch (field.kind) {
    case 'uuid':
      return described(z.string().max(36).meta({ format: 'uuid' }));
    case 'string':
      return described(z.string().max(field.maxChars));
    case 'text':
      return described(z.string().meta({ description: `at most ${field.maxBytes} bytes of UTF-8` }));
    case 'json':
      return described(z.record(z.string(), z.unknown()));
    case 'timestamp':
      return described(z.iso.datetime());
  }
}

/** One stored activity as JSON: every column, snake_case, `created_at` ISO-8601, and `erased`. */
export const activityJsonSchema = z.strictObject({
  ...Object.fromEntries(ACTIVITY_FIELDS.map((field) => [field.column, activityFieldSchema(field)])),
  erased: z.boolean().meta({
    description:
      'true when the personal data of this activity was erased (`activity-log erase`): its erasable fields are null and its seal still verifies',
  }),
});

/** `GET /api/backoffice/activity-logs`. */
export const activityPageSchema = z.strictObject({
  success: z.literal(true),
  data: z.array(activityJsonSchema),
  next_cursor: z
    .string()
    .nullable()
    .meta({ description: 'send as `cursor` for the next (older) page; null on the last page' }),
});

/** `GET /api/backoffice/activity-logs/{id}`. */
export const activityAnswerSchema = z.strictObject({ success: z.literal(true), data: activityJsonSchema });

const hexHash = z
  .string()
  .regex(/^[0-9a-f]{64}$/)
  .meta({ description: 'SHA-256, 64 lowercase hex digits' });

const sealJsonSchema = z.strictObject({
  seq: z.number().int().min(1),
  prev_hash: hexHash,
  root: hexHash,
  row_count: z.number().int().min(1),
  sealed_at: z.iso.datetime(),
  hash: hexHash,
});

const checkpointJsonSchema = z.strictObject({
  body: z.strictObject({
    format: z.literal('activity-log/checkpoint/v1'),
    table: z.string(),
    seq: z.number().int().min(1),
    seal_hash: hexHash,
    total_rows: z.number().int().min(0),
    issued_at: z.iso.datetime(),
    key_id: hexHash,
  }),
  signature: z.string().meta({ description: 'Ed25519 over the canonical JSON of `body`, base64' }),
});

/** An inclusion proof (`integrity/inclusion-proof.ts` and the README say how to check one). */
export const inclusionProofSchema = z.strictObject({
  format: z.literal('activity-log/inclusion-proof/v1'),
  activity: z.record(z.string(), z.unknown()).meta({
    description:
      'the row as its leaf encodes it: snake_case columns, `created_at` ISO-8601; erased fields null',
  }),
  salt: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .nullable()
    .meta({ description: "the row's commitment salt; null once it was erased" }),
  commitments: z.record(z.string(), hexHash).meta({ description: 'erasable column → its commitment' }),
  leaf_hash: hexHash,
  leaf_index: z.number().int().min(0).meta({ description: "the row's position in its seal, in id order" }),
  merkle_path: z.array(hexHash).meta({ description: 'RFC 6962 audit path, lowest sibling first' }),
  seals: z.array(sealJsonSchema).meta({
    description: "from the row's seal to the checkpoint's (or, unanchored, to the head), lowest seq first",
  }),
  checkpoint: checkpointJsonSchema.nullable().meta({
    description: "the first checkpoint signing the row's seal or a later one; null when none does yet",
  }),
  public_key: z
    .string()
    .nullable()
    .meta({ description: "the checkpoint's public key (PEM); null without ACTIVITY_LOG_SIGNING_KEY" }),
  anchored: z.boolean(),
  unanchored_reason: z.string().nullable().meta({ description: 'why no checkpoint anchors the proof' }),
});

/** `GET /api/backoffice/activity-logs/{id}/proof`. */
export const activityProofAnswerSchema = z.strictObject({
  success: z.literal(true),
  data: inclusionProofSchema,
  server_check: z
    .union([
      z.strictObject({ verified: z.literal(true), anchored: z.boolean() }),
      z.strictObject({ verified: z.literal(false), problem: z.string() }),
    ])
    .meta({
      description:
        "the server's own check of the proof (with its signing key); a third party checks it themselves",
    }),
});

/** `POST /api/activities`, 202. */
export const ingestAcceptedSchema = z.strictObject({
  success: z.literal(true),
  accepted: z.number().int().min(1).max(MAX_INGEST_ACTIVITIES),
  ids: z.array(z.string().meta({ format: 'uuid' })).meta({ description: 'the activities’ ids, in order' }),
});

const partError = z.strictObject({ code: z.string(), message: z.string() });
const partHealth = { ok: z.boolean(), error: partError.optional() };

/** `GET /health`, 200 or 503. */
export const healthSchema = z.strictObject({
  status: z.enum(['ok', 'unavailable']),
  failing: z.array(z.enum(['store', 'queue', 'breaker'])).optional(),
  store: z.strictObject({ ...partHealth, dialect: z.string() }),
  delivery: z.strictObject({ ok: z.boolean(), method: z.string(), pending: z.number() }),
  queue: z
    .strictObject({
      ...partHealth,
      durable: z.boolean().nullable().optional(),
      durability: z.string().optional(),
    })
    .optional()
    .meta({ description: 'with ACTIVITY_LOG_METHOD=queue' }),
  breaker: z
    .strictObject({
      ok: z.boolean(),
      name: z.string(),
      state: z.string(),
      failure_count: z.number(),
      is_allowed: z.boolean(),
    })
    .optional(),
  spool: z.strictObject({ pending: z.number() }).optional(),
});

const breakerState = z.enum(['closed', 'open', 'half_open']);
const breakerJson = { state: breakerState, failure_count: z.number(), is_allowed: z.boolean() };
const nullableNumber = z.number().nullable();

/** `GET /api/backoffice/activity-logs/performance`. */
export const performanceSchema = z.strictObject({
  success: z.literal(true),
  data: z.strictObject({
    queue_size: z.number(),
    processing_rate: z.number(),
    error_rate: z.number(),
    total_processed: z.number(),
    pending_jobs: z.number(),
    failed_jobs: z.number(),
    memory_usage: z.number().meta({ description: 'resident memory of the reporting process, MB' }),
    circuit_breaker: z.strictObject(breakerJson),
    spool: z.strictObject({ activities: z.number(), bytes: z.number(), oldest_age_seconds: nullableNumber }),
    dropped_total: z.number(),
    lag_ms: z.strictObject({ p50: nullableNumber, p99: nullableNumber }),
    workers: z.array(
      z.strictObject({
        id: z.string(),
        host: z.string(),
        pid: z.number(),
        started: z.iso.datetime(),
        last_heartbeat: z.iso.datetime(),
        stored: z.number(),
        current_rate: z.number(),
      }),
    ),
    breakers: z.record(
      z.string(),
      z.strictObject({ ...breakerJson, processes: z.number(), open_for_seconds: nullableNumber }),
    ),
    history: z
      .array(
        z.strictObject({
          minute: z.iso.datetime(),
          throughput: z.number(),
          errors: z.number(),
          queue_size: nullableNumber,
          lag_p50_ms: nullableNumber,
          lag_p99_ms: nullableNumber,
        }),
      )
      .meta({ description: 'per minute, the last 60 minutes, oldest first' }),
    method: z.string(),
    source: z.enum(['redis', 'process']),
    processes: z.number(),
    generated_at: z.iso.datetime(),
    totals: z.record(z.string(), z.number()),
    integrity: z
      .strictObject({
        seals_written: z.number().int(),
        rows_sealed: z.number().int(),
        read_error: z.string().nullable(),
        checkpoint: z
          .strictObject({
            seq: z.number().int(),
            issued_at: z.iso.datetime(),
            age_seconds: z.number(),
            source: z.enum(['dir', 'published']),
          })
          .nullable(),
        checkpoint_behind_seconds: nullableNumber,
        verify: z.strictObject({
          status: z.enum(['ok', 'failed', 'never']),
          at: z.iso.datetime().nullable(),
          duration_ms: nullableNumber,
          seals: z.number().int(),
          rows: z.number().int(),
          problems: z.number().int(),
          first_problem: z.string().nullable(),
          interval_seconds: nullableNumber,
          running: z.boolean(),
          error: z.string().nullable(),
        }),
      })
      .nullable()
      .meta({
        description:
          'tamper evidence: seals, rows sealed, the newest checkpoint, the last scheduled verify; null where the process watches no seal chain',
      }),
    capture: z
      .array(
        z.strictObject({
          source: z.string().meta({ description: 'the stream: server, database and slot' }),
          slot: z.string(),
          kind: z.string().meta({ description: '`postgres` or `mariadb`' }),
          state: z
            .enum(['starting', 'streaming', 'reconnecting', 'stalled', 'stopping', 'stopped', 'stale'])
            .meta({
              description:
                '`stale`: the figures are older than the staleness bound (the process stopped reporting)',
            }),
          live: z.boolean().meta({ description: 'fresh figures of a process that is reading' }),
          host: z.string(),
          pid: z.number().int(),
          started_at: z.iso.datetime(),
          lag_bytes: nullableNumber.meta({ description: 'change stream not yet confirmed durable, bytes' }),
          lag_seconds: z
            .number()
            .meta({ description: 'since the commit of the oldest change not yet durable' }),
          retained_bytes: nullableNumber.meta({
            description: 'WAL / binary log the source keeps behind the slot, bytes',
          }),
          events_per_second: z
            .number()
            .meta({ description: 'row changes captured per second, mean of the last 60 s' }),
          activities: z.number().int(),
          durable_activities: z.number().int(),
          position: z.string().nullable(),
          position_saved_at: z.iso.datetime().nullable(),
          reported_at: z.iso.datetime(),
          report_age_seconds: z.number(),
        }),
      )
      .meta({ description: 'change capture, one entry per stream and slot; empty when no capture ran' }),
  }),
});

/** `GET /api/backoffice/activity-logs/failed-jobs`. */
export const failedJobsSchema = z.strictObject({
  success: z.literal(true),
  queue: z.boolean().meta({ description: 'false without the queue backend; the list is empty then' }),
  total: z.number().int(),
  data: z
    .array(
      z.strictObject({
        id: z.string(),
        attempts: z.number().int(),
        error: z.string(),
        activities: z.number().int(),
        failed_at: z.iso.datetime().nullable(),
      }),
    )
    .max(MAX_LISTED_FAILED_JOBS)
    .meta({ description: `newest first, at most ${MAX_LISTED_FAILED_JOBS}` }),
});

/** `POST /api/backoffice/activity-logs/failed-jobs/retry`. */
export const retriedJobsSchema = z.strictObject({
  success: z.literal(true),
  data: z.strictObject({ retried: z.array(z.string()), missing: z.array(z.string()) }),
});

/** `GET /api/backoffice/activity-logs/host`. */
export const hostSchema = z.strictObject({
  success: z.literal(true),
  data: z.strictObject({
    hostname: z.string(),
    load_average: z.array(z.number()).meta({ description: '1, 5 and 15 minutes; 0 on Windows' }),
    cpus: z.number().int(),
    free_memory_bytes: z.number(),
    total_memory_bytes: z.number(),
    uptime_seconds: z.number(),
  }),
});

/**
 * Codes answered with this status; a 500 is always `INTERNAL_ERROR` (the others stay in the
 * server log), and the command line's own codes never reach HTTP.
 */
function codesWithStatus(status: number): ErrorCode[] {
  if (status === 500) return ['INTERNAL_ERROR'];
  return (Object.keys(ERROR_CATALOGUE) as ErrorCode[]).filter(
    (code) => ERROR_CATALOGUE[code].httpStatus === status && !code.startsWith('CLI_'),
  );
}

/** The one error shape of every route: `{ success: false, error: { code, message, details? } }`. */
export function errorSchema(codes: readonly ErrorCode[] = Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
  return z.strictObject({
    success: z.literal(false),
    error: z.strictObject({
      code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z
        .unknown()
        .optional()
        .meta({ description: 'for VALIDATION_FAILED: `field` and `issues` ([{ field, message }])' }),
    }),
  });
}

// ---------------------------------------------------------------------------------------------
// The document.
// ---------------------------------------------------------------------------------------------

/** Error answers by status: what the README's status table says of each. */
const ERROR_STATUSES = {
  400: 'the request is not valid (`details.field` names what, `details.issues` lists up to 20 problems)',
  401: 'no token, or a wrong one (`WWW-Authenticate: Bearer`)',
  403: 'a cookie-authenticated request from another site or without the CSRF token of its session',
  404: 'no such record',
  409: 'the activity has no inclusion proof: it is not sealed, or its seal or row cannot be read',
  413: 'the body is larger than allowed (8 MiB by default)',
  415: 'the body is not sent as `application/json`',
  429: 'too many wrong tokens from this address; `Retry-After` says when to try again',
  500: 'an unexpected error; the server log has the details',
  503: 'the token variable guarding the route is not set, the store, queue or breaker is unavailable, or the server is shutting down',
} as const satisfies Record<number, string>;

type ErrorStatus = keyof typeof ERROR_STATUSES;

const errorName = (status: ErrorStatus) => `Error${status}`;

function errorResponse(status: ErrorStatus): JsonObject {
  const response: JsonObject = {
    description: ERROR_STATUSES[status],
    content: { 'application/json': { schema: ref(errorName(status)) } },
  };
  if (status === 401)
    response.headers = { 'WWW-Authenticate': { schema: { type: 'string', const: 'Bearer' } } };
  if (status === 429)
    response.headers = {
      'Retry-After': { description: 'seconds to wait', schema: { type: 'integer', minimum: 1 } },
    };
  return response;
}

/** The `responses` of an operation: its own answers, then the error answers it can give. */
function responses(own: Record<string, JsonObject>, errors: readonly ErrorStatus[]): JsonObject {
  const all: JsonObject = { ...own };
  for (const status of errors) all[String(status)] = { $ref: `#/components/responses/${errorName(status)}` };
  return all;
}

const json = (schema: JsonObject, description: string): JsonObject => ({
  description,
  content: { 'application/json': { schema } },
});

const html = (description: string): JsonObject => ({
  description,
  content: { 'text/html; charset=utf-8': { schema: { type: 'string' } } },
});

const redirect = (description: string): JsonObject => ({
  description,
  headers: { Location: { schema: { type: 'string' } } },
});

/** Admin routes take the admin bearer token or the backoffice session cookie. */
const ADMIN = [{ adminToken: [] }, { backofficeSession: [] }];
const GUARDED_ERRORS: readonly ErrorStatus[] = [401, 429, 500, 503];

const ID_PARAMETER = {
  name: 'id',
  in: 'path',
  required: true,
  description: "the activity's id",
  schema: { type: 'string', format: 'uuid' },
};

const CSRF_HEADER = {
  name: 'x-csrf-token',
  in: 'header',
  required: false,
  description:
    'required with the session cookie (the CSRF token of the signed-in page); not needed with the bearer token',
  schema: { type: 'string' },
};

/** A zod schema as a JSON Schema for the document: what a client sends (input) or reads. */
function jsonSchemaOf(schema: ZodType): JsonObject {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, {
    io: 'input',
    target: 'draft-2020-12',
    // `format` says it; zod's long pattern for the same would only be noise to a client generator.
    override: ({ jsonSchema }) => {
      if (jsonSchema.format === 'date-time') delete jsonSchema.pattern;
    },
  }) as JsonObject;
  return rest;
}

const PARAMETER_DESCRIPTIONS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    FILTER_FIELDS.map((field) => [
      field.column,
      `exact match on ${field.column}${'upperCase' in field ? ' (case-insensitive)' : ''}`,
    ]),
  ),
  from: 'ISO-8601 date or time: activities created at or after it',
  to: 'ISO-8601 date or time: activities created before it; must be later than `from`',
  limit: `activities per page, 1 to ${MAX_QUERY_LIMIT}`,
  cursor: 'the `next_cursor` of the previous page',
};

/** The list API's query string as parameters, from the schema it is parsed with. */
function queryParameters(except: readonly string[] = []): JsonObject[] {
  const properties = jsonSchemaOf(activityQuerySchema).properties as Record<string, JsonObject>;
  return Object.entries(properties)
    .filter(([name]) => !except.includes(name))
    .map(([name, schema]) => ({
      name,
      in: 'query',
      required: false,
      description: PARAMETER_DESCRIPTIONS[name],
      schema,
    }));
}

/** The proof route's query string as parameters, from the schema it is parsed with. */
function proofQueryParameters(): JsonObject[] {
  const properties = jsonSchemaOf(proofQuerySchema).properties as Record<string, JsonObject>;
  return Object.entries(properties).map(([name, { description, ...schema }]) => ({
    name,
    in: 'query',
    required: false,
    description,
    schema,
  }));
}

/**
 * The ingest item as JSON Schema: the route's zod schema checks the types, the library the lengths
 * (from the field table), so the lengths are added here from the same table.
 */
function ingestActivityJsonSchema(): JsonObject {
  const schema = jsonSchemaOf(ingestActivitySchema);
  const properties = schema.properties as Record<string, JsonObject>;
  for (const field of INGEST_FIELDS) {
    const property = properties[field.column];
    if (property === undefined) continue;
    const limits: string[] = [];
    if ('maxChars' in field) limits.push(`at most ${field.maxChars} characters`);
    if ('maxBytes' in field)
      limits.push(`at most ${field.maxBytes} bytes${field.kind === 'json' ? ' as JSON' : ''}`);
    const label = 'label' in field ? field.label : field.column;
    property.description = limits.length === 0 ? label : `${label}; ${limits.join(', ')}`;
  }
  properties.subject_type!.description += '; with subject_id';
  properties.causer_type!.description += '; with causer_id';
  properties.created_at!.description += ' (ISO-8601 or epoch milliseconds; default: now)';
  properties.id!.description += ' (default: generated; send your own to retry safely)';
  properties.log_name!.description += ' (default: `default`)';
  return schema;
}

function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/**
 * The OpenAPI 3.1 description of the HTTP API, built from the zod schemas the routes validate
 * with and the field table. It depends on no configuration, so every server answers the same
 * document, and `docs/openapi.json` (written by `npm run openapi`) is kept equal to it by a test.
 */
export function openApiDocument(): JsonObject {
  const errors = Object.fromEntries(
    (Object.keys(ERROR_STATUSES) as unknown as ErrorStatus[]).map((status) => [
      errorName(status),
      jsonSchemaOf(errorSchema(codesWithStatus(Number(status)))),
    ]),
  );
  // The page and the single answer refer to Activity instead of repeating it.
  const page = jsonSchemaOf(activityPageSchema);
  (page.properties as JsonObject).data = { type: 'array', items: ref('Activity') };
  const one = jsonSchemaOf(activityAnswerSchema);
  (one.properties as JsonObject).data = ref('Activity');
  const schemas: JsonObject = {
    Activity: jsonSchemaOf(activityJsonSchema),
    ActivityPage: page,
    ActivityAnswer: one,
    ActivityProof: jsonSchemaOf(activityProofAnswerSchema),
    IngestActivity: ingestActivityJsonSchema(),
    IngestAccepted: jsonSchemaOf(ingestAcceptedSchema),
    Health: jsonSchemaOf(healthSchema),
    Performance: jsonSchemaOf(performanceSchema),
    FailedJobs: jsonSchemaOf(failedJobsSchema),
    RetryFailedJobs: jsonSchemaOf(retryFailedJobsBody),
    RetriedJobs: jsonSchemaOf(retriedJobsSchema),
    Host: jsonSchemaOf(hostSchema),
    SignIn: {
      type: 'object',
      properties: {
        token: { type: 'string', description: 'the admin token (ACTIVITY_LOG_ADMIN_TOKEN)' },
        next: { type: 'string', description: 'a backoffice path to go to after signing in' },
      },
      required: ['token'],
    },
    Error: jsonSchemaOf(errorSchema()),
    ...errors,
  };
  const batch = jsonSchemaOf(ingestBatchSchema);
  const ingestBody = {
    oneOf: [ref('IngestActivity'), { ...batch, items: ref('IngestActivity') }],
  };

  const exportResponse = (type: string, description: string) => ({
    description,
    headers: {
      'Content-Disposition': {
        description: 'attachment; filename="activity-logs-<time>.<extension>"',
        schema: { type: 'string' },
      },
    },
    content: { [type]: { schema: { type: 'string' } } },
  });

  const paths: JsonObject = {
    '/health': {
      get: {
        operationId: 'getHealth',
        tags: ['health'],
        summary: 'Liveness and readiness',
        description:
          'The store, the delivery (the queue too with ACTIVITY_LOG_METHOD=queue) and the circuit breaker. Without auth a failing part is described by its code; with the admin token (or session) its driver message too.',
        security: [{}, ...ADMIN],
        responses: responses(
          {
            200: json(ref('Health'), 'every part is ok'),
            503: json(ref('Health'), 'a part is failing; `failing` names it'),
          },
          [500],
        ),
      },
    },
    '/api/activities': {
      post: {
        operationId: 'ingestActivities',
        tags: ['ingest'],
        summary: 'Log one activity or an array of them',
        description: `One activity object or an array of 1 to ${MAX_INGEST_ACTIVITIES}, all-or-nothing: every item is validated before any is accepted. Inserts are idempotent on \`id\`.`,
        security: [{ ingestToken: [] }],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ingestBody } },
        },
        responses: responses(
          { 202: json(ref('IngestAccepted'), 'accepted') },
          [400, 401, 413, 415, 429, 500, 503],
        ),
      },
    },
    '/api/backoffice/activity-logs': {
      get: {
        operationId: 'listActivities',
        tags: ['query'],
        summary: 'The log, newest first, filtered, with keyset paging',
        security: ADMIN,
        parameters: queryParameters(),
        responses: responses({ 200: json(ref('ActivityPage'), 'a page of activities') }, [
          400,
          ...GUARDED_ERRORS,
        ]),
      },
    },
    '/api/backoffice/activity-logs/{id}': {
      get: {
        operationId: 'getActivity',
        tags: ['query'],
        summary: 'One activity, as the list answers it',
        security: ADMIN,
        parameters: [ID_PARAMETER],
        responses: responses({ 200: json(ref('ActivityAnswer'), 'the activity') }, [
          400,
          404,
          ...GUARDED_ERRORS,
        ]),
      },
    },
    '/api/backoffice/activity-logs/{id}/proof': {
      get: {
        operationId: 'getActivityProof',
        tags: ['query'],
        summary: "The activity's inclusion proof",
        description:
          "The row's leaf, its Merkle path in its seal, the seals from it to the first checkpoint signing that seal or a later one (the newest with `anchor=latest`), and that checkpoint, from ACTIVITY_LOG_CHECKPOINT_DIR; without one, to the chain's head with `anchored: false`. Made from what the database holds: a changed row gives a proof that fails. `node examples/verify-proof.js answer.json public.pem` checks the answer as is.",
        security: ADMIN,
        parameters: [ID_PARAMETER, ...proofQueryParameters()],
        responses: responses({ 200: json(ref('ActivityProof'), 'the proof') }, [
          400,
          404,
          409,
          ...GUARDED_ERRORS,
        ]),
      },
    },
    '/api/backoffice/activity-logs/export.csv': {
      get: {
        operationId: 'exportActivitiesCsv',
        tags: ['query'],
        summary: 'Every matching activity as CSV',
        description:
          "The list’s filters, without `limit` and `cursor`; streamed, newest first. Cells a spreadsheet would run as a formula start with `'`.",
        security: ADMIN,
        parameters: queryParameters(['limit', 'cursor']),
        responses: responses(
          { 200: exportResponse('text/csv; charset=utf-8', 'RFC 4180 CSV with a header line') },
          [400, ...GUARDED_ERRORS],
        ),
      },
    },
    '/api/backoffice/activity-logs/export.ndjson': {
      get: {
        operationId: 'exportActivitiesNdjson',
        tags: ['query'],
        summary: 'Every matching activity as NDJSON',
        description:
          'The list’s filters, without `limit` and `cursor`; streamed, newest first, one Activity object a line.',
        security: ADMIN,
        parameters: queryParameters(['limit', 'cursor']),
        responses: responses(
          { 200: exportResponse('application/x-ndjson; charset=utf-8', 'one Activity as JSON a line') },
          [400, ...GUARDED_ERRORS],
        ),
      },
    },
    '/api/backoffice/activity-logs/performance': {
      get: {
        operationId: 'getPerformance',
        tags: ['monitoring'],
        summary: 'The performance snapshot',
        security: ADMIN,
        responses: responses({ 200: json(ref('Performance'), 'the snapshot') }, GUARDED_ERRORS),
      },
    },
    '/api/backoffice/activity-logs/failed-jobs': {
      get: {
        operationId: 'listFailedJobs',
        tags: ['monitoring'],
        summary: 'The queue’s failed jobs, newest first',
        security: ADMIN,
        responses: responses({ 200: json(ref('FailedJobs'), 'the failed jobs') }, GUARDED_ERRORS),
      },
    },
    '/api/backoffice/activity-logs/failed-jobs/retry': {
      post: {
        operationId: 'retryFailedJobs',
        tags: ['monitoring'],
        summary: 'Put failed jobs back on the queue',
        security: ADMIN,
        parameters: [CSRF_HEADER],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('RetryFailedJobs') } },
        },
        responses: responses({ 200: json(ref('RetriedJobs'), 'the jobs retried and the ids not found') }, [
          400,
          403,
          413,
          415,
          ...GUARDED_ERRORS,
        ]),
      },
    },
    '/api/backoffice/activity-logs/host': {
      get: {
        operationId: 'getHost',
        tags: ['monitoring'],
        summary: 'The resources of the host the server runs on',
        security: ADMIN,
        responses: responses({ 200: json(ref('Host'), 'the host') }, GUARDED_ERRORS),
      },
    },
    '/metrics': {
      get: {
        operationId: 'getMetrics',
        tags: ['monitoring'],
        summary: 'Prometheus text format',
        security: ADMIN,
        responses: responses(
          {
            200: {
              description: '`activity_log_*` and the default process metrics',
              content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } },
            },
          },
          GUARDED_ERRORS,
        ),
      },
    },
    [OPENAPI_PATH]: {
      get: {
        operationId: 'getOpenApi',
        tags: ['meta'],
        summary: 'This document',
        security: [],
        responses: { 200: json({ type: 'object' }, 'the OpenAPI 3.1 description of the HTTP API') },
      },
    },
    '/backoffice': {
      get: {
        operationId: 'getBackoffice',
        tags: ['backoffice'],
        summary: 'Redirects to the activity browser',
        security: [],
        responses: { 303: redirect('to /backoffice/activity-logs') },
      },
    },
    '/backoffice/': {
      get: {
        operationId: 'getBackofficeSlash',
        tags: ['backoffice'],
        summary: 'Redirects to the activity browser',
        security: [],
        responses: { 303: redirect('to /backoffice/activity-logs') },
      },
    },
    '/backoffice/activity-logs': {
      get: {
        operationId: 'getActivityBrowserPage',
        tags: ['backoffice'],
        summary: 'The activity browser (HTML)',
        security: ADMIN,
        responses: responses(
          {
            200: html('the page'),
            303: redirect('without a session: to /backoffice/login?next=…'),
          },
          [429, 500, 503],
        ),
      },
    },
    '/backoffice/activity-logs/performance': {
      get: {
        operationId: 'getPerformancePage',
        tags: ['backoffice'],
        summary: 'The performance dashboard (HTML)',
        security: ADMIN,
        responses: responses(
          {
            200: html('the page'),
            303: redirect('without a session: to /backoffice/login?next=…'),
          },
          [429, 500, 503],
        ),
      },
    },
    '/backoffice/login': {
      get: {
        operationId: 'getSignInPage',
        tags: ['backoffice'],
        summary: 'The sign-in page (HTML)',
        security: [],
        parameters: [
          {
            name: 'next',
            in: 'query',
            required: false,
            description: 'a backoffice path to go to after signing in',
            schema: { type: 'string' },
          },
          { name: 'signed_out', in: 'query', required: false, schema: { type: 'string' } },
        ],
        responses: {
          200: html('the sign-in form'),
          303: redirect('already signed in: to `next`'),
          429: html('too many wrong tokens from this address'),
          503: html('ACTIVITY_LOG_ADMIN_TOKEN is not set'),
        },
      },
      post: {
        operationId: 'signIn',
        tags: ['backoffice'],
        summary: 'Exchange the admin token for a session cookie',
        description: `Sets the HttpOnly, SameSite=Strict cookie \`${SESSION_COOKIE}\` (Secure over HTTPS) for ${SESSION_TTL_MS / 3_600_000} hours.`,
        security: [],
        requestBody: {
          required: true,
          content: {
            'application/x-www-form-urlencoded': { schema: ref('SignIn') },
            'application/json': { schema: ref('SignIn') },
          },
        },
        responses: responses(
          {
            303: {
              ...redirect('signed in: to `next`'),
              headers: {
                Location: { schema: { type: 'string' } },
                'Set-Cookie': { schema: { type: 'string' } },
              },
            },
            401: html('not the admin token'),
            429: html('too many wrong tokens from this address'),
          },
          [400, 403, 413, 415, 500, 503],
        ),
      },
    },
    '/backoffice/logout': {
      post: {
        operationId: 'signOut',
        tags: ['backoffice'],
        summary: 'End the session',
        security: [],
        requestBody: {
          required: false,
          content: {
            'application/x-www-form-urlencoded': {
              schema: {
                type: 'object',
                properties: {
                  _csrf: { type: 'string', description: 'the CSRF token of the signed-in page' },
                },
              },
            },
          },
        },
        responses: responses(
          { 303: redirect('to /backoffice/login?signed_out=1') },
          [400, 403, 413, 415, 500],
        ),
      },
    },
  };

  return {
    openapi: '3.1.1',
    info: {
      title: 'activity-log',
      version: packageVersion(),
      description: `The HTTP API of \`activity-log serve\`: ingest, query, export and monitoring. Every error answers \`{ "success": false, "error": { "code", "message", "details"? } }\`; every answer carries \`Cache-Control: no-store\`. Not listed: the backoffice's static scripts and styles under ${UNDESCRIBED_PATH_PREFIXES.join(', ')} (e.g. ${ACTIVITY_FIELDS_SCRIPT_PATH}), and HEAD, which every GET route answers too. Any request may also be answered 404 \`NOT_FOUND\` (no such route), 408 \`REQUEST_TIMEOUT\`, 431 \`HEADERS_TOO_LARGE\` or 503 \`SERVER_CLOSING\` in the same shape.`,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    tags: [
      { name: 'health' },
      { name: 'ingest' },
      { name: 'query' },
      { name: 'monitoring' },
      { name: 'backoffice' },
      { name: 'meta' },
    ],
    paths,
    components: {
      schemas,
      responses: Object.fromEntries(
        (Object.keys(ERROR_STATUSES) as unknown as ErrorStatus[]).map((status) => [
          errorName(status),
          errorResponse(Number(status) as ErrorStatus),
        ]),
      ),
      securitySchemes: {
        adminToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'the token in ACTIVITY_LOG_ADMIN_TOKEN',
        },
        ingestToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'the token in ACTIVITY_LOG_INGEST_TOKEN',
        },
        backofficeSession: {
          type: 'apiKey',
          in: 'cookie',
          name: SESSION_COOKIE,
          description:
            'the session cookie from POST /backoffice/login; state-changing requests also send its CSRF token in `x-csrf-token`',
        },
      },
    },
  };
}

/** The document as `docs/openapi.json` holds it: two-space indented, with a final newline. */
export function openApiDocumentText(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}
