import type { FastifyInstance } from 'fastify';
import { OPENAPI_PATH, openApiDocument } from '../openapi.js';

/**
 * `GET /openapi.json`, without auth: the OpenAPI 3.1 description of the HTTP API. It describes
 * the routes and reveals no data or configuration; every server answers the same document,
 * the one checked in as `docs/openapi.json`.
 */
export function registerOpenApiRoute(app: FastifyInstance): void {
  const document = JSON.stringify(openApiDocument());
  app.get(OPENAPI_PATH, async (_request, reply) =>
    reply.type('application/json; charset=utf-8').send(document),
  );
}
