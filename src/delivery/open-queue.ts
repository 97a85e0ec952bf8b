import { Queue } from 'bullmq';
import { QUEUE_PREFIX } from './queue-keys.js';
import type { RedisClient } from './redis-connection.js';

export interface OpenQueueOptions {
  /**
   * Write the queue's meta hash (BullMQ version, event stream length), as the producer does.
   * Default false: a queue opened to read or administer it leaves the meta hash alone.
   */
  readonly updateMeta?: boolean;
}

/**
 * A BullMQ `Queue` on a client this library owns and closes itself.
 *
 * BullMQ starts every connection it is given by waiting for 'ready' and sending INFO (its version
 * check). On a shared client that start-up can still be pending when the queue is closed — Redis
 * stopped answering, or the client is closed right after connecting — and when it then fails,
 * BullMQ re-emits the error on a connection whose listeners `close()` has removed: an unhandled
 * rejection ("Connection is closed.", "Command timed out") that ends the process. Queues opened
 * here skip both steps, so nothing of theirs is left in flight: the client is connected by its
 * owner, and no queue operation needs the server's version (BullMQ falls back to scripts that
 * work on every version; only workers' blocking commands depend on it).
 *
 * @example
 * const queue = openQueue<ActivityJobData>(redis, 'activity-logs');
 * const counts = await queue.getJobCounts('wait', 'failed');
 * await queue.close();
 */
export function openQueue<Data>(
  client: RedisClient,
  queueName: string,
  options: OpenQueueOptions = {},
): Queue<Data> {
  const queue = new Queue<Data>(queueName, {
    connection: client,
    prefix: QUEUE_PREFIX,
    skipVersionCheck: true,
    skipWaitingForReady: true,
    skipMetasUpdate: options.updateMeta !== true,
  });
  // The client's owner hears its connection errors; an unheard 'error' event would throw.
  queue.on('error', () => undefined);
  return queue;
}
