import { AsyncLocalStorage } from 'node:async_hooks';
import type { ModelLike } from './activity.js';

/**
 * Values captured around a unit of work (a request, a job, a `withinBatch` call) and applied to
 * every activity logged inside it. Explicit values passed to `log()` always win.
 */
export interface ActivityContext {
  readonly batchUuid?: string | undefined;
  readonly causer?: ModelLike | null | undefined;
  readonly ipAddress?: string | undefined;
  readonly url?: string | undefined;
  readonly method?: string | undefined;
  readonly userAgent?: string | undefined;
}

const storage = new AsyncLocalStorage<ActivityContext>();

/** The context of the current async execution, if any. */
export function currentContext(): ActivityContext | undefined {
  return storage.getStore();
}

/** Runs `fn` with `context` merged over the current one (inner values win). */
export function runWithContext<T>(context: ActivityContext, fn: () => T): T {
  const parent = storage.getStore();
  return storage.run(parent === undefined ? context : { ...parent, ...context }, fn);
}
