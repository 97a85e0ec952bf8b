import type { RedisClient } from './redis-connection.js';

/** How often a worker told to stop looks whether Redis has gone away under the command it waits for. */
const OFFLINE_STOP_POLL_MS = 100;

/**
 * Resolves with `promise`, or with `fallback` once `stopSignal` has fired while `redis` is not
 * connected: commands wait in the client's offline queue until Redis is back, and a stopping
 * worker (SIGTERM from a supervisor) must not wait for that.
 *
 * @example
 * const job = await unlessStoppingOffline(redis, stop.signal, bull.getNextJob(token), undefined);
 */
export function unlessStoppingOffline<T>(
  redis: RedisClient,
  stopSignal: AbortSignal,
  promise: Promise<T>,
  fallback: T,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let poll: NodeJS.Timeout | null = null;
    const giveUp = () => {
      if (redis.status === 'ready') return;
      cleanUp();
      promise.catch(() => undefined);
      resolve(fallback);
    };
    const startPolling = () => {
      giveUp();
      poll ??= setInterval(giveUp, OFFLINE_STOP_POLL_MS);
    };
    const cleanUp = () => {
      if (poll !== null) clearInterval(poll);
      stopSignal.removeEventListener('abort', startPolling);
    };
    if (stopSignal.aborted) startPolling();
    else stopSignal.addEventListener('abort', startPolling, { once: true });
    promise.then(
      (value) => {
        cleanUp();
        resolve(value);
      },
      (error: unknown) => {
        cleanUp();
        reject(error);
      },
    );
  });
}
