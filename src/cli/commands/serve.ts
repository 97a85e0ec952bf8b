import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Config } from '../../config/config.js';
import { SETTINGS } from '../../config/config-settings.js';
import type { ActivityEventBus } from '../../core/activity-events.js';
import { ActivityLogError } from '../../core/errors.js';
import { ActivityWorker, type WorkerSummary } from '../../delivery/worker.js';
import { createActivityLogServer } from '../../http/create-activity-log-server.js';
import type { CheckpointBody } from '../../integrity/checkpoint.js';
import type { Monitoring } from '../../metrics/monitoring.js';
import { resilienceOf } from '../../resilience/resilient-sink.js';
import { CaptureWatch } from '../../runtime/capture-watch.js';
import { type CheckpointPublishing, startCheckpointPublishing } from '../../runtime/checkpoint-publisher.js';
import {
  type ActivityLog,
  type ComposedActivityLog,
  composeActivityLog,
} from '../../runtime/create-activity-log.js';
import { IntegrityWatch } from '../../runtime/integrity-watch.js';
import { startMonitoring } from '../../runtime/start-monitoring.js';
import { type StopRequest, watchStopSignals } from '../../runtime/stop-signals.js';
import { startScheduledVerification, type VerifyScheduler } from '../../runtime/verify-scheduler.js';
import type { ActivityStore } from '../../store/activity-store.js';
import { RetentionScheduler } from '../../store/retention.js';
import { BackgroundMigration } from '../background-migration.js';
import { describeDatabase } from '../describe-database.js';
import { optionalWholeNumber } from '../optional-whole-number.js';
import { startPartitionUpkeep } from '../partition-upkeep.js';
import { migrationLine } from './migrate.js';
import { formatCount } from './prune.js';

interface ServeFlags {
  readonly host?: string;
  readonly port?: string;
  readonly worker?: boolean;
}

type TokenVariable = 'ACTIVITY_LOG_INGEST_TOKEN' | 'ACTIVITY_LOG_ADMIN_TOKEN';

