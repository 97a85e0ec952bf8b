import { execFile } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { type CliProcess, spawnCli } from './queue-cli.js';

const run = promisify(execFile);

/**
 * Hosts of their own on this machine, for tests of processes on several hosts: each is a network
 * namespace joined to this one by a veth pair (`10.231.N.1` here, `10.231.N.2` there), and its
 * processes run with a hostname of their own (a UTS namespace). Services listening on loopback
 * here are reached through {@link Forwarder}s on the hosts' gateway addresses. Needs root and
 * `ip netns` (iproute2) and `unshare` (util-linux).
 */
export interface SimulatedHost {
  readonly hostname: string;
  /** This side's address of the link, where the host reaches this machine's forwarders. */
  readonly gateway: string;
  /** Starts `activity-log <args>` on the host (see `spawnCli`). */
  spawnCli(args: readonly string[], env: Record<string, string>): CliProcess;
  close(): Promise<void>;
}

/**
 * Whether this machine can make network namespaces (root with iproute2 and unshare). Under CI a
 * machine that cannot throws (the run fails); elsewhere it prints one line and returns false.
 */
export async function simulatedHostsAvailable(): Promise<boolean> {
  const probe = `al-probe-${process.pid}`;
  let reason: string | null = null;
  if (process.getuid?.() !== 0) reason = 'they need root';
  else {
    try {
      await run('ip', ['netns', 'add', probe]);
      await run('ip', ['netns', 'del', probe]);
      await run('unshare', ['--uts', 'true']);
    } catch (error) {
      reason = `\`ip netns add\` or \`unshare --uts\` failed (${(error as Error).message.split('\n')[0]})`;
    }
  }
  if (reason === null) return true;
  const message = `network namespaces for simulated hosts are not available: ${reason}; run as root with iproute2 and util-linux`;
  if (process.env.CI === 'true') throw new Error(`${message} (required under CI=true)`);
  console.warn(`skipping multi-host tests: ${message}`);
  return false;
}

/** Makes host number `index` (1–250) named `hostname`; `close()` removes it. */
export async function startSimulatedHost(index: number, hostname: string): Promise<SimulatedHost> {
  const namespace = `al-${hostname}-${process.pid}`;
  const outside = `alv${index}-${process.pid % 10_000}`;
  const inside = `${outside}i`;
  const gateway = `10.231.${index}.1`;
  const address = `10.231.${index}.2`;
  const steps: string[][] = [
    ['netns', 'add', namespace],
    ['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside],
    ['link', 'set', inside, 'netns', namespace],
    ['addr', 'add', `${gateway}/30`, 'dev', outside],
    ['link', 'set', outside, 'up'],
    ['-n', namespace, 'addr', 'add', `${address}/30`, 'dev', inside],
    ['-n', namespace, 'link', 'set', inside, 'up'],
    ['-n', namespace, 'link', 'set', 'lo', 'up'],
  ];
  const close = async () => {
    await run('ip', ['netns', 'del', namespace]).catch(() => undefined);
    await run('ip', ['link', 'del', outside]).catch(() => undefined);
  };
  try {
    for (const step of steps) await run('ip', step);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    hostname,
    gateway,
    spawnCli: (args, env) =>
      spawnCli(args, env, [
        'ip',
        'netns',
        'exec',
        namespace,
        'unshare',
        '--uts',
        'sh',
        '-c',
        'hostname "$0" && exec "$@"',
        hostname,
      ]),
    close,
  };
}

/** A TCP forwarder from `host`:`port` (an ephemeral port) to a service on this machine's loopback. */
export interface Forwarder {
  readonly port: number;
  close(): Promise<void>;
}

export async function startForwarder(host: string, targetPort: number): Promise<Forwarder> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new Error('the forwarder has no port');
  return {
    port: bound.port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
