import type { Request, RequestHandler } from 'express';
import {
  bindEmitterToContext,
  defaultRequestCauser,
  type RequestContextOptions,
  requestContext,
  runWithContext,
} from '../core/context.js';

/** Options of {@link activityLogMiddleware}. */
export type ExpressActivityLogOptions = RequestContextOptions<Request>;

/**
 * Express middleware: everything logged while handling a request — in handlers, after awaits, in
 * callbacks deferred past the response, in ORM hooks — gets the request's causer, client IP
 * (`req.ip`, so Express's `trust proxy` setting decides which address that is), URL (its secret
 * query parameters redacted when stored), method and user agent. Values passed to `log()`
 * explicitly win. Mount it before the routes; body parsers may come before or after it.
 *
 * @example
 * import express from 'express';
 * import { activityLogMiddleware } from 'activity-log/express';
 *
 * const app = express();
 * app.set('trust proxy', 'loopback');
 * app.use(activityLogMiddleware({ causer: (req) => req.user, batchPerRequest: true }));
 * app.post('/orders', async (req, res) => {
 *   const order = await orders.create(req.body);
 *   await activityLog.log({ description: 'created order', subject: order, event: 'created' });
 *   res.status(201).json(order);
 * });
 */
export function activityLogMiddleware(options: ExpressActivityLogOptions = {}): RequestHandler {
  const causer = options.causer ?? defaultRequestCauser;
  const batchPerRequest = options.batchPerRequest === true;
  const skip = options.skip;
  return (req, res, next) => {
    if (skip?.(req) === true) {
      next();
      return;
    }
    const context = requestContext(
      {
        ip: req.ip,
        url: req.originalUrl,
        method: req.method,
        userAgent: req.headers['user-agent'],
        resolveCauser: () => causer(req),
      },
      batchPerRequest,
    );
    runWithContext(context, () => {
      bindEmitterToContext(req);
      bindEmitterToContext(res);
      next();
    });
  };
}
