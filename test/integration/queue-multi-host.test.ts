import { describe, expect } from 'vitest';
import type { PerformanceSnapshot } from '../../src/metrics/snapshot.js';
import { enqueueSampleJobs, waitFor } from '../helpers/queue.js';
import { type CliProcess, queueTestTable, runCli } from '../helpers/queue-cli.js';
import { MARIADB, REDIS, serviceAvailable } from '../helpers/services.js';
import {
  type SimulatedHost,
  simulatedHostsAvailable,
  startForwarder,
  startSimulatedHost,
} from '../helpers/simulated-hosts.js';
import { test as it } from '../helpers/test-context.js';

const servicesUp =
  (await serviceAvailable(MARIADB)) && (await serviceAvailable(REDIS)) && (await simulatedHostsAvailable());

describe.skipIf(!servicesUp)('workers on several hosts', () => {
  it('two hosts drain one queue into one table exactly once, show in the snapshot under their hosts, and restart stops both', async ({
    deferQuietly,
  }) => {
    const table = await queueTestTable(deferQuietly, 'hosts');
    await table.migrate();
    const hosts: SimulatedHost[] = [];
    const workers: CliProcess[] = [];
    deferQuietly(async () => {
      for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
    });
    for (const [index, hostname] of [
      [201, 'worker-host-a'],
      [202, 'worker-host-b'],
    ] as const) {
      const host = await startSimulatedHost(index, hostname);
      deferQuietly(() => host.close());
      hosts.push(host);
      // The host reaches MariaDB and Redis only across its link, at this machine's side of it.
      const mariadb = await startForwarder(host.gateway, MARIADB.port);
      const redis = await startForwarder(host.gateway, REDIS.port);
      deferQuietly(() => mariadb.close());
      deferQuietly(() => redis.close());
      workers.push(
        host.spawnCli(['work'], {
          ...table.env,
          DATABASE_URL: `mysql://root@${host.gateway}:${mariadb.port}/test`,
          REDIS_URL: `redis://${host.gateway}:${redis.port}`,
        }),
      );
    }

    const status = async () => {
      const result = await runCli(['status', '--json'], table.env);
      expect(result.code, result.stderr).toBe(0);
      return (JSON.parse(result.stdout) as PerformanceSnapshot).data;
    };
    await waitFor(async () => (await status()).workers.length === 2, 30_000, 'both workers in the snapshot');

    const N = 2000;
    await enqueueSampleJobs(table.config, 200, N / 200);
    await waitFor(async () => (await table.count()).rows >= N, 60_000, `${N} rows stored`);
    expect(await table.count()).toEqual({ rows: N, distinct: N });
    await waitFor(
      async () => (await status()).workers.reduce((sum, worker) => sum + worker.stored, 0) === N,
      15_000,
      'the workers to report what they stored',
    );
    const { workers: listed } = await status();
    expect(listed.map((worker) => [worker.host, worker.pid]).sort()).toEqual(
      workers.map((worker, i) => [hosts[i]!.hostname, worker.child.pid]).sort(),
    );
    // Both hosts took part: the jobs were shared, not drained by one.
    for (const worker of listed) expect(worker.stored).toBeGreaterThan(0);

    const restart = await runCli(['restart'], table.env);
    expect(restart.code, restart.stderr).toBe(0);
    for (const worker of workers) {
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect(worker.stdout()).toContain('worker stopped (restart requested)');
    }
  }, 120_000);
});