/** `activity-log serve`: migrates, then serves health, ingest and the query API until SIGINT/SIGTERM. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('HTTP server: health, ingest and the backoffice API (migrates the table first)')
    .option('--host <host>', 'address to bind (default: HOST, 127.0.0.1)')
    .option('--port <port>', 'port to listen on, 0 for any free one (default: PORT, 3000)')
    .option('--worker', 'also run a queue worker in this process (with ACTIVITY_LOG_METHOD=queue)')
    .action(async (flags: ServeFlags, command: Command) => {
      await serve(flags, command.optsWithGlobals().verbose === true);
    });
}

async function serve(flags: ServeFlags, verbose: boolean): Promise<void> {
  const port = optionalWholeNumber('--port', flags.port, SETTINGS.port.schema);
  const host = hostFlag(flags.host);
  // One logger for the server's records and the activity log's warnings, which also go to stderr
  // as one line each.
  const logger = pino({ level: verbose ? 'info' : 'warn' });
  const composed = composeActivityLog({
    config: { ...(host === undefined ? {} : { host }), ...(port === undefined ? {} : { port }) },
    warn: (line) => {
      process.stderr.write(`${line}\n`);
      logger.warn({ source: 'activity-log' }, line.replace(/^activity-log: /, ''));
    },
  });
  const { activityLog, store, delivery } = composed;
  const { config, generated } = withRunTokens(composed.config);
  const stop = watchStopSignals();

  let worker: ActivityWorker | null = null;
  let app: FastifyInstance | null = null;
  let retention: RetentionScheduler | null = null;
  let partitions: { stop(): Promise<void> } | null = null;
  let monitoring: Monitoring | null = null;
  let checkpoints: CheckpointPublishing | null = null;
  let verification: VerifyScheduler | null = null;
  let integrity: IntegrityWatch | null = null;
  const migration = migrateInBackground(composed);
  try {
    try {
      // A spool that cannot be written would be found during an outage, too late.
      await resilienceOf(delivery)?.spool.prepare();
      await migration.start();
      worker = await startWorkerIfAsked(flags.worker === true, composed.config, store, composed.events);
      if (worker !== null) stopWhenWorkerStops(stop, worker);
      retention = startRetention(composed.config, store);
      partitions = startPartitionUpkeep(composed.config.database);
      checkpoints = await startCheckpoints(composed.config, (body) => integrity?.recordCheckpoint(body));
      verification = await startVerification(composed.config, () => monitoring?.checkAlertsSoon());
      if (composed.config.database.seal === 'on' || verification !== null) {
        integrity = new IntegrityWatch({
          config: composed.config,
          verify: verification,
          publishing: checkpoints !== null,
        });
      }
      monitoring = startMonitoring({
        config,
        collector: composed.collector,
        worker,
        integrity,
        capture: new CaptureWatch(composed.config.database),
      });
      app = createActivityLogServer(composed, {
        config,
        monitoring,
        storeReadiness: () => migration.state(),
        logger,
      });
      const url = await app.listen({ host: config.host, port: config.port }).catch((error: unknown) => {
        throw listenError(error, config);
      });
      process.stdout.write(startBanner(url, config, generated));
    } catch (error) {
      // The start-up error is the one to report; a failing clean-up after it would only hide it.
      await migration.stop();
      await retention?.stop();
      await partitions?.stop();
      await checkpoints?.close().catch(() => undefined);
      await verification?.stop().catch(() => undefined);
      await shutDown(app, worker, activityLog, monitoring).catch(() => undefined);
      await integrity?.close().catch(() => undefined);
      throw error;
    }
    const reason = await stop.reason;
    process.stderr.write(`activity-log: ${reason}: shutting down\n`);
    await migration.stop();
    await retention?.stop();
    await partitions?.stop();
    await checkpoints?.close();
    await verification?.stop();
    await shutDown(app, worker, activityLog, monitoring);
    await integrity?.close();
    process.stdout.write('stopped\n');
  } finally {
    stop.dispose();
  }
}

/**
 * The migration `serve` runs first. While the database cannot be reached, `serve` starts anyway
 * and keeps trying: ingest goes to the spool (or the queue) meanwhile, `GET /health` reports the
 * store as not ready, and the spool is replayed once the table exists.
 */
function migrateInBackground({ config, store, delivery }: ComposedActivityLog): BackgroundMigration {
  const database = describeDatabase(config.database);
  let failures = 0;
  return new BackgroundMigration({
    migrate: () => store.migrate(),
    onMigrated: (result) => {
      process.stdout.write(`${migrationLine(config.database.table, database, result)}\n`);
      if (failures > 0) resilienceOf(delivery)?.replaySoon(0);
    },
    onFailed: (error, retryInMs) => {
      failures++;
      const kept = config.method === 'queue' ? 'go to the queue' : 'are kept in the spool';
      process.stderr.write(
        `activity-log: could not migrate ${config.database.table} on ${database} (${error instanceof Error ? error.message : String(error)}); serving anyway: activities ${kept} until the database answers. Trying again in ${Math.round(retryInMs / 1000)} s\n`,
      );
    },
  });
}

/** `EADDRINUSE` alone does not say what to change. */
function listenError(error: unknown, config: Config): unknown {
  const code = (error as { code?: unknown }).code;
  const where = `${config.host}:${config.port}`;
  if (code === 'EADDRINUSE') {
    return new Error(
      `${where} is already in use: stop the other server, or choose another port with --port or PORT`,
      {
        cause: error,
      },
    );
  }
  if (code === 'EACCES') {
    return new Error(`not allowed to listen on ${where}: use a port above 1023, with --port or PORT`, {
      cause: error,
    });
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
    return new Error(
      `cannot listen on ${where}: ${config.host} is not an address of this machine (--host or HOST)`,
      {
        cause: error,
      },
    );
  }
  return error;
}

