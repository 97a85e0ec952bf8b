import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import { describe, expect } from 'vitest';
import type { z } from 'zod';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import {
  activityAnswerSchema,
  activityPageSchema,
  errorSchema,
  failedJobsSchema,
  healthSchema,
  hostSchema,
  ingestAcceptedSchema,
  OPENAPI_PATH,
  openApiDocumentText,
  performanceSchema,
  retriedJobsSchema,
  UNDESCRIBED_PATH_PREFIXES,
} from '../../src/http/openapi.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const INGEST_TOKEN = 'ingest-token-for-tests';
const ADMIN_TOKEN = 'admin-token-for-tests';
const adminAuth = { authorization: `Bearer ${ADMIN_TOKEN}` };

const DOCS_FILE = new URL('../../docs/openapi.json', import.meta.url);

interface Operation {
  readonly security?: readonly Readonly<Record<string, readonly string[]>>[];
}
interface OpenApi {
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
}

const checkedIn = (): OpenApi => JSON.parse(readFileSync(DOCS_FILE, 'utf8')) as OpenApi;

/** A server on its own SQLite file, with both tokens set and the environment ignored. */
async function server(defer: TestScope['defer']): Promise<FastifyInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-openapi-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  const config = {
    database: { connection: 'sqlite' as const, filename: join(dir, 'activity-log.sqlite') },
    method: 'sync' as const,
    adminToken: ADMIN_TOKEN,
    ingestToken: INGEST_TOKEN,
    spoolDir: join(dir, 'spool'),
  };
  const composed = composeActivityLog({ env: {}, config });
  await composed.store.migrate();
  const app = createActivityLogServer(composed);
  defer(async () => {
    await app.close();
    await composed.activityLog.close();
  });
  await app.ready();
  return app;
}

/**
 * Every route and method the server registers, read from Fastify's route tree
 * (`printRoutes({ commonPrefix: false })`): each line is one node, indented four characters a
 * level, its segment followed by the methods it answers when it is a route.
 */
function registeredRoutes(app: FastifyInstance): { path: string; method: string }[] {
  const routes: { path: string; method: string }[] = [];
  const segments: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (match === null) continue;
    const depth = match[1]!.length / 4;
    segments.length = depth;
    segments.push(match[2]!);
    // Fastify writes a path parameter as `:id`, OpenAPI as `{id}`.
    const path = segments.join('').replace(/:(\w+)/g, '{$1}');
    for (const method of match[3]?.split(', ') ?? []) routes.push({ path, method });
  }
  return routes;
}

/** A real answer read with the schema the document describes it by. */
function expectShape(schema: z.ZodType, body: unknown): void {
  const result = schema.safeParse(body);
  expect(result.success ? [] : result.error.issues).toEqual([]);
}

