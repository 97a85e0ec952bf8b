import { describe, expect } from 'vitest';
import {
  type CaptureScene,
  captureScene,
  count,
  counts,
  insertRange,
  killCaptureDuringLoad,
  spawnCapture,
  startCapture,
  waitForCount,
} from '../helpers/capture-scene.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { POSTGRES, serviceAvailable } from '../helpers/services.js';
import { test as it } from '../helpers/test-context.js';

const available = await serviceAvailable(POSTGRES);

/** Ends the WAL sender of the scene's slot from the server side; resolves with whether there was one. */
async function terminateWalSender(s: CaptureScene): Promise<boolean> {
  const rows = await s.sql(
    `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_replication
      WHERE pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1)`,
    [s.slot],
  );
  return rows.length === 1 && rows[0]!.done === true;
}

async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`still not ${what} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const reconnectLines = (warnings: readonly string[]) =>
  warnings.filter((line) => /^capture: .*failed.*; reconnecting in \d+ ms/.test(line));

describe.skipIf(!available)('change capture from PostgreSQL: faults', () => {
  it('stores 20,000 rows exactly once while capture is killed with SIGKILL every few seconds and restarted', async ({
    defer,
  }) => {
    const s = await captureScene('postgres', defer);
    const rows = 20_000;
    const result = await killCaptureDuringLoad(s, defer, { rows, perStatement: 500, pauseMs: 250 });
    expect(result.lastExitCode, result.lastStderr).toBe(0);
    expect(result.kills).toBeGreaterThanOrEqual(3);
    // Killed while it had stored part of the load, not only before or after it.
    expect(
      result.storedAtKills.filter((n) => n > 0 && n < rows).length,
      String(result.storedAtKills),
    ).toBeGreaterThanOrEqual(2);
    expect(await counts(s)).toEqual({ rows, ids: rows, subjects: rows });
  });

  it('reads again by itself from the durable position when the server ends its replication connection, in the middle of a large transaction too', async ({
    defer,
  }) => {
    const s = await captureScene('postgres', defer);
    const capture = startCapture(s.config, { reconnectDelayMs: 100 });
    await insertRange(s, 1, 500);
    await waitForCount(s, 500);
    expect(await terminateWalSender(s)).toBe(true);
    await insertRange(s, 501, 1000);
    await waitForCount(s, 1000);

    // 30,000 rows in one transaction: handed over in stretches of 10,000, its position saved only
    // after the last; cut once part of it is stored.
    await insertRange(s, 1001, 31_000);
    await waitUntil('storing the large transaction', async () => (await count(s)) > 1000);
    const storedAtCut = await count(s);
    expect(await terminateWalSender(s)).toBe(true);
    await insertRange(s, 31_001, 31_100);
    await waitForCount(s, 31_100, 60_000);
    await capture.stop();

    expect(storedAtCut).toBeLessThan(31_000);
    expect(await counts(s)).toEqual({ rows: 31_100, ids: 31_100, subjects: 31_100 });
    expect(reconnectLines(capture.warnings).length, capture.warnings.join('\n')).toBeGreaterThanOrEqual(2);
    expect(capture.warnings.some((line) => line.includes('change stream is read again'))).toBe(true);
  });

  it('waits longer after each failed attempt while the network to the source is cut, and resumes once it is back', async ({
    defer,
  }) => {
    const proxy = await FaultProxy.start({ host: POSTGRES.host, port: POSTGRES.port });
    defer(() => proxy.close());
    const s = await captureScene('postgres', defer, {
      sourceUrl: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
    });
    const capture = startCapture(s.config, { reconnectDelayMs: 100 });
    await insertRange(s, 1, 200);
    await waitForCount(s, 200);
    // Both connections (replication and catalog) go; new ones are refused for 2 s.
    await proxy.refuse();
    await insertRange(s, 201, 400);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await count(s)).toBe(200);
    await proxy.pass();
    await insertRange(s, 401, 600);
    await waitForCount(s, 600);
    await capture.stop();

    expect(await counts(s)).toEqual({ rows: 600, ids: 600, subjects: 600 });
    const delays = reconnectLines(capture.warnings).map((line) => Number(/in (\d+) ms/.exec(line)![1]));
    expect(delays.length, capture.warnings.join('\n')).toBeGreaterThanOrEqual(3);
    expect(delays.slice(0, 3)).toEqual([100, 200, 400]);
  });

  it('keeps the capture process running through a cut of the source, with one line per attempt, and exits 0 on SIGTERM after', async ({
    defer,
  }) => {
    const proxy = await FaultProxy.start({ host: POSTGRES.host, port: POSTGRES.port });
    defer(() => proxy.close());
    const s = await captureScene('postgres', defer, {
      sourceUrl: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
    });
    const capture = spawnCapture(s, defer);
    await capture.started;
    await insertRange(s, 1, 100);
    await waitForCount(s, 100);
    proxy.cutConnections();
    await insertRange(s, 101, 200);
    await waitForCount(s, 200);
    capture.child.kill('SIGTERM');
    expect(await capture.exited, capture.stderr()).toBe(0);
    expect(await counts(s)).toEqual({ rows: 200, ids: 200, subjects: 200 });
    const lines = capture.stderr().split('\n');
    expect(
      lines.filter((line) =>
        /^activity-log: capture: .*failed.*; reconnecting in 500 ms \(attempt 1\)/.test(line),
      ),
      capture.stderr(),
    ).toHaveLength(1);
  });

  it('gives up with one line when the slot was dropped while it was away', async ({ defer }) => {
    const proxy = await FaultProxy.start({ host: POSTGRES.host, port: POSTGRES.port });
    defer(() => proxy.close());
    const s = await captureScene('postgres', defer, {
      sourceUrl: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
    });
    const capture = startCapture(s.config, { reconnectDelayMs: 200 });
    await insertRange(s, 1, 10);
    await waitForCount(s, 10);
    await proxy.refuse();
    await waitUntil('releasing the slot', async () => {
      const rows = await s.sql('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [s.slot]);
      return rows[0]?.active === false;
    });
    await s.sql('SELECT pg_drop_replication_slot($1)', [s.slot]);
    await proxy.pass();
    await expect(capture.running).rejects.toThrow(
      new RegExp(`replication slot "?${s.slot}"? does not exist.*capture --setup`),
    );
    expect(await count(s)).toBe(10);
  });
});
