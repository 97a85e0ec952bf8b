import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { REDIS_URL } from './queue.js';
import { REDIS, type ServiceInfo, serviceAvailable, uniqueSuffix } from './services.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../.ci/redis-cluster.sh', import.meta.url));
const FIRST_PORT = Number(process.env.TEST_REDIS_CLUSTER_PORT ?? 7101);

/** The Redis Cluster `.ci/run` starts: 3 masters and 3 replicas on six ports from 7101. */
export const REDIS_CLUSTER: ServiceInfo = {
  name: 'Redis Cluster',
  host: '127.0.0.1',
  port: FIRST_PORT,
  start: '.ci/redis-cluster.sh',
};

/** `REDIS_CLUSTER_NODES` for that cluster: every master and replica. */
export const REDIS_CLUSTER_NODES = clusterNodes(FIRST_PORT);

function clusterNodes(firstPort: number): string {
  return Array.from({ length: 6 }, (_, i) => `127.0.0.1:${firstPort + i}`).join(',');
}

/** A Redis the queue suites run against, and the environment that points the library at it. */
export interface RedisTarget {
  readonly name: string;
  readonly service: ServiceInfo;
  readonly env: Readonly<Record<string, string>>;
}

export const SINGLE_REDIS_TARGET: RedisTarget = { name: 'single Redis', service: REDIS, env: { REDIS_URL } };
export const REDIS_CLUSTER_TARGET: RedisTarget = {
  name: 'Redis Cluster',
  service: REDIS_CLUSTER,
  env: { REDIS_CLUSTER_NODES },
};

/**
 * The targets that answer. Under `CI=true` a missing one fails the run; elsewhere it is left out
 * with one line saying how to start it (as for every service of the integration suites).
 */
export async function availableRedisTargets(): Promise<RedisTarget[]> {
  const targets: RedisTarget[] = [];
  for (const target of [SINGLE_REDIS_TARGET, REDIS_CLUSTER_TARGET]) {
    if (await serviceAvailable(target.service)) targets.push(target);
  }
  return targets;
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args]);
  return stdout.replace(/\r/g, '');
}

/** A cluster of the test's own, which it may break (kill a master). */
export interface PrivateCluster {
  /** `REDIS_CLUSTER_NODES` for it. */
  readonly nodes: string;
  readonly ports: readonly number[];
  /** Port of the master that serves `key`'s slot now. */
  masterOf(key: string): Promise<number>;
  /** The pid of the redis-server on `port`. */
  pidOf(port: number): Promise<number>;
  /** Whether every live node says cluster_state:ok and `port` is a master. */
  isMaster(port: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Starts a 3-master, 3-replica cluster on six ports from `firstPort` with `.ci/redis-cluster.sh`
 * (no persistence), its files in a directory of its own.
 */
export async function startPrivateCluster(firstPort: number): Promise<PrivateCluster> {
  const dir = join(tmpdir(), `activity-log-cluster-${uniqueSuffix()}`);
  await run(SCRIPT, [String(firstPort), dir], { timeout: 60_000 });
  const ports = Array.from({ length: 6 }, (_, i) => firstPort + i);
  const alive = async () => {
    const live: number[] = [];
    for (const port of ports) {
      if (
        await redisCli(port, 'ping').then(
          (reply) => reply.trim() === 'PONG',
          () => false,
        )
      )
        live.push(port);
    }
    return live;
  };
  return {
    nodes: clusterNodes(firstPort),
    ports,
    async masterOf(key) {
      const [live] = await alive();
      const slot = Number((await redisCli(live!, 'cluster', 'keyslot', key)).trim());
      // CLUSTER NODES: id ip:port@bus flags master-id ping pong epoch state slot-ranges…
      for (const line of (await redisCli(live!, 'cluster', 'nodes')).split('\n')) {
        const [, address, flags, , , , , , ...ranges] = line.trim().split(' ');
        if (address === undefined || !/\bmaster\b/.test(flags ?? '') || /fail/.test(flags ?? '')) continue;
        for (const range of ranges) {
          const [start, end = start] = range.split('-').map(Number);
          if (slot >= start! && slot <= end!) return Number(/:(\d+)@/.exec(address)![1]);
        }
      }
      throw new Error(`no live master serves slot ${slot}`);
    },
    async pidOf(port) {
      const info = await redisCli(port, 'info', 'server');
      return Number(/^process_id:(\d+)/m.exec(info)![1]);
    },
    async isMaster(port) {
      for (const live of await alive()) {
        if (!(await redisCli(live, 'cluster', 'info')).includes('cluster_state:ok')) return false;
      }
      return /^role:master/m.test(await redisCli(port, 'info', 'replication').catch(() => ''));
    },
    async close() {
      for (const port of await alive()) await redisCli(port, 'shutdown', 'nosave').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