describe('OpenAPI description', () => {
  it('is checked in as docs/openapi.json, as the server builds it', () => {
    if (readFileSync(DOCS_FILE, 'utf8') !== openApiDocumentText()) {
      expect.fail('docs/openapi.json is not the description the server builds: run `npm run openapi`');
    }
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(JSON.parse(openApiDocumentText()) as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('describes every route the server registers, and only those', async ({ defer }) => {
    const app = await server(defer);
    const document = checkedIn();
    const routes = registeredRoutes(app);
    // The tree was read: the routes of every part of the server are there.
    expect(routes).toContainEqual({ path: '/health', method: 'GET' });
    expect(routes).toContainEqual({ path: '/api/activities', method: 'POST' });
    expect(routes).toContainEqual({ path: '/backoffice/login', method: 'POST' });
    expect(routes).toContainEqual({ path: '/api/backoffice/activity-logs/export.csv', method: 'GET' });
    const described = routes
      .filter(({ path }) => !UNDESCRIBED_PATH_PREFIXES.some((prefix) => path.startsWith(prefix)))
      // Fastify answers HEAD for every GET route; the document says so once.
      .filter(
        ({ path, method }) => method !== 'HEAD' || !routes.some((r) => r.path === path && r.method === 'GET'),
      )
      .map(({ path, method }) => `${method} ${path}`);
    const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(described.filter((route) => !documented.includes(route))).toEqual([]);
    expect(documented.filter((route) => !described.includes(route))).toEqual([]);
    // Only the static assets are left out.
    expect(routes.some(({ path }) => path.startsWith('/backoffice/assets/'))).toBe(true);
  });

  it('names the guard of every route', async ({ defer }) => {
    const app = await server(defer);
    const { paths } = checkedIn();
    const securityOf = (path: string, method: string) => paths[path]![method]!.security;
    expect(securityOf('/api/activities', 'post')).toEqual([{ ingestToken: [] }]);
    expect(securityOf('/health', 'get')).toEqual([{}, { adminToken: [] }, { backofficeSession: [] }]);
    expect(securityOf(OPENAPI_PATH, 'get')).toEqual([]);
    // A route said to need a credential refuses a request without one.
    for (const [path, operations] of Object.entries(paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const needsCredential =
          (operation.security ?? []).length > 0 &&
          !operation.security!.some((s) => Object.keys(s).length === 0);
        if (!needsCredential || path.startsWith('/backoffice/')) continue;
        const response = await app.inject({ method: method.toUpperCase() as 'GET', url: path });
        expect({ route: `${method} ${path}`, status: response.statusCode }).toEqual({
          route: `${method} ${path}`,
          status: 401,
        });
      }
    }
  });

  it('is served at GET /openapi.json without auth, equal to docs/openapi.json', async ({ defer }) => {
    const app = await server(defer);
    const response = await app.inject({ method: 'GET', url: OPENAPI_PATH });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    if (response.body !== JSON.stringify(checkedIn())) {
      expect.fail('GET /openapi.json is not docs/openapi.json: run `npm run openapi`');
    }
  });

  it('describes the answers the routes give', async ({ defer }) => {
    const app = await server(defer);
    const ingested = await app.inject({
      method: 'POST',
      url: '/api/activities',
      headers: { authorization: `Bearer ${INGEST_TOKEN}` },
      payload: [
        {
          description: 'created an invoice',
          subject_type: 'Invoice',
          subject_id: 7,
          properties: { total: 3 },
        },
        { description: 'signed in', causer_type: 'User', causer_id: 'u-1', ip_address: '10.0.0.1' },
      ],
    });
    expect(ingested.statusCode).toBe(202);
    expectShape(ingestAcceptedSchema, ingested.json());

    const answers: [string, z.ZodType, number][] = [
      ['/health', healthSchema, 200],
      ['/api/backoffice/activity-logs?limit=1', activityPageSchema, 200],
      ['/api/backoffice/activity-logs', activityPageSchema, 200],
      ['/api/backoffice/activity-logs/performance', performanceSchema, 200],
      ['/api/backoffice/activity-logs/failed-jobs', failedJobsSchema, 200],
      ['/api/backoffice/activity-logs/host', hostSchema, 200],
      ['/api/backoffice/activity-logs?limit=0', errorSchema(['VALIDATION_FAILED']), 400],
    ];
    for (const [url, schema, status] of answers) {
      const response = await app.inject({ method: 'GET', url, headers: adminAuth });
      expect({ url, status: response.statusCode }).toEqual({ url, status });
      expectShape(schema, response.json());
    }
    expect(
      (await app.inject({ method: 'GET', url: '/api/backoffice/activity-logs', headers: adminAuth })).json(),
    ).toMatchObject({
      data: { length: 2 },
    });

    // The server's table is not sealed: one activity answers, its proof is refused with 409.
    const [id] = ingested.json<{ ids: string[] }>().ids;
    const single: [string, z.ZodType, number][] = [
      [`/api/backoffice/activity-logs/${id}`, activityAnswerSchema, 200],
      [
        `/api/backoffice/activity-logs/${id}/proof`,
        errorSchema(['ACTIVITY_NOT_SEALED', 'PROOF_UNAVAILABLE']),
        409,
      ],
      ['/api/backoffice/activity-logs/0190a0b0-0000-7000-8000-00000000dead', errorSchema(['NOT_FOUND']), 404],
      ['/api/backoffice/activity-logs/nope/proof', errorSchema(['VALIDATION_FAILED']), 400],
    ];
    for (const [url, schema, status] of single) {
      const response = await app.inject({ method: 'GET', url, headers: adminAuth });
      expect({ url, status: response.statusCode }).toEqual({ url, status });
      expectShape(schema, response.json());
    }

    const retried = await app.inject({
      method: 'POST',
      url: '/api/backoffice/activity-logs/failed-jobs/retry',
      headers: adminAuth,
      payload: { ids: ['1'] },
    });
    expect(retried.statusCode).toBe(200);
    expectShape(retriedJobsSchema, retried.json());

    const refused = await app.inject({ method: 'GET', url: '/api/backoffice/activity-logs/host' });
    expect(refused.statusCode).toBe(401);
    expectShape(errorSchema(['AUTH_REQUIRED']), refused.json());
  });
});
