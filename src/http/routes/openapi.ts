import type { FastifyInstance } from 'fastify';
import { OPENAPI_PATH, openApiDocument } from '../openapi.js';

/** The document depends on no configuration: it is built once per process, when first served. */
let documentJson: string | undefined;

/**
 * `GET /openapi.json`, without auth: the OpenAPI 3.1 description of the HTTP API. It describes
 * the routes and reveals no data or configuration; every server answers the same document,
 * the one checked in as `docs/openapi.json`.
 */
export function registerOpenApiRoute(app: FastifyInstance): void {
  app.get(OPENAPI_PATH, async (_request, reply) => {
    documentJson ??= JSON.stringify(openApiDocument());
    return reply.type('application/json; charset=utf-8').send(documentJson);
  });
}
