import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config, RedisConfig } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';
import { restartMarkerKey } from './queue-keys.js';
import { createClusterClient, describeCluster } from './redis-cluster.js';
import { watchConnections } from './redis-connection-watch.js';

/**
 * A connection to the queue's Redis: one server, or a Redis Cluster (`REDIS_CLUSTER_NODES`). Every
 * key this library and BullMQ use carries the `{activity-log}` hash tag, so on a cluster they all
 * live in one slot and every multi-key command and script works unchanged.
 */
export type RedisClient = Redis | Cluster;

/**
 * What a connection is for; each role trades waiting against failing differently.
 *
 * - `producer`: used from the application's process. It must never make a caller wait, so it
 *   has no offline queue and one retry per command.
 * - `metrics`: the monitoring of any process (heartbeat, shared figures, alerts); like the
 *   producer, it fails at once while Redis is away and tries again on its next round.
 * - `worker`: a long-running `work` process. BullMQ needs `maxRetriesPerRequest: null` here so
 *   that its blocking commands survive reconnects; commands wait up to their (longer) timeout for
 *   Redis to come back.
 * - `command`: a one-shot CLI command. It fails at once with a clear line when Redis is down.
 *
 * Every role has a command timeout, and every connection is closed and opened again when Redis
 * stops sending while a command waits for it (see {@link createRedisClient}).
 */
export type RedisRole = 'producer' | 'metrics' | 'worker' | 'command';

export interface RedisClientOptions {
  /**
   * Longest wait for the TCP connection, and then for Redis's first reply on it (default 2000 ms):
   * a load balancer in front of a dead server accepts connections that never answer.
   */
  readonly connectTimeoutMs?: number;
  /**
   * Longest wait for one command (default 5000 ms; 30000 ms for `worker`, whose commands wait
   * through a short outage). A command still unanswered then rejects with "Command timed out".
   */
  readonly commandTimeoutMs?: number;
  /**
   * `worker`: the longest a blocking command (BullMQ's BZPOPMIN for the next job) legitimately
   * waits. The connections BullMQ makes for those commands (copies of this client) allow that
   * long on top of the usual silence before they count as dead.
   */
  readonly blockingWaitMs?: number;
  /** Connect only when {@link connectRedis} is called (default false). */
  readonly lazyConnect?: boolean;
  /** Called with connection errors (ioredis reports them as events; unheard, it prints them). */
  readonly onError?: (error: Error) => void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_COMMAND_TIMEOUT_MS = 5000;
const DEFAULT_WORKER_COMMAND_TIMEOUT_MS = 30_000;
/**
 * A connection that receives nothing for this long while a command waits is dead: it is closed
 * and a new one opened. Redis answers a command in microseconds to milliseconds, so a healthy
 * connection is never silent this long unless a command blocks on purpose.
 */
const REDIS_SILENCE_TIMEOUT_MS = 5000;
const MAX_RECONNECT_DELAY_MS = 5000;

/** `redis://host:port` (or the cluster's nodes) without credentials, for messages and logs. */
export function describeRedis(redis: RedisConfig): string {
  if (redis.clusterNodes.length > 0) return describeCluster(redis);
  if (redis.url !== null) {
    try {
      const url = new URL(redis.url);
      return `${url.protocol}//${url.hostname}:${url.port === '' ? '6379' : url.port}`;
    } catch {
      return 'REDIS_URL';
    }
  }
  return `redis://${redis.host}:${redis.port}`;
}

/**
 * The queue backend is on only with `QUEUE_CONNECTION=redis` (as in DESIGN: "`redis` enables the
 * queue backend"), so a forgotten variable is a clear start-up error rather than a silent fallback.
 */
export function assertQueueEnabled(config: Config, what: string, hint?: string): void {
  if (config.queueConnection !== 'redis') {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      `QUEUE_CONNECTION=${config.queueConnection} is not allowed with ${what}: expected redis (set QUEUE_CONNECTION=redis and REDIS_URL or REDIS_HOST/REDIS_PORT${hint === undefined ? '' : `; ${hint}`})`,
      { field: 'QUEUE_CONNECTION' },
    );
  }
}

/**
 * An ioredis client for `redis`, tuned for `role` (see {@link RedisRole}).
 *
 * A dead connection is not left in place: ioredis's command timeout rejects a command but keeps
 * the socket, and behind a load balancer whose server died the socket stays open and silent
 * forever. So a connection that receives nothing for {@link REDIS_SILENCE_TIMEOUT_MS} while a
 * command waits, or nothing within the connect timeout of opening, is destroyed, and the client
 * reconnects (except `command`, which fails). The commands it carried are retried on the new
 * connection or rejected, as the role says. (ioredis's own `socketTimeout` is not used: its timer
 * outlives the connection it was set for, fires against the next one and holds a closed client's
 * process open.)
 */
