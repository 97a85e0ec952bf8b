import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import {
  clusterDurability,
  durabilityWarningOnce,
  readRedisDurability,
} from '../../src/delivery/redis-durability.js';

/** A stand-in for the two commands read: CONFIG GET append* and INFO persistence. */
function server(answers: { config?: string[] | Error; info?: string | Error }): Redis {
  const answer = <T>(value: T | Error | undefined): Promise<T> =>
    value instanceof Error
      ? Promise.reject(value)
      : value === undefined
        ? Promise.reject(new Error('not answered'))
        : Promise.resolve(value);
  return { config: () => answer(answers.config), info: () => answer(answers.info) } as unknown as Redis;
}

const CONFIG_DISABLED = new Error("ERR unknown command 'CONFIG', with args beginning with: 'GET' 'append*'");

describe('reading whether Redis keeps the queue through a crash', () => {
  it('is durable with the append-only file on and fsync every second or always', async () => {
    for (const appendfsync of ['everysec', 'always']) {
      const durability = await readRedisDurability(
        server({
          config: ['appendfilename', 'appendonly.aof', 'appendonly', 'yes', 'appendfsync', appendfsync],
        }),
      );
      expect(durability).toMatchObject({ durable: true, appendonly: 'yes', appendfsync });
      expect(durability.description).toBe(`durable: appendonly yes, appendfsync ${appendfsync}`);
    }
  });

  it('is not durable without the append-only file, or with appendfsync no, and says what to set', async () => {
    const off = await readRedisDurability(
      server({ config: ['appendonly', 'no', 'appendfsync', 'everysec'] }),
    );
    expect(off).toMatchObject({ durable: false, appendonly: 'no' });
    expect(off.description).toMatch(
      /^not durable: appendonly no, so a Redis crash or restart loses every queued activity; set appendonly yes and appendfsync everysec$/,
    );
    const unsynced = await readRedisDurability(
      server({ config: ['appendonly', 'yes', 'appendfsync', 'no'] }),
    );
    expect(unsynced).toMatchObject({ durable: false, appendfsync: 'no' });
    expect(unsynced.description).toMatch(/appendfsync no .*; set appendonly yes and appendfsync everysec$/);
  });

  it('falls back to INFO persistence where CONFIG is disabled, as on managed Redis', async () => {
    const on = await readRedisDurability(
      server({ config: CONFIG_DISABLED, info: '# Persistence\r\nloading:0\r\naof_enabled:1\r\n' }),
    );
    expect(on).toMatchObject({ durable: true, appendonly: 'yes', appendfsync: null });
    expect(on.description).toMatch(/^durable: appendonly yes \(the fsync policy cannot be read/);
    const off = await readRedisDurability(
      server({ config: CONFIG_DISABLED, info: '# Persistence\r\naof_enabled:0\r\n' }),
    );
    expect(off).toMatchObject({ durable: false, appendonly: 'no' });
  });

  it('is unknown when neither can be read, keeping the reasons out of the public description', async () => {
    const durability = await readRedisDurability(
      server({
        config: CONFIG_DISABLED,
        info: new Error("NOPERM User reader has no permissions to run the 'info' command"),
      }),
    );
    expect(durability).toMatchObject({ durable: null, appendonly: null, appendfsync: null });
    expect(durability.description).not.toMatch(/NOPERM|reader|CONFIG/);
    expect(durability.readError).toMatch(
      /^CONFIG GET: ERR unknown command 'CONFIG'.*; INFO persistence: NOPERM/,
    );
  });

  it('warns once per server and setting, naming the server and what to set; never when durable', async () => {
    const off = await readRedisDurability(
      server({ config: ['appendonly', 'no', 'appendfsync', 'everysec'] }),
    );
    const first = durabilityWarningOnce('redis://cache.test:6379', off);
    expect(first).toBe(
      'Redis at redis://cache.test:6379 is not durable: appendonly no, so a Redis crash or restart loses every queued activity; set appendonly yes and appendfsync everysec',
    );
    expect(durabilityWarningOnce('redis://cache.test:6379', off)).toBeNull();
    expect(durabilityWarningOnce('redis://other.test:6379', off)).toMatch(
      /^Redis at redis:\/\/other\.test:6379 /,
    );

    const unknown = await readRedisDurability(server({ config: CONFIG_DISABLED, info: new Error('NOPERM') }));
    expect(durabilityWarningOnce('redis://cache.test:6379', unknown)).toMatch(
      /^could not read whether Redis at redis:\/\/cache\.test:6379 keeps the queue through a crash \(CONFIG GET: .*\): make sure it runs with appendonly yes and appendfsync everysec/,
    );
    const on = await readRedisDurability(
      server({ config: ['appendonly', 'yes', 'appendfsync', 'everysec'] }),
    );
    expect(durabilityWarningOnce('redis://durable.test:6379', on)).toBeNull();
  });
});

describe('a Redis Cluster keeps the queue through a crash only if every node does', () => {
  const DURABLE = ['appendonly', 'yes', 'appendfsync', 'everysec'];

  it('is durable when every node is, and says so', async () => {
    const durable = await readRedisDurability(server({ config: DURABLE }));
    const cluster = clusterDurability([
      { node: '10.0.0.1:7000', durability: durable },
      { node: '10.0.0.2:7000', durability: durable },
    ]);
    expect(cluster).toMatchObject({ durable: true, appendonly: 'yes', appendfsync: 'everysec' });
    expect(cluster.description).toBe(
      'durable: appendonly yes, appendfsync everysec (every one of 2 cluster nodes)',
    );
  });

  it('is not durable when one node is not, counting the nodes but naming none', async () => {
    const durable = await readRedisDurability(server({ config: DURABLE }));
    const off = await readRedisDurability(
      server({ config: ['appendonly', 'no', 'appendfsync', 'everysec'] }),
    );
    const unread = await readRedisDurability(server({ config: CONFIG_DISABLED, info: new Error('NOPERM') }));
    const cluster = clusterDurability([
      { node: '10.0.0.1:7000', durability: durable },
      { node: '10.0.0.2:7000', durability: unread },
      { node: '10.0.0.3:7000', durability: off },
    ]);
    expect(cluster.durable).toBe(false);
    expect(cluster.description).toMatch(/^not durable: appendonly no, .* \(1 of 3 cluster nodes\)$/);
    expect(cluster.description).not.toContain('10.0.0');
  });

  it('is unknown when a node could not be read, naming it in the read error only', async () => {
    const durable = await readRedisDurability(server({ config: DURABLE }));
    const unread = await readRedisDurability(server({ config: CONFIG_DISABLED, info: new Error('NOPERM') }));
    const cluster = clusterDurability([
      { node: '10.0.0.1:7000', durability: durable },
      { node: '10.0.0.2:7000', durability: unread },
    ]);
    expect(cluster.durable).toBeNull();
    expect(cluster.readError).toMatch(/^node 10\.0\.0\.2:7000: CONFIG GET: /);
    expect(cluster.description).not.toContain('10.0.0');
    expect(clusterDurability([]).durable).toBeNull();
  });
});
