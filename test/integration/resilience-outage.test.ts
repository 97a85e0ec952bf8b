import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect } from 'vitest';
import { resilienceOf } from '../../src/resilience/resilient-sink.js';
import { type ActivityLog, composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { migratedTable } from '../helpers/mariadb-table.js';
import { waitFor } from '../helpers/queue.js';
import { MARIADB, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const mariadbUp = await serviceAvailable(MARIADB);

/** How long MariaDB stays unavailable in each scenario (the issue asks for 10 s). */
const OUTAGE_MS = 10_000;
const QUERY_TIMEOUT_MS = 1000;
const COOLDOWN_MS = 500;
/** Concurrent callers, each logging, pausing a little, and logging again, for the whole scenario. */
const LOAD_LOOPS = 4;

interface LoadResult {
  readonly ids: string[];
  readonly latenciesMs: number[];
  readonly failures: unknown[];
}

/** Steady log() load until stopped: every call's latency and every resolved id. */
function steadyLoad(activityLog: ActivityLog): { stop(): Promise<LoadResult> } {
  const ids: string[] = [];
  const latenciesMs: number[] = [];
  const failures: unknown[] = [];
  let running = true;
  let n = 0;
  const loop = async () => {
    while (running) {
      const started = performance.now();
      try {
        const activity = await activityLog.log({
          description: `order ${n} updated`,
          logName: 'orders',
          event: 'updated',
          subject: { type: 'Order', id: n++ },
          properties: { attributes: { total: 10.5 } },
        });
        latenciesMs.push(performance.now() - started);
        ids.push(activity.id);
      } catch (error) {
        failures.push(error);
      }
      await sleep(2);
    }
  };
  const loops = Array.from({ length: LOAD_LOOPS }, loop);
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { ids, latenciesMs, failures };
    },
  };
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

describe.skipIf(!mariadbUp)('resilience: MariaDB unavailable under steady load (fault proxy)', () => {
  async function scenario(
    deferQuietly: TestScope['deferQuietly'],
    method: 'batch' | 'sync',
    fault: 'refuse' | 'blackhole',
  ) {
    const { table, count, storedIds, drop } = await migratedTable(`resilience_${method}_${fault}`);
    deferQuietly(drop);
    const proxy = await FaultProxy.start(MARIADB);
    deferQuietly(() => proxy.close());
    const spoolDir = await temporaryDirectory(deferQuietly, 'activity-log-outage-');

    const { activityLog, delivery } = composeActivityLog({
      env: { DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`, ACTIVITY_LOG_TABLE: table },
      config: {
        method,
        batchSize: 100,
        flushIntervalMs: 20,
        breakerFailures: 3,
        breakerCooldownMs: COOLDOWN_MS,
        spoolDir,
        database: { connectTimeoutMs: 500, queryTimeoutMs: QUERY_TIMEOUT_MS },
      },
    });
    deferQuietly(() => activityLog.close());
    const resilience = resilienceOf(delivery)!;
    const transitions: string[] = [];
    resilience.breaker.events.on('stateChange', ({ from, to }) => transitions.push(`${from}→${to}`));
    let spooled = 0;
    resilience.bus.on('spooled', ({ count }) => {
      spooled += count;
    });

    const load = steadyLoad(activityLog);
    await sleep(1000);
    await (fault === 'refuse' ? proxy.refuse() : proxy.blackhole());
    await sleep(OUTAGE_MS);
    const stateDuringOutage = resilience.breaker.state;
    await proxy.pass();
    await sleep(1500);
    const { ids, latenciesMs, failures } = await load.stop();

    await waitFor(async () => (await count()).n >= ids.length, 20_000, 'every activity to be stored');
    await activityLog.close();

    expect(failures).toEqual([]);
    expect(spooled).toBeGreaterThan(0);
    expect(stateDuringOutage).not.toBe('closed');
    expect(transitions[0]).toBe('closed→open');
    expect(transitions).toContain('open→half_open');
    expect(transitions.at(-1)).toBe('half_open→closed');
    expect(resilience.breaker.state).toBe('closed');

    expect(await count()).toEqual({ n: ids.length, d: ids.length });
    const stored = await storedIds();
    expect(ids.filter((id) => !stored.has(id))).toEqual([]);
    expect((await readdir(spoolDir)).filter((name) => name.endsWith('.seg'))).toEqual([]);
    return { ids, latenciesMs };
  }

  it('batch, MariaDB refused: log() stays in microseconds, the breaker opens, probes, closes; every activity is stored once', async ({
    deferQuietly,
  }) => {
    const { latenciesMs } = await scenario(deferQuietly, 'batch', 'refuse');
    expect(percentile(latenciesMs, 50)).toBeLessThan(1);
    expect(percentile(latenciesMs, 99)).toBeLessThan(20);
    expect(Math.max(...latenciesMs)).toBeLessThan(QUERY_TIMEOUT_MS / 4);
  });

  it('sync, MariaDB refused: log() resolves in milliseconds from the spool, and everything is stored once after recovery', async ({
    deferQuietly,
  }) => {
    const { latenciesMs } = await scenario(deferQuietly, 'sync', 'refuse');
    expect(percentile(latenciesMs, 50)).toBeLessThan(20);
    expect(percentile(latenciesMs, 99)).toBeLessThan(QUERY_TIMEOUT_MS / 5);
    expect(Math.max(...latenciesMs)).toBeLessThan(QUERY_TIMEOUT_MS);
  });

  it('batch, MariaDB blackholed: the timeout counts as failure, log() never waits, nothing hangs', async ({
    deferQuietly,
  }) => {
    const { latenciesMs } = await scenario(deferQuietly, 'batch', 'blackhole');
    expect(percentile(latenciesMs, 50)).toBeLessThan(1);
    expect(percentile(latenciesMs, 99)).toBeLessThan(20);
    expect(Math.max(...latenciesMs)).toBeLessThan(QUERY_TIMEOUT_MS / 4);
  });

  it('sync, MariaDB blackholed: only the calls in flight when it hung wait for the timeout; the rest go to the spool', async ({
    deferQuietly,
  }) => {
    const { latenciesMs } = await scenario(deferQuietly, 'sync', 'blackhole');
    expect(percentile(latenciesMs, 50)).toBeLessThan(20);
    expect(percentile(latenciesMs, 99)).toBeLessThan(QUERY_TIMEOUT_MS / 5);
    // The callers in flight when the database hung wait for the query timeout, and no longer.
    expect(latenciesMs.filter((ms) => ms > 200).length).toBeLessThanOrEqual(LOAD_LOOPS * 2);
    expect(Math.max(...latenciesMs)).toBeLessThan(QUERY_TIMEOUT_MS + 500);
  });
});
