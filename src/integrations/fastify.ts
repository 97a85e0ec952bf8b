import type { FastifyPluginCallback, FastifyRequest } from 'fastify';
import {
  defaultRequestCauser,
  type RequestContextOptions,
  requestContext,
  runWithContext,
} from '../core/context.js';

/** Options of {@link activityLogPlugin}. */
export type FastifyActivityLogOptions = RequestContextOptions<FastifyRequest>;

function registerActivityLogHooks(
  fastify: Parameters<FastifyPluginCallback<FastifyActivityLogOptions>>[0],
  options: FastifyActivityLogOptions,
  done: (error?: Error) => void,
): void {
  const causer = options.causer ?? defaultRequestCauser;
  const batchPerRequest = options.batchPerRequest === true;
  const skip = options.skip;

  fastify.addHook('onRequest', (request, _reply, next) => {
    if (skip?.(request) === true) {
      next();
      return;
    }
    const context = requestContext(
      {
        ip: request.ip,
        url: request.url,
        method: request.method,
        userAgent: request.headers['user-agent'],
        resolveCauser: () => causer(request),
      },
      batchPerRequest,
    );
    // Fastify carries the async context through body parsing itself, so the hooks and handler that
    // follow this one all run inside it.
    runWithContext(context, next);
  });

  done();
}

/**
 * Fastify plugin: everything logged while handling a request — in handlers, hooks, after awaits, in
 * work deferred past the reply — gets the request's causer, client IP (`request.ip`, so Fastify's
 * `trustProxy` option decides which address that is), URL (its secret query parameters redacted
 * when stored), method and user agent. Values passed to `log()` explicitly win. Registered without
 * encapsulation, so it covers every route of the instance it is registered on.
 *
 * @example
 * import Fastify from 'fastify';
 * import { activityLogPlugin } from 'activity-log/fastify';
 *
 * const app = Fastify({ trustProxy: '127.0.0.1' });
 * await app.register(activityLogPlugin, { causer: (request) => request.user, batchPerRequest: true });
 * app.post('/orders', async (request) => {
 *   const order = await orders.create(request.body);
 *   await activityLog.log({ description: 'created order', subject: order, event: 'created' });
 *   return order;
 * });
 */
export const activityLogPlugin: FastifyPluginCallback<FastifyActivityLogOptions> = Object.assign(
  registerActivityLogHooks,
  {
    // What fastify-plugin sets: the hooks apply to the parent instance, not only inside the plugin.
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: 'activity-log',
  },
);