function hostFlag(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '') {
    throw new ActivityLogError(
      'CLI_USAGE',
      '--host must be an address or host name, e.g. 127.0.0.1 or 0.0.0.0',
      {
        field: '--host',
      },
    );
  }
  return value;
}

/**
 * Signed checkpoints every `ACTIVITY_LOG_CHECKPOINT_INTERVAL_S` while the chain head moves, with a
 * signing key and a destination configured; one line per checkpoint published, one warning per
 * failure. A key set without a destination (or the reverse) is said once at start-up.
 */
async function startCheckpoints(
  config: Config,
  onPublished: (body: CheckpointBody) => void,
): Promise<CheckpointPublishing | null> {
  const destination = config.checkpointDir !== null || config.checkpointWebhook !== null;
  if ((config.signingKeyPath === null) !== !destination) {
    process.stderr.write(
      config.signingKeyPath === null
        ? 'activity-log: warning: ACTIVITY_LOG_CHECKPOINT_DIR or ACTIVITY_LOG_CHECKPOINT_WEBHOOK is set but ACTIVITY_LOG_SIGNING_KEY is not: no checkpoints are published\n'
        : 'activity-log: warning: ACTIVITY_LOG_SIGNING_KEY is set but neither ACTIVITY_LOG_CHECKPOINT_DIR nor ACTIVITY_LOG_CHECKPOINT_WEBHOOK: no checkpoints are published\n',
    );
  }
  return startCheckpointPublishing(config, {
    onPublished: ({ checkpoint, file, postedTo }) => {
      onPublished(checkpoint.body);
      const places = [file, postedTo].filter((place) => place !== null).join(' and ');
      process.stdout.write(
        `checkpoint of ${checkpoint.body.table} at seal ${checkpoint.body.seq} (${checkpoint.body.total_rows} rows) published to ${places}\n`,
      );
    },
    onWarning: (line) => process.stderr.write(`activity-log: warning: ${line}\n`),
  });
}

/** Progress of a long scheduled verification is logged at most this often. */
const VERIFY_PROGRESS_INTERVAL_MS = 60_000;

/**
 * The scheduled verification (`ACTIVITY_LOG_VERIFY_INTERVAL_S`), logged sparsely: a progress line
 * a minute during a long run, the outcome when it changes (intact at first and after a failure; a
 * failure when it starts or its first problem changes), a warning when it cannot run. Every
 * outcome has the alert rules evaluated at once (`verify_failed`).
 */
async function startVerification(
  config: Config,
  evaluateAlerts: () => unknown,
): Promise<VerifyScheduler | null> {
  let lastProgressMs = Date.now();
  let lastFirstProblem: string | null = null;
  const scheduler = await startScheduledVerification(config, {
    onProgress: (rows, seals) => {
      const now = Date.now();
      if (now - lastProgressMs < VERIFY_PROGRESS_INTERVAL_MS) return;
      lastProgressMs = now;
      process.stdout.write(
        `verifying the seal chain: ${formatCount(rows)} rows in ${formatCount(seals)} seals so far\n`,
      );
    },
    onResult: ({ report, startedAtMs, finishedAtMs, previousStatus }) => {
      lastProgressMs = finishedAtMs;
      const seconds = ((finishedAtMs - startedAtMs) / 1000).toFixed(1);
      if (report.intact) {
        lastFirstProblem = null;
        if (previousStatus !== 'ok') {
          process.stdout.write(
            `seal chain intact: ${formatCount(report.seals)} seals, ${formatCount(report.rows)} rows verified in ${seconds} s\n`,
          );
        }
      } else {
        const first = report.problems[0]?.message ?? 'a problem';
        if (previousStatus !== 'failed' || first !== lastFirstProblem) {
          const count = report.problems.length + report.moreProblems;
          process.stderr.write(
            `activity-log: seal chain NOT INTACT (${count} ${count === 1 ? 'problem' : 'problems'}), first: ${first}; run activity-log verify --json for the full report\n`,
          );
        }
        lastFirstProblem = first;
      }
      evaluateAlerts();
    },
    onError: (error) =>
      process.stderr.write(
        `activity-log: warning: scheduled verify could not run: ${error instanceof Error ? error.message : String(error)}; trying again in ${config.verifyIntervalSeconds} s\n`,
      ),
    onWarning: (line) => process.stderr.write(`activity-log: warning: ${line}\n`),
  });
  if (scheduler !== null) {
    process.stdout.write(`verifying the seal chain every ${config.verifyIntervalSeconds} s\n`);
  }
  return scheduler;
}

