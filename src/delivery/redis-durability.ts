import { Cluster, type Redis } from 'ioredis';
import { type RedisClient, redisServers } from './redis-connection.js';

/**
 * Whether Redis keeps the queue through a crash or restart: only with its append-only file on
 * (`appendonly yes`) and written to disk at least every second (`appendfsync everysec` or
 * `always`). Without it, everything still waiting in the queue is lost when Redis dies.
 */
export interface RedisDurability {
  /** `null` when the settings could not be read (CONFIG and INFO both refused). */
  readonly durable: boolean | null;
  /** `yes`/`no`, or `null` when unknown. */
  readonly appendonly: string | null;
  /** `always`/`everysec`/`no`, or `null` when unknown (INFO does not report it). */
  readonly appendfsync: string | null;
  /**
   * One line saying what Redis does with the queue and, when it is not durable, what to set. It
   * names no server and carries no driver message, so it may be shown to anyone (`GET /health`).
   */
  readonly description: string;
  /** Why the settings could not be read (driver messages), when they could not. */
  readonly readError: string | null;
}

const SET_IT = 'set appendonly yes and appendfsync everysec';

/**
 * Reads Redis's persistence settings with `CONFIG GET append*`, or — where CONFIG is disabled or
 * not allowed, as on many managed services — from `INFO persistence` (which says whether the
 * append-only file is on, not its fsync policy). Never rejects: settings that cannot be read
 * make a durability of `null`.
 *
 * @example
 * const { durable, description } = await readRedisDurability(redis);
 */
export async function readRedisDurability(client: RedisClient): Promise<RedisDurability> {
  if (!(client instanceof Cluster)) return readServerDurability(client);
  // Every node, replicas too: a replica is the master after a failover.
  const nodes = redisServers(client);
  const readings = await Promise.all(nodes.map(readServerDurability));
  return clusterDurability(
    readings.map((durability, i) => ({
      node: `${nodes[i]!.options.host}:${nodes[i]!.options.port}`,
      durability,
    })),
  );
}

/**
 * A cluster keeps the queue through a crash only if every node does: a node that does not
 * decides, then one whose settings could not be read. The description counts the nodes but names
 * none (it may be shown to anyone); `readError` names the node.
 */
export function clusterDurability(
  readings: readonly { readonly node: string; readonly durability: RedisDurability }[],
): RedisDurability {
  if (readings.length === 0) return unknown('no cluster node was connected');
  const of = (durable: boolean | null) =>
    readings.filter((reading) => reading.durability.durable === durable);
  const notDurable = of(false);
  if (notDurable.length > 0) {
    const { durability } = notDurable[0]!;
    return {
      ...durability,
      description: `${durability.description} (${notDurable.length} of ${readings.length} cluster nodes)`,
    };
  }
  const unread = of(null);
  if (unread.length > 0) {
    const { node, durability } = unread[0]!;
    return { ...durability, readError: `node ${node}: ${durability.readError}` };
  }
  const { durability } = readings[0]!;
  return {
    ...durability,
    description: `${durability.description} (every one of ${readings.length} cluster nodes)`,
  };
}

async function readServerDurability(client: Redis): Promise<RedisDurability> {
  let configError: string;
  try {
    const reply: unknown = await client.config('GET', 'append*');
    const pairs = Array.isArray(reply) ? reply : [];
    const settings = new Map<string, string>();
    for (let i = 0; i + 1 < pairs.length; i += 2) settings.set(String(pairs[i]), String(pairs[i + 1]));
    const appendonly = settings.get('appendonly');
    if (appendonly !== undefined) return fromSettings(appendonly, settings.get('appendfsync') ?? null);
    configError = 'CONFIG GET did not report appendonly';
  } catch (error) {
    configError = `CONFIG GET: ${errorMessage(error)}`;
  }
  try {
    const aofEnabled = /^aof_enabled:(\d)/m.exec(await client.info('persistence'))?.[1];
    if (aofEnabled !== undefined) return fromSettings(aofEnabled === '1' ? 'yes' : 'no', null);
    return unknown(`${configError}; INFO persistence did not report aof_enabled`);
  } catch (error) {
    return unknown(`${configError}; INFO persistence: ${errorMessage(error)}`);
  }
}

function fromSettings(appendonly: string, appendfsync: string | null): RedisDurability {
  if (appendonly !== 'yes') {
    return {
      durable: false,
      appendonly,
      appendfsync,
      description: `not durable: appendonly ${appendonly}, so a Redis crash or restart loses every queued activity; ${SET_IT}`,
      readError: null,
    };
  }
  if (appendfsync === 'no') {
    return {
      durable: false,
      appendonly,
      appendfsync,
      description: `not durable: appendfsync no leaves it to the operating system when the append-only file reaches the disk, so a crash can lose queued activities; ${SET_IT}`,
      readError: null,
    };
  }
  return {
    durable: true,
    appendonly,
    appendfsync,
    description:
      appendfsync === null
        ? 'durable: appendonly yes (the fsync policy cannot be read without CONFIG; keep appendfsync everysec)'
        : `durable: appendonly yes, appendfsync ${appendfsync}`,
    readError: null,
  };
}

function unknown(readError: string): RedisDurability {
  return {
    durable: null,
    appendonly: null,
    appendfsync: null,
    description:
      'unknown: the persistence settings could not be read; make sure Redis runs with appendonly yes and appendfsync everysec, or a Redis crash loses the queued activities',
    readError,
  };
}

/** What this process has already warned about, per server: one line each, however many connections. */
const WARNED = new Set<string>();

/**
 * The one-line warning for a Redis that does not keep the queue through a crash (`null` when it
 * does), given once per process for each server and setting: producers and workers sharing a
 * process say it once between them.
 */
export function durabilityWarningOnce(server: string, durability: RedisDurability): string | null {
  if (durability.durable === true) return null;
  const key = `${server} ${durability.appendonly} ${durability.appendfsync}`;
  if (WARNED.has(key)) return null;
  WARNED.add(key);
  if (durability.durable === null) {
    return `could not read whether Redis at ${server} keeps the queue through a crash (${durability.readError}): make sure it runs with appendonly yes and appendfsync everysec, or a Redis crash loses the queued activities`;
  }
  return `Redis at ${server} is ${durability.description}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
