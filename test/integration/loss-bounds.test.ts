import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { isActivityLogError } from '../../src/core/errors.js';
import { Spool } from '../../src/resilience/spool.js';
import { createActivityLog } from '../../src/runtime/create-activity-log.js';
import { builtActivity } from '../helpers/activity-factory.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { migratedTable } from '../helpers/mariadb-table.js';
import { MemorySink } from '../helpers/memory-sink.js';
import { DIST_INDEX, startProducer } from '../helpers/producer-process.js';
import { waitFor } from '../helpers/queue.js';
import { MARIADB, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const mariadbUp = await serviceAvailable(MARIADB);

/** Logs `RATE` activities a second in `batch` with durability=memory, printing each id as log() resolves. */
const STEADY_PRODUCER = `
import { createActivityLog } from ${JSON.stringify(DIST_INDEX)};
const activityLog = createActivityLog({ env: JSON.parse(process.env.PRODUCER_ENV), warn: (line) => process.stderr.write(line + '\\n') });
const perTick = Number(process.env.PER_TICK);
let n = 0;
setInterval(() => {
  for (let i = 0; i < perTick; i++) {
    activityLog.log({ description: 'steady ' + n++, logName: 'bound' }).then(
      (activity) => process.stdout.write(activity.id + '\\n'),
      (error) => { console.error(error); process.exit(1); },
    );
  }
}, 5);
`;

describe.skipIf(!mariadbUp)('loss bounds (MariaDB behind a fault proxy)', () => {
  it('durability=memory: SIGKILL during a database black hole loses no more than the flush interval plus the slow-write threshold', async ({
    deferQuietly,
  }) => {
    const { table, storedIds, drop } = await migratedTable('loss_bound');
    deferQuietly(drop);
    const proxy = await FaultProxy.start(MARIADB);
    deferQuietly(() => proxy.close());
    const workDir = await temporaryDirectory(deferQuietly, 'activity-log-loss-bound-');
    const spoolDir = join(workDir, 'spool');
    const flushIntervalMs = 50;
    const slowWriteMs = 500;
    const batchSize = 200;
    const perTick = 5; // every 5 ms: 1,000 activities a second
    const ratePerSecond = perTick * 200;
    const env = {
      DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`,
      ACTIVITY_LOG_TABLE: table,
      ACTIVITY_LOG_METHOD: 'batch',
      ACTIVITY_LOG_DURABILITY: 'memory',
      ACTIVITY_LOG_SPOOL_DIR: spoolDir,
      ACTIVITY_LOG_FLUSH_INTERVAL_MS: String(flushIntervalMs),
      ACTIVITY_LOG_SLOW_WRITE_MS: String(slowWriteMs),
      ACTIVITY_LOG_BATCH_SIZE: String(batchSize),
      // A hung write is only given up after 10 s: the bound must not depend on it.
      DB_QUERY_TIMEOUT_MS: '10000',
      DB_CONNECT_TIMEOUT_MS: '10000',
    };
    const producer = await startProducer(workDir, STEADY_PRODUCER, env, { PER_TICK: String(perTick) });
    deferQuietly(() => producer.kill());
    const acknowledged = () => producer.acknowledged();

    await waitFor(
      async () => (await storedIds()).size > 1000,
      15_000,
      'activities to be stored while healthy',
    );
    await proxy.blackhole();
    const atBlackhole = acknowledged().length;
    // Six seconds of a database that accepts connections and never answers.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    expect(await producer.kill()).toBe('SIGKILL');
    const resolved = acknowledged();
    expect(resolved.length - atBlackhole).toBeGreaterThan(3000);
    expect(producer.errors()).toMatch(/has not answered a write for 500 ms/);

    // The database is back; what the dead process spooled is replayed by the next one.
    await proxy.pass();
    const restarted = createActivityLog({ env, warn: () => undefined });
    deferQuietly(() => restarted.close());
    await waitFor(
      async () => (await readdirSegments(spoolDir)).length === 0,
      30_000,
      'the spool to be replayed',
    );
    await restarted.close();
    const stored = await storedIds();
    const lost = resolved.filter((id) => !stored.has(id));
    // Held in memory at any moment: what arrived in the last flush interval, plus writes not yet
    // slow; everything older is in the store or the spool.
    const boundMs = flushIntervalMs + slowWriteMs;
    const bound = Math.ceil((ratePerSecond * boundMs) / 1000) + batchSize;
    expect(lost.length).toBeLessThanOrEqual(bound);
  });
});

async function readdirSegments(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => name.endsWith('.seg'));
  } catch {
    return [];
  }
}

/** Mounts a tmpfs of `sizeMb` at a new directory; null where this process may not mount one. */
function mountTmpfs(sizeMb: number): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-full-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir], {
      stdio: 'ignore',
    });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
}

function unmount(dir: string): void {
  execFileSync('umount', [dir], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}

const probe = mountTmpfs(1);
if (probe !== null) unmount(probe);
else console.warn('skipping full-disk tests: this process may not mount a tmpfs (run the tests as root)');

const padded = (i: number) =>
  builtActivity({ description: `full disk ${i}`, properties: { padding: 'p'.repeat(1500), i } });

describe.skipIf(probe === null)('a full disk (the spool on a 2 MiB tmpfs)', () => {
  function fullDisk(defer: TestScope['defer']): string {
    const mount = mountTmpfs(2)!;
    defer(() => unmount(mount));
    return join(mount, 'spool');
  }

  /** Replays `dir` as the next process would, and returns what it read. */
  async function replayAll(dir: string) {
    const sink = new MemorySink();
    const spool = new Spool({ dir, maxBytes: 64 * 1024 * 1024, warn: () => undefined });
    const result = await spool.replay((batch) => sink.write(batch), { batchSize: 500 });
    await spool.close();
    return { ids: sink.stored.map((activity) => activity.id), corruptRecords: result.corruptRecords };
  }

  it('an append the disk cannot take fails with SPOOL_FAILED; every append that resolved is replayed whole', async ({
    defer,
  }) => {
    const dir = fullDisk(defer);
    const spool = new Spool({ dir, maxBytes: 64 * 1024 * 1024, warn: () => undefined });
    const acknowledged: string[] = [];
    let failures = 0;
    for (let group = 0; group < 200 && failures < 5; group++) {
      const batch = Array.from({ length: 37 }, (_, i) => padded(group * 100 + i));
      try {
        await spool.append(batch);
        acknowledged.push(...batch.map((activity) => activity.id));
      } catch (error) {
        expect(isActivityLogError(error, 'SPOOL_FAILED')).toBe(true);
        expect((error as Error).message).toMatch(/ENOSPC|no space left/i);
        failures++;
      }
    }
    await spool.close();
    expect(failures).toBeGreaterThan(0);
    expect(acknowledged.length).toBeGreaterThan(500);
    const replayed = await replayAll(dir);
    expect(replayed.corruptRecords).toBe(0);
    expect(replayed.ids).toEqual(acknowledged);
  });

  it('durability=disk: log() rejects with SPOOL_FAILED once the disk is full, and every log() that resolved is replayed', async ({
    defer,
  }) => {
    const dir = fullDisk(defer);
    const activityLog = createActivityLog({
      env: {
        // Nothing listens there: every activity stays in the spool.
        DATABASE_URL: 'mysql://root@127.0.0.1:1/test',
        ACTIVITY_LOG_METHOD: 'batch',
        ACTIVITY_LOG_DURABILITY: 'disk',
        ACTIVITY_LOG_SPOOL_DIR: dir,
        DB_CONNECT_TIMEOUT_MS: '200',
      },
      warn: () => undefined,
    });
    const acknowledged: string[] = [];
    let refusal: unknown = null;
    for (let i = 0; i < 5000 && refusal === null; i += 20) {
      const settled = await Promise.allSettled(
        Array.from({ length: 20 }, (_, j) =>
          activityLog.log({ description: `journaled ${i + j}`, properties: { padding: 'q'.repeat(1500) } }),
        ),
      );
      for (const outcome of settled) {
        if (outcome.status === 'fulfilled') acknowledged.push(outcome.value.id);
        else refusal ??= outcome.reason;
      }
    }
    await activityLog.close().catch(() => undefined);
    expect(isActivityLogError(refusal, 'SPOOL_FAILED')).toBe(true);
    const replayed = await replayAll(dir);
    expect(replayed.corruptRecords).toBe(0);
    expect(new Set(replayed.ids)).toEqual(new Set(acknowledged));
  });
});