export function createRedisClient(
  redis: RedisConfig,
  role: RedisRole,
  options: RedisClientOptions = {},
): RedisClient {
  const connectTimeout = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const commandTimeout =
    options.commandTimeoutMs ??
    (role === 'worker' ? DEFAULT_WORKER_COMMAND_TIMEOUT_MS : DEFAULT_COMMAND_TIMEOUT_MS);
  const roleOptions: RedisOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null, enableOfflineQueue: true }
      : role === 'command'
        ? // A CLI command gives up on the first failed connection instead of reconnecting forever.
          { maxRetriesPerRequest: 1, enableOfflineQueue: true, retryStrategy: () => null }
        : { maxRetriesPerRequest: 1, enableOfflineQueue: false };
  const common: RedisOptions = {
    connectTimeout,
    commandTimeout,
    lazyConnect: options.lazyConnect ?? false,
    connectionName: `activity-log-${role}`,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
    ...roleOptions,
  };
  const watch = {
    server: describeRedis(redis),
    firstReplyTimeoutMs: connectTimeout,
    silenceTimeoutMs: REDIS_SILENCE_TIMEOUT_MS,
    blockingWaitMs: options.blockingWaitMs ?? 0,
  };
  let client: RedisClient;
  if (redis.clusterNodes.length > 0) {
    // A node's connection never reconnects on its own in a cluster: the cluster fetches the slots
    // again and opens a new one, or, once every node is lost, reconnects as the role says.
    const { retryStrategy, enableOfflineQueue, lazyConnect, ...nodeOptions } = common;
    client = createClusterClient(redis, {
      nodeOptions,
      enableOfflineQueue: enableOfflineQueue ?? true,
      lazyConnect: lazyConnect ?? false,
      clusterRetryStrategy: retryStrategy as (times: number) => number,
      slotsRefreshTimeoutMs: connectTimeout,
      watch,
    });
  } else {
    client =
      redis.url !== null
        ? new Redis(redis.url, common)
        : new Redis({
            ...common,
            host: redis.host,
            port: redis.port,
            ...(redis.password === null ? {} : { password: redis.password }),
          });
    watchConnections(client, watch);
  }
  const onError = options.onError ?? (() => {});
  client.on('error', onError);
  return client;
}

/**
 * Connects a lazily created client, turning a refused or timed-out connection into one coded
 * error that names the server (never the password).
 */
export async function connectRedis(client: RedisClient, redis: RedisConfig): Promise<void> {
  if (client.status === 'ready') return;
  // ioredis rejects with a bare "Connection is closed."; the error event carries the reason.
  let reason: unknown = null;
  const recordReason = (error: Error) => {
    reason ??= error;
  };
  client.on('error', recordReason);
  try {
    if (client.status === 'wait') await client.connect();
    else await client.ping();
  } catch (error) {
    disconnectRedis(client);
    throw queueUnavailable(redis, reason ?? error);
  } finally {
    client.off('error', recordReason);
  }
}

/** `QUEUE_UNAVAILABLE` naming the server and the driver's reason. */
export function queueUnavailable(redis: RedisConfig, cause: unknown): ActivityLogError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ActivityLogError(
    'QUEUE_UNAVAILABLE',
    `Redis at ${describeRedis(redis)} is not reachable: ${reason}`,
    { cause },
  );
}

const CONNECTION_ERROR =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|Connection is closed|Command timed out|Stream isn't writeable|max retries per request/i;

/** Whether an ioredis error means "Redis is not reachable" rather than "this command is wrong". */
export function isRedisConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return CONNECTION_ERROR.test(error.message) || (typeof code === 'string' && CONNECTION_ERROR.test(code));
}

/** Closes a client politely when it is connected, at once when it is not (QUIT would wait). */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    disconnectRedis(client);
    return;
  }
  try {
    await client.quit();
  } catch {
    disconnectRedis(client);
  }
}

/**
 * Drops a client's connection now; it ends within ioredis's disconnect timeout (2 s), its
 * unanswered commands rejected with "Connection is closed.". Between two reconnect attempts
 * ioredis's `disconnect()` alone would leave it 'reconnecting' for ever, its queued commands
 * never settled and their timers holding the process open, so a last attempt is started and
 * dropped with it.
 */
export function disconnectRedis(client: RedisClient): void {
  if (client.status === 'end') return;
  if (client.status === 'reconnecting') client.connect().catch(() => undefined);
  client.disconnect();
}

/**
 * The Redis server's clock in ms, so `restart` markers compare across hosts with skewed clocks. On
 * a cluster, the clock of the node that holds the queue's keys (TIME alone goes to any node).
 */
export async function redisTimeMs(redis: RedisClient): Promise<number> {
  const [seconds, micros] =
    redis instanceof Cluster
      ? ((await redis.eval("return redis.call('TIME')", 1, restartMarkerKey())) as [string, string])
      : await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/**
 * Resolves once a client that is still making its first connection is ready, or after
 * `timeoutMs`; at once when it is ready, or reconnecting after an outage (callers then fail fast).
 */
export function whenConnected(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status !== 'wait' && redis.status !== 'connecting' && redis.status !== 'connect') {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    redis.once('ready', done);
  });
}

/**
 * The servers behind a client: itself, or every node of a cluster (masters and replicas: a replica
 * becomes a master on failover), for what each server answers for itself (CONFIG, INFO, SCAN).
 */
export function redisServers(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('all') : [redis];
}

/**
 * Deletes every key matching `pattern`, a page of keys at a time (SCAN, never KEYS); on a cluster,
 * the keys of every master, each deleted through the cluster so that it reaches its slot's node.
 */
export async function deleteKeysMatching(redis: RedisClient, pattern: string): Promise<void> {
  const servers = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const server of servers) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      if (keys.length === 0) continue;
      if (redis instanceof Cluster) await Promise.all(keys.map((key) => redis.del(key)));
      else await redis.del(...keys);
    } while (cursor !== '0');
  }
}
