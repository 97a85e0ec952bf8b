import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { describe, expect } from 'vitest';
import { type Config, loadConfig } from '../../src/config/config.js';
import { metricsKeys, QUEUE_PREFIX } from '../../src/delivery/queue-keys.js';
import { ActivityWorker } from '../../src/delivery/worker.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { type AlertPayload, RedisAlertState } from '../../src/metrics/alerts.js';
import { MetricsCollector } from '../../src/metrics/collector.js';
import { historyFromMinutes } from '../../src/metrics/minute-history.js';
import type { Monitoring } from '../../src/metrics/monitoring.js';
import { ClusterReader, MetricsPublisher, removeMetricsKeys } from '../../src/metrics/redis-metrics.js';
import type { PerformanceSnapshot } from '../../src/metrics/snapshot.js';
import { type ActivityLog, composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { connectMonitoringReader, startMonitoring } from '../../src/runtime/start-monitoring.js';
import { createStore } from '../../src/store/create-store.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { MemoryStore } from '../helpers/memory-sink.js';
import { parsePrometheus } from '../helpers/prometheus-text.js';
import { enqueueSampleJobs, REDIS_URL, removeQueue, uniqueQueueName, waitFor } from '../helpers/queue.js';
import { type CliProcess, queueTestTable, runCli, spawnCli } from '../helpers/queue-cli.js';
import { MARIADB, MYSQL_URL, REDIS, serviceAvailable } from '../helpers/services.js';
import { SNAPSHOT_FIELDS } from '../helpers/snapshot-fields.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const ADMIN = 'admin-token-for-monitoring-tests';
const adminAuth = { authorization: `Bearer ${ADMIN}` };

/** A webhook receiver on loopback that keeps every alert it is sent; `defer` closes it. */
async function alertReceiver(defer: TestScope['defer']): Promise<{ url: string; alerts: AlertPayload[] }> {
  const alerts: AlertPayload[] = [];
  const server: Server = createHttpServer((request: IncomingMessage, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      alerts.push(JSON.parse(body) as AlertPayload);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}/hook`, alerts };
}

describe('performance and metrics routes (no services)', () => {
  async function server(defer: TestScope['defer'], adminToken: string | null) {
    const spoolDir = await temporaryDirectory(defer, 'monitoring-routes-');
    const composed = composeActivityLog({
      env: {},
      store: new MemoryStore(),
      config: { method: 'batch', spoolDir, adminToken, flushIntervalMs: 5 },
    });
    const { activityLog } = composed;
    const app = createActivityLogServer(composed);
    defer(async () => {
      await app.close();
      await activityLog.close();
    });
    return { app, activityLog };
  }

  it('refuse the snapshot and /metrics without the admin token, or with a wrong one', async ({
    deferQuietly,
  }) => {
    const { app } = await server(deferQuietly, ADMIN);
    for (const url of ['/api/backoffice/activity-logs/performance', '/metrics']) {
      const missing = await app.inject({ method: 'GET', url });
      expect(missing.statusCode, url).toBe(401);
      expect(missing.json().error.code).toBe('AUTH_REQUIRED');
      const wrong = await app.inject({ method: 'GET', url, headers: { authorization: 'Bearer nope' } });
      expect(wrong.statusCode, url).toBe(401);
    }
    const { app: closed } = await server(deferQuietly, null);
    const disabled = await closed.inject({ method: 'GET', url: '/metrics' });
    expect(disabled.statusCode).toBe(503);
    expect(disabled.json().error.code).toBe('AUTH_TOKEN_NOT_CONFIGURED');
  });

  it('answers the snapshot of DESIGN with the activities this process stored', async ({ deferQuietly }) => {
    const { app, activityLog } = await server(deferQuietly, ADMIN);
    for (let i = 0; i < 12; i++) await activityLog.log({ description: `order ${i}` });
    await activityLog.flush();
    const response = await app.inject({
      method: 'GET',
      url: '/api/backoffice/activity-logs/performance',
      headers: adminAuth,
    });
    expect(response.statusCode).toBe(200);
    const body = response.json<PerformanceSnapshot>();
    expect(body.success).toBe(true);
    expect(Object.keys(body.data)).toEqual(expect.arrayContaining([...SNAPSHOT_FIELDS]));
    expect(body.data).toMatchObject({
      queue_size: 0,
      total_processed: 12,
      pending_jobs: 0,
      failed_jobs: 0,
      error_rate: 0,
      circuit_breaker: { state: 'closed', failure_count: 0, is_allowed: true },
      source: 'process',
      method: 'batch',
    });
    expect(body.data.processing_rate).toBeCloseTo(12 / 60, 2);
    expect(body.data.memory_usage).toBeGreaterThan(1);
    expect(body.data.lag_ms.p50).not.toBeNull();
    const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: adminAuth });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toContain('text/plain');
    const samples = parsePrometheus(metrics.body);
    expect(samples.get('activity_log_stored_total')).toBe(12);
    expect(samples.get('activity_log_accepted_total')).toBe(12);
    expect(samples.get('activity_log_lag_seconds_count')).toBe(12);
  });

  it('status reads the snapshot from a running serve without the queue, and says what is missing', async ({
    deferQuietly,
  }) => {
    const { app, activityLog } = await server(deferQuietly, ADMIN);
    await activityLog.log({ description: 'one' });
    await activityLog.flush();
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const json = await runCli(['status', '--json', '--url', url], { ACTIVITY_LOG_ADMIN_TOKEN: ADMIN });
    expect(json.code, json.stderr).toBe(0);
    const printed = JSON.parse(json.stdout) as PerformanceSnapshot;
    expect(printed).toMatchObject({ success: true, data: { total_processed: 1, source: 'process' } });
    expect(Object.keys(printed.data)).toEqual(expect.arrayContaining([...SNAPSHOT_FIELDS]));
    const wrong = await runCli(['status', '--url', url], { ACTIVITY_LOG_ADMIN_TOKEN: 'wrong' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/answered 401/);
    const noToken = await runCli(['status', '--url', url], {});
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain('ACTIVITY_LOG_ADMIN_TOKEN');
  });

  it('status fails with one line naming Redis when it is not reachable', async () => {
    const result = await runCli(['status'], {
      QUEUE_CONNECTION: 'redis',
      REDIS_URL: 'redis://127.0.0.1:1',
      ACTIVITY_LOG_METHOD: 'queue',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^activity-log: Redis at redis:\/\/127\.0\.0\.1:1 is not reachable/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('evaluates the alert rules on its own timer and posts to the webhook', async ({ deferQuietly }) => {
    const receiver = await alertReceiver(deferQuietly);
    const store = new MemoryStore();
    store.failNext = 1;
    const { activityLog, config, collector } = composeActivityLog({
      env: {},
      store,
      config: {
        method: 'batch',
        spoolDir: await temporaryDirectory(deferQuietly, 'monitoring-timer-'),
        flushIntervalMs: 5,
        alertWebhook: receiver.url,
        alertErrorRate: 10,
      },
    });
    const monitoring = startMonitoring({
      config,
      collector,
      alertIntervalMs: 50,
      log: () => undefined,
    });
    deferQuietly(async () => {
      await activityLog.close();
      await monitoring.close();
    });
    await activityLog.log({ description: 'fails once' });
    await activityLog.flush();
    await waitFor(() => receiver.alerts.some((alert) => alert.rule === 'error_rate'), 10_000, 'the alert');
    expect(receiver.alerts.find((alert) => alert.rule === 'error_rate')).toMatchObject({
      status: 'firing',
      threshold: 10,
    });
  });

  it('fires an alert at once when the spool drops activities', async ({ deferQuietly }) => {
    const receiver = await alertReceiver(deferQuietly);
    const store = new MemoryStore();
    store.failNext = Number.MAX_SAFE_INTEGER;
    const { activityLog, config, collector } = composeActivityLog({
      env: {},
      store,
      config: {
        method: 'batch',
        spoolDir: await temporaryDirectory(deferQuietly, 'monitoring-drop-'),
        spoolMaxMb: 1,
        batchSize: 5,
        flushIntervalMs: 5,
        breakerCooldownMs: 3_600_000,
        alertWebhook: receiver.url,
        alertCooldownSeconds: 3600,
      },
    });
    const lines: string[] = [];
    const monitoring = startMonitoring({
      config,
      collector,
      alerts: false,
      log: (line) => lines.push(line),
    });
    deferQuietly(async () => {
      await activityLog.close();
      await monitoring.close();
    });
    expect(await monitoring.checkAlerts()).toEqual([]);
    const big = 'x'.repeat(60 * 1024);
    for (let i = 0; i < 30; i++) await activityLog.log({ description: `big ${i}`, properties: { big } });
    await activityLog.flush();
    const sent = await monitoring.checkAlerts();
    const drop = sent.find((alert) => alert.rule === 'spool_drop');
    expect(drop).toMatchObject({ status: 'firing', threshold: 0 });
    expect(drop!.value).toBeGreaterThan(0);
    expect(receiver.alerts.filter((alert) => alert.rule === 'spool_drop')).toHaveLength(1);
    expect(receiver.alerts.find((alert) => alert.rule === 'spool_drop')!.text).toMatch(
      /FIRING spool_drop: \d+ activities dropped/,
    );
    expect(lines.some((line) => line.includes('alert firing') && line.includes('spool_drop'))).toBe(true);
    expect((await monitoring.snapshot()).data.dropped_total).toBe(drop!.value);
  });
});

const servicesUp = (await serviceAvailable(REDIS)) && (await serviceAvailable(MARIADB));

describe.skipIf(!servicesUp)('monitoring across processes (real Redis and MariaDB)', () => {
  async function cleanRedis(config: Config): Promise<void> {
    const redis = new Redis(REDIS_URL);
    try {
      await removeMetricsKeys(redis, config.queueName);
    } finally {
      redis.disconnect();
    }
  }

  it('lists both worker processes, counts exactly the N activities they stored, and forgets a killed one after its heartbeat TTL', async ({
    deferQuietly,
  }) => {
    const table = await queueTestTable(deferQuietly, 'mon-two', {
      ACTIVITY_LOG_SPOOL_DIR: await temporaryDirectory(deferQuietly, 'monitoring-two-'),
    });
    deferQuietly(() => cleanRedis(table.config));
    await table.migrate();
    const reader = await connectMonitoringReader(table.config);
    deferQuietly(() => reader.close());
    expect((await reader.snapshot()).data.workers).toEqual([]);

    const workers: CliProcess[] = [spawnCli(['work'], table.env), spawnCli(['work'], table.env)];
    deferQuietly(async () => {
      for (const worker of workers) worker.child.kill('SIGKILL');
    });
    await waitFor(
      async () => (await reader.snapshot()).data.workers.length === 2,
      30_000,
      'two live workers',
    );
    const before = (await reader.snapshot()).data.total_processed;

    const N = 400;
    await enqueueSampleJobs(table.config, 40, N / 40);
    await waitFor(
      async () => (await reader.snapshot()).data.total_processed === before + N,
      30_000,
      `${N} more activities processed`,
    );
    expect((await table.count()).rows).toBe(N);
    // The next heartbeats carry every worker's own count.
    await waitFor(
      async () =>
        (await reader.snapshot()).data.workers.reduce((sum, worker) => sum + worker.stored, 0) === N,
      10_000,
      'the workers to report what they stored',
    );
    const { data } = await reader.snapshot();
    expect(data.source).toBe('redis');

    const json = await runCli(['status', '--json'], table.env);
    expect(json.code, json.stderr).toBe(0);
    const printed = JSON.parse(json.stdout) as PerformanceSnapshot;
    expect(printed.success).toBe(true);
    expect(printed.data.total_processed).toBe(before + N);
    expect(printed.data.workers).toHaveLength(2);
    const human = await runCli(['status'], table.env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/circuit breaker\s+CLOSED/);
    expect(human.stdout).toMatch(new RegExp(`total processed\\s+${before + N}`));
    for (const worker of workers) expect(human.stdout).toContain(` ${worker.child.pid} `);
    expect(data.total_processed).toBe(before + N);
    expect(data.pending_jobs).toBe(0);
    expect(data.queue_size).toBe(0);
    expect(new Set(data.workers.map((worker) => worker.pid))).toEqual(
      new Set(workers.map((worker) => worker.child.pid)),
    );
    expect(data.breakers.store).toMatchObject({ state: 'closed', processes: 2 });
    expect(data.history.at(-1)!.throughput + data.history.at(-2)!.throughput).toBe(N);

    // A worker that stops cleanly leaves at once; a killed one when its heartbeat expires.
    const [killed, stopped] = workers as [CliProcess, CliProcess];
    killed.child.kill('SIGKILL');
    stopped.child.kill('SIGTERM');
    expect((await stopped.exited).code).toBe(0);
    const afterStop = (await reader.snapshot()).data.workers.map((worker) => worker.pid);
    expect(afterStop).toEqual([killed.child.pid]);
    await waitFor(
      async () => (await reader.snapshot()).data.workers.length === 0,
      30_000,
      'the killed worker to expire',
    );
    // Totals survive the processes: they are kept in Redis.
    expect((await reader.snapshot()).data.total_processed).toBe(before + N);
  }, 120_000);

  it("merges the per-minute lag buckets of two processes in Redis into each history minute's p50/p99", async ({
    deferQuietly,
  }) => {
    const queueName = uniqueQueueName('mon-lag');
    const redis = new Redis(REDIS_URL);
    deferQuietly(async () => {
      await removeMetricsKeys(redis, queueName);
      redis.disconnect();
    });
    const nowMs = Date.now();
    /** A process that stores `lagsMs.length` activities now, each `lagMs` after its `created_at`. */
    async function processStoring(label: string) {
      const spoolDir = await temporaryDirectory(deferQuietly, `monitoring-${label}-`);
      const collector = new MetricsCollector({ nowMs: () => nowMs });
      const { activityLog } = composeActivityLog({
        env: {},
        store: new MemoryStore(),
        config: { method: 'sync', spoolDir },
        collector,
      });
      const publisher = new MetricsPublisher({ redis, queueName, collector });
      deferQuietly(async () => {
        collector.close();
        await activityLog.close();
      });
      return {
        publisher,
        async store(count: number, lagMs: number) {
          for (let i = 0; i < count; i++)
            await activityLog.log({ description: label, createdAt: nowMs - lagMs });
        },
      };
    }
    const first = await processStoring('lag-a');
    const second = await processStoring('lag-b');
    // Published in two rounds: only what was added since the last one is counted again.
    await first.store(49, 3);
    await first.publisher.publish();
    await first.store(49, 3);
    await first.publisher.publish();
    await second.store(2, 4000);
    await second.publisher.publish();

    const reader = new ClusterReader(redis, queueName);
    deferQuietly(() => reader.close());
    const history = historyFromMinutes((await reader.read(nowMs)).history, nowMs);
    // 98 in the 2–5 ms bucket and 2 in the 2.5–5 s bucket: p50 = 2 + 3 × 50/98, p99 = 2500 + 2500 × 1/2.
    expect(history.at(-1)).toMatchObject({ throughput: 100, lag_p50_ms: 4, lag_p99_ms: 3750 });
    expect(history.at(-2)).toMatchObject({ throughput: 0, lag_p50_ms: null, lag_p99_ms: null });
    const minuteKey = metricsKeys(queueName).minute(Math.floor(nowMs / 60_000));
    expect(await redis.hgetall(minuteKey)).toEqual({ stored: '100', lag_5: '98', lag_5000: '2' });
    expect(await redis.ttl(minuteKey)).toBeGreaterThan(60 * 60);
  });

  it('adds a round to the totals once, however often it is sent and however rounds overlap', async ({
    deferQuietly,
  }) => {
    const queueName = uniqueQueueName('mon-once');
    const redis = new Redis(REDIS_URL);
    deferQuietly(async () => {
      await removeMetricsKeys(redis, queueName);
      redis.disconnect();
    });
    const collector = new MetricsCollector();
    const { activityLog } = composeActivityLog({
      env: {},
      store: new MemoryStore(),
      config: { method: 'sync', spoolDir: await temporaryDirectory(deferQuietly, 'monitoring-once-') },
      collector,
    });
    deferQuietly(async () => {
      collector.close();
      await activityLog.close();
    });
    for (let i = 0; i < 10; i++) await activityLog.log({ description: `once ${i}` });
    const publisher = new MetricsPublisher({ redis, queueName, collector });
    // Rounds queued behind one another (Redis slow), then the same counts sent again, as when an
    // EXEC that timed out on the client had been applied.
    await Promise.all([publisher.publish(), publisher.publish(), publisher.publish()]);
    await new MetricsPublisher({ redis, queueName, collector }).publish();
    const reader = new ClusterReader(redis, queueName);
    deferQuietly(() => reader.close());
    const state = await reader.read(Date.now());
    expect(state.totals).toMatchObject({ accepted: 10, stored: 10 });
    expect(state.history.reduce((sum, minute) => sum + minute.stored, 0)).toBe(10);
    for (let i = 0; i < 5; i++) await activityLog.log({ description: `more ${i}` });
    await publisher.publish();
    expect((await reader.read(Date.now())).totals).toMatchObject({ accepted: 15, stored: 15 });
  });

  it('counts an activity log once when a server and the application both monitor it', async ({
    deferQuietly,
  }) => {
    const queueName = uniqueQueueName('mon-shared');
    const redis = new Redis(REDIS_URL);
    deferQuietly(async () => {
      await removeMetricsKeys(redis, queueName);
      redis.disconnect();
    });
    const config = loadConfig({
      env: {
        QUEUE_CONNECTION: 'redis',
        REDIS_URL,
        ACTIVITY_LOG_QUEUE_NAME: queueName,
        ACTIVITY_LOG_METHOD: 'sync',
        ACTIVITY_LOG_SPOOL_DIR: await temporaryDirectory(deferQuietly, 'monitoring-shared-'),
      },
    });
    const { activityLog, collector } = composeActivityLog({ config, store: new MemoryStore() });
    deferQuietly(() => activityLog.close());
    const first = startMonitoring({ config, collector, shared: true, alerts: false });
    const second = startMonitoring({ config, collector, shared: true, alerts: false });
    expect(second.collector).toBe(first.collector);
    for (let i = 0; i < 10; i++) await activityLog.log({ description: `shared ${i}` });
    // Connected to Redis (a snapshot waits for that), so close() publishes a last round.
    await first.snapshot();
    await second.snapshot();
    await first.close();
    await activityLog.log({ description: 'after the first stopped watching' });
    await second.close();
    const reader = new ClusterReader(redis, queueName);
    deferQuietly(() => reader.close());
    expect((await reader.read(Date.now())).totals).toMatchObject({ accepted: 11, stored: 11 });
  });

  it('serve --worker reports its own worker and the jobs it stored, in the snapshot and /metrics', async ({
    deferQuietly,
  }) => {
    const table = await queueTestTable(deferQuietly, 'mon-serve', {
      ACTIVITY_LOG_SPOOL_DIR: await temporaryDirectory(deferQuietly, 'monitoring-serve-'),
      ACTIVITY_LOG_ADMIN_TOKEN: ADMIN,
    });
    const served = spawnCli(['serve', '--port=0', '--worker'], table.env);
    deferQuietly(async () => {
      served.child.kill('SIGKILL');
    });
    let url = '';
    await waitFor(
      () => {
        if (served.child.exitCode !== null) throw new Error(`serve exited early: ${served.stderr()}`);
        url = /listening on (http:\/\/\S+)/.exec(served.stdout())?.[1] ?? '';
        return url !== '';
      },
      30_000,
      'serve to listen',
    );
    const get = (path: string) => fetch(`${url}${path}`, { headers: adminAuth });
    await enqueueSampleJobs(table.config, 4, 25);
    const snapshot = async () =>
      ((await (await get('/api/backoffice/activity-logs/performance')).json()) as PerformanceSnapshot).data;
    await waitFor(async () => (await snapshot()).total_processed === 100, 30_000, '100 activities stored');
    await waitFor(async () => (await snapshot()).workers.length === 1, 10_000, 'the worker of serve');
    const data = await snapshot();
    expect(data.workers[0]!.pid).toBe(served.child.pid);
    expect(data.method).toBe('queue');
    expect(data.source).toBe('redis');
    const metrics = parsePrometheus(await (await get('/metrics')).text());
    expect(metrics.get('activity_log_stored_total')).toBe(100);
    expect(metrics.get('activity_log_workers')).toBe(1);
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    served.child.kill('SIGTERM');
    expect((await served.exited).code).toBe(0);
  }, 90_000);

  it('moves error_rate, failed_jobs and the breaker state with injected store failures, in the snapshot and in /metrics alike', async ({
    deferQuietly,
  }) => {
    const proxy = await FaultProxy.start({ host: MARIADB.host, port: MARIADB.port });
    deferQuietly(() => proxy.close());
    const queueName = uniqueQueueName('mon-fail');
    const table = `mon_fail_${Date.now().toString(36)}`;
    const config = loadConfig({
      env: {
        QUEUE_CONNECTION: 'redis',
        REDIS_URL,
        ACTIVITY_LOG_METHOD: 'queue',
        ACTIVITY_LOG_QUEUE_NAME: queueName,
        DATABASE_URL: MYSQL_URL.replace(`:${MARIADB.port}/`, `:${proxy.port}/`),
        ACTIVITY_LOG_TABLE: table,
        ACTIVITY_LOG_TRIES: '1',
        ACTIVITY_LOG_BREAKER_FAILURES: '2',
        ACTIVITY_LOG_BREAKER_COOLDOWN_MS: '3600000',
        DB_CONNECT_TIMEOUT_MS: '500',
        ACTIVITY_LOG_SPOOL_DIR: await temporaryDirectory(deferQuietly, 'monitoring-fail-'),
        ACTIVITY_LOG_ADMIN_TOKEN: ADMIN,
      },
    });
    deferQuietly(() => removeQueue(config, queueName));
    deferQuietly(() => cleanRedis(config));
    const store = createStore(config.database);
    await store.migrate();
    deferQuietly(async () => {
      const db = await mysql.createConnection(MYSQL_URL);
      await db.query(`DROP TABLE IF EXISTS \`${table}\``);
      await db.query(
        `DROP TABLE IF EXISTS \`${table}_migrations\`, \`${table}_seals\`, \`${table}_seals_pruned\``,
      );
      await db.end();
    });
    const worker = new ActivityWorker({ config, store, pollIntervalMs: 100 });
    await worker.start();
    const composed = composeActivityLog({ env: {}, config, store });
    const activityLog: ActivityLog = composed.activityLog;
    const monitoring: Monitoring = startMonitoring({
      config,
      collector: composed.collector,
      worker,
      alerts: false,
      publishIntervalMs: 100,
    });
    const app = createActivityLogServer(composed, { config, monitoring });
    deferQuietly(async () => {
      await app.close();
      await worker.close();
      await activityLog.close();
      await monitoring.close();
    });
    const snapshot = async () =>
      (
        await app.inject({
          method: 'GET',
          url: '/api/backoffice/activity-logs/performance',
          headers: adminAuth,
        })
      ).json<PerformanceSnapshot>().data;
    const metrics = async () =>
      parsePrometheus((await app.inject({ method: 'GET', url: '/metrics', headers: adminAuth })).body);

    await enqueueSampleJobs(config, 5, 10);
    await waitFor(async () => (await snapshot()).total_processed === 50, 20_000, '50 activities stored');
    expect((await snapshot()).error_rate).toBe(0);

    // A job that is not ours fails for good: a failed attempt and a failed job.
    const queue = new Queue(queueName, {
      connection: { host: REDIS.host, port: REDIS.port },
      prefix: QUEUE_PREFIX,
    });
    deferQuietly(() => queue.close());
    await queue.add('activities', { v: 99 }, { attempts: 1 });
    // failed_jobs is read from Redis, error_rate from the worker's published counts: both settle.
    await waitFor(
      async () => {
        const now = await snapshot();
        return now.failed_jobs === 1 && now.error_rate > 0;
      },
      20_000,
      'the failed job and its failed attempt',
    );
    const afterBadJob = await snapshot();
    expect(afterBadJob.error_rate).toBeGreaterThan(0);
    expect(afterBadJob.error_rate).toBeLessThan(100);

    // The database goes away: attempts fail, the store breaker opens, the jobs wait.
    await proxy.refuse();
    await enqueueSampleJobs(config, 3, 10);
    await waitFor(
      async () => (await snapshot()).circuit_breaker.state === 'open',
      30_000,
      'the store breaker to open',
    );
    const during = await snapshot();
    expect(during.error_rate).toBeGreaterThan(afterBadJob.error_rate);
    expect(during.circuit_breaker.is_allowed).toBe(false);
    expect(during.breakers.store!.state).toBe('open');
    await waitFor(async () => (await snapshot()).pending_jobs > 0, 20_000, 'jobs handed back to wait');
    // Attempts that were in flight when the database went away are counted as they come back;
    // once they have, /metrics and the snapshot must agree.
    let samples = await metrics();
    let now = await snapshot();
    await waitFor(
      async () => {
        samples = await metrics();
        now = await snapshot();
        return (
          samples.get('activity_log_write_failures_total') === now.totals.write_failures &&
          samples.get('activity_log_pending_jobs') === now.pending_jobs
        );
      },
      10_000,
      '/metrics and the snapshot to agree',
    );
    expect(samples.get('activity_log_circuit_breaker_state{breaker="store",state="open"}')).toBe(1);
    expect(samples.get('activity_log_circuit_breaker_state{breaker="store",state="closed"}')).toBe(0);
    expect(samples.get('activity_log_stored_total')).toBe(now.total_processed);
    expect(samples.get('activity_log_failed_jobs')).toBe(now.failed_jobs);
    expect(samples.get('activity_log_pending_jobs')).toBe(now.pending_jobs);
    expect(samples.get('activity_log_dropped_total')).toBe(now.dropped_total);
    expect(samples.get('activity_log_write_failures_total')).toBe(now.totals.write_failures);
  }, 120_000);

  it('keeps alert state in Redis: one caller wins "fire", reminders wait for the cooldown, "resolve" once', async ({
    deferQuietly,
  }) => {
    const redis = new Redis(REDIS_URL);
    const queueName = uniqueQueueName('mon-state');
    deferQuietly(async () => {
      await removeMetricsKeys(redis, queueName);
      redis.disconnect();
    });
    const keyOf = (rule: string) => metricsKeys(queueName).alert(rule);
    const a = new RedisAlertState(redis, keyOf);
    const b = new RedisAlertState(redis, keyOf);
    const first = await Promise.all([
      a.transition('queue_size', true, 1000, 500),
      b.transition('queue_size', true, 1000, 500),
    ]);
    expect(first.sort()).toEqual(['fire', 'none']);
    expect(await a.transition('queue_size', true, 1400, 500)).toBe('none');
    expect(await b.transition('queue_size', true, 1500, 500)).toBe('renotify');
    expect(await a.transition('queue_size', true, 1600, 500)).toBe('none');
    const resolved = await Promise.all([
      a.transition('queue_size', false, 1700, 500),
      b.transition('queue_size', false, 1700, 500),
    ]);
    expect(resolved.sort()).toEqual(['none', 'resolve']);
    expect(await a.transition('lag_p99', false, 1700, 500)).toBe('none');
  });

  it('sends one alert per incident with two processes evaluating, respects the cooldown, and sends "resolved"', async ({
    deferQuietly,
  }) => {
    const receiver = await alertReceiver(deferQuietly);
    const queueName = uniqueQueueName('mon-alert');
    const store = new MemoryStore();
    const config = loadConfig({
      env: {
        QUEUE_CONNECTION: 'redis',
        REDIS_URL,
        ACTIVITY_LOG_METHOD: 'batch',
        ACTIVITY_LOG_QUEUE_NAME: queueName,
        ACTIVITY_LOG_SPOOL_DIR: await temporaryDirectory(deferQuietly, 'monitoring-alert-'),
        ACTIVITY_LOG_BATCH_SIZE: '1',
        ACTIVITY_LOG_BREAKER_FAILURES: '100',
        ACTIVITY_LOG_ALERT_WEBHOOK: receiver.url,
        ACTIVITY_LOG_ALERT_ERROR_RATE: '20',
        ACTIVITY_LOG_ALERT_COOLDOWN_SECONDS: '3600',
      },
    });
    deferQuietly(() => cleanRedis(config));
    const { activityLog, collector } = composeActivityLog({ env: {}, config, store });
    const quiet = () => undefined;
    const app = startMonitoring({
      config,
      collector,
      shared: true,
      alerts: false,
      publishIntervalMs: 50,
      log: quiet,
    });
    const other = startMonitoring({ config, shared: true, alerts: false, log: quiet });
    deferQuietly(async () => {
      await activityLog.close();
      await app.close();
      await other.close();
    });
    const checkBoth = async () => [...(await app.checkAlerts()), ...(await other.checkAlerts())];
    const errorAlerts = () => receiver.alerts.filter((alert) => alert.rule === 'error_rate');

    store.failNext = 3;
    for (let i = 0; i < 3; i++) await activityLog.log({ description: `failing ${i}` });
    await activityLog.flush();
    await waitFor(
      async () => (await other.snapshot()).data.error_rate > 20,
      10_000,
      'the error rate in Redis',
    );
    await Promise.all([app.checkAlerts(), other.checkAlerts()]);
    expect(errorAlerts()).toHaveLength(1);
    expect(errorAlerts()[0]).toMatchObject({
      status: 'firing',
      threshold: 20,
      queue: queueName,
      repeat: false,
    });
    expect(errorAlerts()[0]!.text).toMatch(/FIRING error_rate/);

    await checkBoth();
    expect(errorAlerts()).toHaveLength(1);

    for (let i = 0; i < 30; i++) await activityLog.log({ description: `fine ${i}` });
    await activityLog.flush();
    await waitFor(
      async () => (await other.snapshot()).data.error_rate <= 20,
      10_000,
      'the error rate to fall',
    );
    await Promise.all([app.checkAlerts(), other.checkAlerts()]);
    expect(errorAlerts().map((alert) => alert.status)).toEqual(['firing', 'resolved']);
    expect(errorAlerts()[1]!.text).toMatch(/RESOLVED error_rate/);
  }, 60_000);
});
