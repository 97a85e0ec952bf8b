import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isUuid } from '../../core/activity.js';
import { ActivityLogError } from '../../core/errors.js';
import type { ActivityProofs } from '../../runtime/activity-proofs.js';
import { storedActivityToJson } from '../activity-export.js';
import { requireToken } from '../auth.js';
import { zodFailure } from '../zod-failure.js';

export interface BackofficeActivityRouteOptions {
  readonly proofs: Pick<ActivityProofs, 'activity' | 'proof'>;
  readonly adminToken: string | null;
}

/** The query string of the proof route; `GET /openapi.json` describes it. */
export const proofQuerySchema = z.strictObject({
  anchor: z.enum(['first', 'latest'], { error: 'must be first or latest' }).optional().meta({
    description:
      "which checkpoint anchors the proof: `first` (default), the first signing the row's seal or a later one, the shortest proof; `latest`, the newest",
  }),
});

/** The `:id` of the path, lower-cased as ids are stored; anything but a UUID is a 400 naming it. */
export function parseActivityId(id: string): string {
  if (!isUuid(id)) {
    throw new ActivityLogError(
      'VALIDATION_FAILED',
      `id must be a UUID, e.g. 0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b (got ${JSON.stringify(id)})`,
      { field: 'id' },
    );
  }
  return id.toLowerCase();
}

/**
 * `GET /api/backoffice/activity-logs/:id` (one activity, as the list answers each) and
 * `GET /api/backoffice/activity-logs/:id/proof` (its inclusion proof, `integrity/inclusion-proof.ts`,
 * with the server's own check of it), both with the admin token or session.
 */
export function registerBackofficeActivityRoutes(
  app: FastifyInstance,
  options: BackofficeActivityRouteOptions,
): void {
  const { proofs } = options;
  const onRequest = requireToken({ token: options.adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' });
  app.get<{ Params: { id: string } }>('/api/backoffice/activity-logs/:id', { onRequest }, async (request) => {
    const id = parseActivityId(request.params.id);
    const stored = await proofs.activity(id);
    if (stored === null) throw new ActivityLogError('NOT_FOUND', `no activity ${id}`, { field: 'id' });
    const erased = stored.erased ? new Set([id]) : undefined;
    return { success: true, data: storedActivityToJson(stored.activity, erased) };
  });
  app.get<{ Params: { id: string }; Querystring: unknown }>(
    '/api/backoffice/activity-logs/:id/proof',
    { onRequest },
    async (request) => {
      const id = parseActivityId(request.params.id);
      const query = proofQuerySchema.safeParse(request.query ?? {});
      if (!query.success) {
        throw zodFailure(query.error, { root: 'query', noun: 'query parameter', allowedKeys: ['anchor'] });
      }
      const { proof, check } = await proofs.proof(id, query.data.anchor ?? 'first');
      return {
        success: true,
        data: proof,
        server_check: check.verified
          ? { verified: true, anchored: check.anchored }
          : { verified: false, problem: check.problem },
      };
    },
  );
}