/**
 * Routes whose token is unset refuse every request, so a fresh `npm start` would serve nothing
 * useful. Instead this run gets random tokens, printed once; nothing is ever open without one.
 */
/** Tokens shorter than this are warned about at start-up. */
const MIN_TOKEN_CHARS = 16;

function withRunTokens(config: Config): { config: Config; generated: readonly TokenVariable[] } {
  const generated: TokenVariable[] = [];
  const token = (value: string | null, variable: TokenVariable): string => {
    if (value !== null) {
      // The right token is always accepted, even from an address throttled for wrong ones, so
      // only its length keeps it from being guessed.
      if (value.length < MIN_TOKEN_CHARS) {
        process.stderr.write(
          `activity-log: warning: ${variable} is only ${value.length} characters, short enough to be guessed; use a long random value (e.g. 32 random bytes, as serve generates when it is unset)\n`,
        );
      }
      return value;
    }
    generated.push(variable);
    return randomBytes(32).toString('base64url');
  };
  const ingestToken = token(config.ingestToken, 'ACTIVITY_LOG_INGEST_TOKEN');
  const adminToken = token(config.adminToken, 'ACTIVITY_LOG_ADMIN_TOKEN');
  return { config: Object.freeze({ ...config, ingestToken, adminToken }), generated };
}

/**
 * `--worker` only means something when activities travel through the queue. With `sync` or
 * `batch` this process already writes them itself, so the flag is accepted with a notice rather
 * than refused: a deployment that always passes it keeps working when the method changes.
 */
async function startWorkerIfAsked(
  asked: boolean,
  config: Config,
  store: ActivityStore,
  bus: ActivityEventBus,
): Promise<ActivityWorker | null> {
  if (!asked) return null;
  if (config.method !== 'queue') {
    process.stderr.write(
      `activity-log: --worker has no effect: ACTIVITY_LOG_METHOD=${config.method} writes activities from this process; set ACTIVITY_LOG_METHOD=queue and QUEUE_CONNECTION=redis to run a queue worker here\n`,
    );
    return null;
  }
  // On the application's bus: one collector counts both, under one process id.
  const worker = new ActivityWorker({ config, store, bus });
  worker.events.on('warning', (warning) =>
    process.stderr.write(`activity-log: warning: ${warning.message}\n`),
  );
  worker.events.on('jobFailed', (event) => {
    const outcome = event.willRetry ? 'will retry' : 'moved to the failed jobs';
    process.stderr.write(
      `activity-log: job ${event.jobId} attempt ${event.attempt} failed (${outcome}): ${event.error.code}: ${event.error.message}\n`,
    );
  });
  await worker.start();
  process.stdout.write(`queue worker started on ${worker.queueName}\n`);
  return worker;
}

/** The in-process worker stopping (e.g. after `activity-log restart`) stops the whole process. */
function stopWhenWorkerStops(stop: StopRequest, worker: ActivityWorker): void {
  worker.done.then(
    (summary: WorkerSummary) => stop.stop(`queue worker stopped (${summary.reason})`),
    (error: unknown) =>
      stop.stop(`queue worker failed: ${error instanceof Error ? error.message : String(error)}`),
  );
}

