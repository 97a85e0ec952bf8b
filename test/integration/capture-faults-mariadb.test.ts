import { describe, expect } from 'vitest';
import { CAPTURE_POSITIONS_TABLE } from '../../src/store/capture-positions.js';
import {
  type CaptureScene,
  captureScene,
  count,
  counts,
  insertRange,
  killCaptureDuringLoad,
  startCapture,
  waitForCount,
} from '../helpers/capture-scene.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { MARIADB, serviceAvailable } from '../helpers/services.js';
import { test as it } from '../helpers/test-context.js';

const available = await serviceAvailable(MARIADB);

/**
 * KILLs, from the server side, the binary log dump thread of the capture that reaches the server
 * through `proxy` (told apart from other replicas by the port its connection comes from).
 */
async function killDumpThread(s: CaptureScene, proxy: FaultProxy): Promise<boolean> {
  const ports = new Set(proxy.upstreamPorts.map(String));
  const threads = await s.sql(
    "SELECT ID AS id, HOST AS host FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'",
  );
  const ours = threads.filter((thread) => ports.has(String(thread.host).split(':').at(-1)!));
  for (const thread of ours) await s.sql(`KILL ${Number(thread.id)}`);
  return ours.length === 1;
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

describe.skipIf(!available)('change capture from MariaDB: faults', () => {
  it('stores 20,000 rows exactly once while capture is killed with SIGKILL every few seconds and restarted', async ({
    defer,
  }) => {
    const s = await captureScene('mariadb', defer);
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

  it('reads again by itself from the durable position when the server kills its binary log dump thread, in the middle of a large transaction too', async ({
    defer,
  }) => {
    const proxy = await FaultProxy.start({ host: MARIADB.host, port: MARIADB.port });
    defer(() => proxy.close());
    const s = await captureScene('mariadb', defer, {
      sourceUrl: `mysql://root@127.0.0.1:${proxy.port}/test`,
    });
    const capture = startCapture(s.config, { reconnectDelayMs: 100 });
    await insertRange(s, 1, 500);
    await waitForCount(s, 500);
    expect(await killDumpThread(s, proxy)).toBe(true);
    await insertRange(s, 501, 1000);
    await waitForCount(s, 1000);

    // 30,000 rows in one transaction: handed over in stretches of 10,000, its position saved only
    // after the last; killed once part of it is stored.
    await insertRange(s, 1001, 31_000);
    await waitUntil('storing the large transaction', async () => (await count(s)) > 1000);
    const storedAtCut = await count(s);
    expect(await killDumpThread(s, proxy)).toBe(true);
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
    const proxy = await FaultProxy.start({ host: MARIADB.host, port: MARIADB.port });
    defer(() => proxy.close());
    const s = await captureScene('mariadb', defer, {
      sourceUrl: `mysql://root@127.0.0.1:${proxy.port}/test`,
    });
    const capture = startCapture(s.config, { reconnectDelayMs: 100 });
    await insertRange(s, 1, 200);
    await waitForCount(s, 200);
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

  it('gives up with one line when the saved position is not in the binary log', async ({ defer }) => {
    const s = await captureScene('mariadb', defer);
    const capture = startCapture(s.config, { reconnectDelayMs: 100 });
    await insertRange(s, 1, 10);
    await waitForCount(s, 10);
    await capture.stop();
    await s.sql(`UPDATE ${CAPTURE_POSITIONS_TABLE} SET position = ? WHERE slot = ?`, [
      'file:mysql-bin.999999:4',
      s.slot,
    ]);
    const again = startCapture(s.config, { reconnectDelayMs: 100 });
    await expect(again.running).rejects.toThrow(/the binary log cannot be read from here: .*/);
    expect(reconnectLines(again.warnings)).toEqual([]);
  });
});
