import { Redis, type RedisOptions } from 'ioredis';
import type { Config, RedisConfig } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';

/**
 * What a connection is for; each role trades waiting against failing differently.
 *
 * - `producer`: used from the application's process. It must never make a caller wait, so it
 *   has no offline queue, one retry per command and a command timeout.
 * - `worker`: a long-running `work` process. BullMQ needs `maxRetriesPerRequest: null` here so
 *   that its blocking commands survive reconnects; commands wait for Redis to come back.
 * - `command`: a one-shot CLI command. It fails at once with a clear line when Redis is down.
 */
export type RedisRole = 'producer' | 'worker' | 'command';

export interface RedisClientOptions {
  /** Longest wait for the TCP connection (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** Longest wait for one command on `producer` and `command` connections (default 5000 ms). */
  readonly commandTimeoutMs?: number;
  /** Connect only when {@link connectRedis} is called (default false). */
  readonly lazyConnect?: boolean;
  /** Called with connection errors (ioredis reports them as events; unheard, it prints them). */
  readonly onError?: (error: Error) => void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_COMMAND_TIMEOUT_MS = 5000;
const MAX_RECONNECT_DELAY_MS = 5000;

/** `redis://host:port` without credentials, for messages and logs. */
export function describeRedis(redis: RedisConfig): string {
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
export function assertQueueEnabled(config: Config, what: string): void {
  if (config.queueConnection !== 'redis') {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      `QUEUE_CONNECTION=${config.queueConnection} is not allowed with ${what}: expected redis (set QUEUE_CONNECTION=redis and REDIS_URL or REDIS_HOST/REDIS_PORT)`,
      { field: 'QUEUE_CONNECTION' },
    );
  }
}

/** An ioredis client for `redis`, tuned for `role` (see {@link RedisRole}). */
export function createRedisClient(
  redis: RedisConfig,
  role: RedisRole,
  options: RedisClientOptions = {},
): Redis {
  const connectTimeout = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const commandTimeout = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const roleOptions: RedisOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null, enableOfflineQueue: true }
      : role === 'producer'
        ? { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout }
        : // A CLI command gives up on the first failed connection instead of reconnecting forever.
          { maxRetriesPerRequest: 1, enableOfflineQueue: true, commandTimeout, retryStrategy: () => null };
  const common: RedisOptions = {
    connectTimeout,
    lazyConnect: options.lazyConnect ?? false,
    connectionName: `activity-log-${role}`,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
    ...roleOptions,
  };
  const client =
    redis.url !== null
      ? new Redis(redis.url, common)
      : new Redis({
          ...common,
          host: redis.host,
          port: redis.port,
          ...(redis.password === null ? {} : { password: redis.password }),
        });
  const onError = options.onError ?? (() => {});
  client.on('error', onError);
  return client;
}

/**
 * Connects a lazily created client, turning a refused or timed-out connection into one coded
 * error that names the server (never the password).
 */
export async function connectRedis(client: Redis, redis: RedisConfig): Promise<void> {
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
    client.disconnect();
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
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
