import { Cluster, type ClusterOptions, type Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/config.js';
import { type ConnectionWatch, watchNode } from './redis-connection-watch.js';

/**
 * Between two tries of a command whose node went away (a master failing over), ioredis waits this
 * long and fetches the slots again; with {@link MAX_REDIRECTIONS} tries a command rides out a
 * failover of about five seconds (Redis's `cluster-node-timeout` plus the replica's election).
 */
const RETRY_DELAY_ON_FAILOVER_MS = 300;
const MAX_REDIRECTIONS = 16;

export interface ClusterClientOptions {
  /** Options of each node's connection (timeouts, retries per request, name, password). */
  readonly nodeOptions: RedisOptions;
  /** Whether commands wait while the cluster is being connected to (the role decides). */
  readonly enableOfflineQueue: boolean;
  readonly lazyConnect: boolean;
  /** Delay before connecting again after every node was lost, or null to give up. */
  readonly clusterRetryStrategy: ((times: number) => number) | (() => null);
  /** Longest wait for CLUSTER SLOTS. */
  readonly slotsRefreshTimeoutMs: number;
  readonly watch: ConnectionWatch;
}

/**
 * An ioredis `Cluster` over `redis.clusterNodes`. Every connection it opens to a node is watched
 * like a single Redis client's (a dead one is destroyed; the cluster fetches the slots again and
 * reconnects), and so are those of its copies (BullMQ's blocking connection), which allow the
 * blocking wait on top and have no command timeout, as BullMQ bounds its blocking waits itself.
 */
export function createClusterClient(redis: RedisConfig, options: ClusterClientOptions): Cluster {
  const clusterOptions: ClusterOptions = {
    redisOptions: {
      ...options.nodeOptions,
      ...(redis.password === null ? {} : { password: redis.password }),
    },
    enableOfflineQueue: options.enableOfflineQueue,
    lazyConnect: options.lazyConnect,
    clusterRetryStrategy: options.clusterRetryStrategy,
    slotsRefreshTimeout: options.slotsRefreshTimeoutMs,
    retryDelayOnFailover: RETRY_DELAY_ON_FAILOVER_MS,
    retryDelayOnClusterDown: RETRY_DELAY_ON_FAILOVER_MS,
    retryDelayOnTryAgain: RETRY_DELAY_ON_FAILOVER_MS,
    maxRedirections: MAX_REDIRECTIONS,
  };
  const client = new Cluster(
    redis.clusterNodes.map((node) => ({ host: node.host, port: node.port })),
    clusterOptions,
  );
  watchCluster(client, options.watch);
  return client;
}

function watchCluster(client: Cluster, watch: ConnectionWatch): void {
  client.on('+node', (node: Redis) => watchNode(node, watch));
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (nodes?: ConstructorParameters<typeof Cluster>[0], override?: ClusterOptions) => {
    const copy = duplicate(nodes ?? [], {
      ...override,
      redisOptions: { ...client.options.redisOptions, ...override?.redisOptions, commandTimeout: undefined },
    });
    watchCluster(copy, {
      ...watch,
      silenceTimeoutMs: watch.silenceTimeoutMs + watch.blockingWaitMs,
      blockingWaitMs: 0,
    });
    return copy;
  };
}

/** `redis://host:port,host:port (cluster)`: the configured nodes, without credentials. */
export function describeCluster(redis: RedisConfig): string {
  const nodes = redis.clusterNodes.map((node) =>
    node.host.includes(':') ? `[${node.host}]:${node.port}` : `${node.host}:${node.port}`,
  );
  return `redis://${nodes.join(',')} (cluster)`;
}
