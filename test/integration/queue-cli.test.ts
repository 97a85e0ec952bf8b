import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { describe, expect } from 'vitest';
import { QueueAdmin } from '../../src/delivery/queue-admin.js';
import { restartMarkerKey } from '../../src/delivery/queue-keys.js';
import { enqueueSampleJobs, REDIS_URL, waitFor } from '../helpers/queue.js';
import { queueTestTable, runCli, spawnCli, type TestTable } from '../helpers/queue-cli.js';
import { MARIADB, REDIS, serviceAvailable } from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const servicesUp = (await serviceAvailable(REDIS)) && (await serviceAvailable(MARIADB));

/**
 * A Redis database of its own for the restart tests: a restart marker that reached further than
 * it should (every queue) would stop only the workers started here, not those of other tests.
 */
const ISOLATED_REDIS_URL = `${REDIS_URL}/9`;

describe.skipIf(!servicesUp)('queue commands (real processes, Redis and MariaDB)', () => {
  /** A `work` process that is killed at clean-up if the test left it running. */
  function spawnWorker(defer: TestScope['defer'], env: Record<string, string>) {
    const worker = spawnCli(['work'], env);
    defer(async () => {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    });
    return worker;
  }

  async function counts(table: TestTable) {
    const admin = await QueueAdmin.connect(table.config.redis, table.config.queueName);
    try {
      return await admin.counts();
    } finally {
      await admin.close();
    }
  }

  it('fails a job whose write keeps failing after --tries; failed lists it, retry stores it once', async ({
    defer,
  }) => {
    const table = await queueTestTable(defer, 'failing');
    await enqueueSampleJobs(table.config, 1, 40);

    // The table does not exist yet, so every insert is refused.
    const work = await runCli(['work', '--tries=2', '--stop-when-empty'], table.env);
    expect(work.code).toBe(0);
    expect(work.stderr).toMatch(/attempt 1 failed \(will retry\): STORE_/);
    expect(work.stderr).toMatch(/attempt 2 failed \(moved to the failed jobs\): STORE_/);
    expect(work.stdout).toMatch(/worker stopped \(queue empty\): 0 jobs, .* 1 failed, 1 retried/);

    const listed = await runCli(['failed'], table.env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ID +ATTEMPTS +ACTIVITIES +FAILED AT +LAST ERROR$/m);
    expect(listed.stdout).toMatch(/ 2 +40 +\d{4}-\d\d-\d\dT[\d:.]+Z +STORE_/);
    expect(listed.stdout).toMatch(/^1 failed job$/m);
    const [failed] = JSON.parse((await runCli(['failed', '--json'], table.env)).stdout) as { id: string }[];

    await table.migrate();
    const missing = await runCli(['retry', 'no-such-job'], table.env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('no failed job with id no-such-job');
    const retried = await runCli(['retry', failed!.id], table.env);
    expect(retried.code).toBe(0);
    expect(retried.stdout).toBe('retried 1 job\n');

    const again = await runCli(['work', '--stop-when-empty'], table.env);
    expect(again.code).toBe(0);
    expect(await table.count()).toEqual({ rows: 40, distinct: 40 });
    expect((await runCli(['failed'], table.env)).stdout).toBe('no failed jobs\n');
  });

  it('flush deletes the failed jobs', async ({ defer }) => {
    const table = await queueTestTable(defer, 'flush');
    await enqueueSampleJobs(table.config, 2, 5);
    expect((await runCli(['work', '--tries=1', '--stop-when-empty'], table.env)).code).toBe(0);
    expect((await counts(table)).failed).toBe(2);
    const flushed = await runCli(['flush'], table.env);
    expect(flushed.code).toBe(0);
    expect(flushed.stdout).toBe('deleted 2 failed jobs\n');
    expect((await counts(table)).failed).toBe(0);
  });

  it('restart makes running workers exit 0; a worker started afterwards keeps running until SIGTERM', async ({
    defer,
  }) => {
    const table = await queueTestTable(defer, 'restart');
    await table.migrate();
    const workers = [spawnCli(['work'], table.env), spawnCli(['work'], table.env)];
    for (const worker of workers)
      await waitFor(() => worker.stdout().includes('worker started'), 15_000, 'start');

    const restart = await runCli(['restart', `--queue=${table.config.queueName}`], table.env);
    expect(restart.code).toBe(0);
    expect(restart.stdout).toMatch(/^restart requested at .*Z: every worker of queue/);
    for (const worker of workers) {
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect(worker.stdout()).toContain('worker stopped (restart requested)');
    }

    const later = spawnCli(['work'], table.env);
    await waitFor(() => later.stdout().includes('worker started'), 15_000, 'start');
    await enqueueSampleJobs(table.config, 1, 10);
    await waitFor(async () => (await table.count()).rows === 10, 15_000, 'the job to be stored');
    later.child.kill('SIGTERM');
    expect(await later.exited).toEqual({ code: 0, signal: null });
    expect(later.stdout()).toContain('worker stopped (signal): 1 job, 10 activities stored');
  });

  it('restart applies to ACTIVITY_LOG_QUEUE_NAME only: the workers of another queue on the same Redis keep working', async ({
    defer,
  }) => {
    const mine = await queueTestTable(defer, 'restart-mine', { REDIS_URL: ISOLATED_REDIS_URL });
    const other = await queueTestTable(defer, 'restart-other', { REDIS_URL: ISOLATED_REDIS_URL });
    await other.migrate();
    const mineWorker = spawnWorker(defer, mine.env);
    const otherWorker = spawnWorker(defer, other.env);
    for (const worker of [mineWorker, otherWorker])
      await waitFor(() => worker.stdout().includes('worker started'), 15_000, 'start');

    const restart = await runCli(['restart'], mine.env);
    expect(restart.code).toBe(0);
    expect(restart.stdout).toMatch(
      new RegExp(
        `^restart requested at .*Z: every worker of queue ${mine.config.queueName} started before it`,
      ),
    );
    expect(await mineWorker.exited).toEqual({ code: 0, signal: null });
    expect(mineWorker.stdout()).toContain('worker stopped (restart requested)');

    // The other queue's worker looks at the restart markers every second: it has seen them by now.
    await sleep(3000);
    await enqueueSampleJobs(other.config, 1, 10);
    await waitFor(
      async () => (await other.count()).rows === 10,
      15_000,
      "the other queue's job to be stored",
    );
    otherWorker.child.kill('SIGTERM');
    expect(await otherWorker.exited).toEqual({ code: 0, signal: null });
    expect(otherWorker.stdout()).toContain('worker stopped (signal): 1 job, 10 activities stored');
  });

  it('restart --all-queues makes the workers of every queue on that Redis exit 0', async ({ defer }) => {
    const first = await queueTestTable(defer, 'restart-all-1', { REDIS_URL: ISOLATED_REDIS_URL });
    const second = await queueTestTable(defer, 'restart-all-2', { REDIS_URL: ISOLATED_REDIS_URL });
    const redis = new Redis(ISOLATED_REDIS_URL);
    defer(async () => {
      await redis.del(restartMarkerKey());
      await redis.quit();
    });
    const workers = [spawnWorker(defer, first.env), spawnWorker(defer, second.env)];
    for (const worker of workers)
      await waitFor(() => worker.stdout().includes('worker started'), 15_000, 'start');

    const restart = await runCli(['restart', '--all-queues'], first.env);
    expect(restart.code).toBe(0);
    expect(restart.stdout).toMatch(
      /^restart requested at .*Z: every worker of every queue started before it/,
    );
    for (const worker of workers) {
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect(worker.stdout()).toContain('worker stopped (restart requested)');
    }
  });

  it('--once, --max-jobs and --stop-when-empty take exactly that many jobs', async ({ defer }) => {
    const table = await queueTestTable(defer, 'limits');
    await table.migrate();
    await enqueueSampleJobs(table.config, 6, 10);

    const once = await runCli(['work', '--once'], table.env);
    expect(once.code).toBe(0);
    expect(once.stdout).toContain('worker stopped (--once): 1 job, 10 activities');
    expect(await table.count()).toEqual({ rows: 10, distinct: 10 });

    const maxJobs = await runCli(['work', '--max-jobs=2', '--concurrency=4'], table.env);
    expect(maxJobs.code).toBe(0);
    expect(maxJobs.stdout).toContain('worker stopped (--max-jobs reached): 2 jobs, 20 activities');
    expect(await table.count()).toEqual({ rows: 30, distinct: 30 });
    expect((await counts(table)).waiting).toBe(3);

    const drain = await runCli(['work', '--stop-when-empty', '--verbose'], table.env);
    expect(drain.code).toBe(0);
    expect(drain.stdout).toContain('worker stopped (queue empty): 3 jobs, 30 activities');
    expect(drain.stdout).toMatch(/stored \d+ activities \(\d+ new\) from /);
    expect(await table.count()).toEqual({ rows: 60, distinct: 60 });
  });

  it('--max-time stops an idle worker after that many seconds, and warns when --timeout is not below retry-after', async ({
    defer,
  }) => {
    const table = await queueTestTable(defer, 'max-time', { ACTIVITY_LOG_RETRY_AFTER: '3' });
    const started = Date.now();
    const run = await runCli(['work', '--max-time=2', '--timeout=3'], table.env);
    const seconds = (Date.now() - started) / 1000;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('worker stopped (--max-time reached)');
    expect(seconds).toBeGreaterThanOrEqual(2);
    expect(seconds).toBeLessThan(8);
    expect(run.stderr).toContain('--timeout=3 is not below ACTIVITY_LOG_RETRY_AFTER=3');
  });

  it.for<[readonly string[], string]>([
    [['work', '--tries=abc'], '--tries must be a whole number from 1 to 100 (got "abc")'],
    [['work', '--concurrency=0'], '--concurrency must be a whole number from 1 to 64 (got "0")'],
    [['work', '--max-time=-5'], '--max-time must be a whole number'],
    [['work', '--queue=a:b'], '--queue must be 1-100 letters'],
    [['process', '--method=fast'], '--method must be queue or batch (got "fast")'],
    [['process', '--method=batch', '--batch-size=0'], '--batch-size must be a whole number from 1 to 10000'],
    [['restart', '--queue=other', '--all-queues'], 'restart takes --queue or --all-queues, not both'],
  ])('rejects %j with one clear line and a non-zero exit', async ([args, message], { defer }) => {
    const table = await queueTestTable(defer, 'bad-flags');
    const run = await runCli(args, table.env, 15_000);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses to start with one line when Redis is unreachable', async ({ defer }) => {
    const table = await queueTestTable(defer, 'no-redis');
    const run = await runCli(['work'], { ...table.env, REDIS_URL: 'redis://127.0.0.1:1' }, 15_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      'activity-log: Redis at redis://127.0.0.1:1 is not reachable: connect ECONNREFUSED 127.0.0.1:1\n',
    );
  });

  it('process --method=batch --batch-size=50 drains a backlog of 10,000 in INSERTs of 50', async ({
    defer,
  }) => {
    const table = await queueTestTable(defer, 'process-batch');
    await table.migrate();
    await enqueueSampleJobs(table.config, 20, 500);
    const run = await runCli(['process', '--method=batch', '--batch-size=50'], table.env);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      'process --method=batch stopped (queue empty): 20 jobs, 10000 activities stored (10000 new rows, 200 inserts), 0 failed',
    );
    expect(await table.count()).toEqual({ rows: 10_000, distinct: 10_000 });
    expect((await counts(table)).waiting).toBe(0);
  });

  it('process exits non-zero when a job failed', async ({ defer }) => {
    const table = await queueTestTable(defer, 'process-fail', { ACTIVITY_LOG_TRIES: '1' });
    await enqueueSampleJobs(table.config, 1, 5);
    const run = await runCli(['process', '--method=queue'], table.env);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('1 failed');
  });
});