/**
 * Scheduled pruning: a minute after start-up and then daily, activities older than
 * `ACTIVITY_LOG_RETENTION_DAYS` are deleted in chunks, as `activity-log prune` does.
 */
function startRetention(config: Config, store: ActivityStore): RetentionScheduler {
  const { retentionDays } = config;
  const retention = new RetentionScheduler({
    store,
    retentionDays,
    onPruned: ({ deleted, before, seconds }) =>
      process.stdout.write(
        `pruned ${deleted} activities older than ${before.toISOString()} (ACTIVITY_LOG_RETENTION_DAYS=${retentionDays}) in ${seconds.toFixed(1)} s\n`,
      ),
    onError: (error) =>
      process.stderr.write(
        `activity-log: warning: scheduled prune failed, trying again tomorrow: ${error instanceof Error ? error.message : String(error)}\n`,
      ),
  });
  retention.start();
  return retention;
}

/**
 * Requests still running at shutdown get this long to finish; then their connections are cut, so
 * a client that never finishes its request cannot keep the buffers from being flushed before a
 * supervisor's own deadline (often 30 s) kills the process.
 */
export const SHUTDOWN_GRACE_MS = 5000;

async function closeServer(app: FastifyInstance): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace-over'>((resolve) => {
    timer = setTimeout(() => resolve('grace-over'), SHUTDOWN_GRACE_MS);
  });
  const closing = app.close();
  try {
    if ((await Promise.race([closing, graceOver])) === 'grace-over') {
      process.stderr.write(
        `activity-log: requests still open after ${SHUTDOWN_GRACE_MS / 1000} s; closing their connections\n`,
      );
      app.server.closeAllConnections();
      await closing;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Stops taking requests and jobs first, then flushes what was accepted and releases connections. */
async function shutDown(
  app: FastifyInstance | null,
  worker: ActivityWorker | null,
  activityLog: ActivityLog,
  monitoring: Monitoring | null,
): Promise<void> {
  try {
    if (app !== null) await closeServer(app);
    if (worker !== null) {
      worker.stop('signal');
      await worker.done.catch(() => undefined);
    }
  } finally {
    try {
      await activityLog.close();
    } finally {
      // Last, so that its final report to Redis counts the flush.
      await monitoring?.close();
    }
  }
}

function startBanner(url: string, config: Config, generated: readonly TokenVariable[]): string {
  const lines = [
    `activity-log listening on ${url} (${describeDatabase(config.database)}, method ${config.method})`,
    `  GET  ${url}/health`,
    `  POST ${url}/api/activities               Authorization: Bearer $ACTIVITY_LOG_INGEST_TOKEN`,
    `  GET  ${url}/api/backoffice/activity-logs  Authorization: Bearer $ACTIVITY_LOG_ADMIN_TOKEN`,
    '',
    `Backoffice: ${url}/backoffice/activity-logs and ${url}/backoffice/activity-logs/performance`,
    '  (sign in with the value of ACTIVITY_LOG_ADMIN_TOKEN)',
  ];
  if (generated.length > 0) {
    lines.push(
      '',
      `${generated.join(' and ')} ${generated.length === 1 ? 'is' : 'are'} not set; generated for this run only:`,
    );
    for (const variable of generated) {
      const value = variable === 'ACTIVITY_LOG_ADMIN_TOKEN' ? config.adminToken : config.ingestToken;
      lines.push(`  ${variable}=${value}`);
    }
    lines.push(
      'To keep tokens across restarts, set them in the environment or in .env, e.g.:',
      ...generated.map(
        (variable) =>
          `  echo "${variable}=$(node -e "console.log(require('node:crypto').randomBytes(32).toString('base64url'))")" >> .env`,
      ),
    );
  }
  lines.push('Press Ctrl+C to stop.');
  return `${lines.join('\n')}\n`;
}
