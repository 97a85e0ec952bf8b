import { hostname } from 'node:os';
import pg from 'pg';
import { captureReportOf } from '../capture/capture-report.js';
import { CaptureRunner, type CaptureStats } from '../capture/capture-runner.js';
import { type CaptureSource, captureSourceUnreachable, isOwnTable } from '../capture/capture-source.js';
import {
  type MysqlCaptureState,
  mysqlCaptureState,
  prepareMysqlCapture,
  setUpMysqlCapture,
} from '../capture/mysql/mysql-capture-admin.js';
import { MysqlCaptureSource } from '../capture/mysql/mysql-capture-source.js';
import {
  advanceSlotToNow,
  assertLogicalWal,
  dropPostgresCapture,
  type PostgresCaptureState,
  postgresCaptureState,
  publicationExists,
  setUpPostgresCapture,
  slotExists,
} from '../capture/postgres/pg-capture-admin.js';
import { PostgresCaptureSource } from '../capture/postgres/pg-capture-source.js';
import type { Config } from '../config/config.js';
import { ActivityLogError } from '../core/errors.js';
import { secretKeyMatcher } from '../core/redact.js';
import { type CaptureJson, captureJsonOf, parseCaptureReport } from '../metrics/capture-figures.js';
import type { Monitoring } from '../metrics/monitoring.js';
import { type CapturePosition, CapturePositionTable } from '../store/capture-positions.js';
import { type CaptureReporting, startCaptureReporting } from './capture-reporting.js';
import { composeActivityLog } from './create-activity-log.js';
import { sharesThroughRedis, startMonitoring } from './start-monitoring.js';

/** Where `capture` starts reading: the saved position (default), everything the slot kept, or now. */
export type CaptureFrom = 'saved' | 'earliest' | 'now';

export interface RunCaptureOptions {
  readonly from: CaptureFrom;
  /** Lines for the operator (start, stop, slot created). */
  readonly print: (line: string) => void;
  readonly warn: (line: string) => void;
  /** Resolves when the process is asked to stop (a signal). */
  readonly stopRequested: Promise<unknown>;
  /** Called once streaming, with the runner (monitoring reads its stats). */
  readonly onStart?: (runner: CaptureRunner) => void;
  /** Checkpoint interval, for tests (default 200 ms). */
  readonly checkpointIntervalMs?: number;
  /** First wait before reading again after the stream broke, for tests (default 500 ms). */
  readonly reconnectDelayMs?: number;
  /** How often the figures are measured and written to `activity_log_capture_stats` (default 5 s). */
  readonly reportIntervalMs?: number;
  /** Each measurement of the figures (the `capture_lag` alert). */
  readonly onMeasured?: (stats: CaptureStats) => Promise<void> | void;
}

/** The capture source: its kind and URL, or one line saying it is missing. */
export function captureSourceOf(config: Config): { readonly kind: SourceKind; readonly url: string } {
  const source = config.capture.source;
  if (source === null) {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      'ACTIVITY_LOG_CAPTURE_SOURCE is not set: expected a postgres://, mysql:// or mariadb:// URL of the application database',
      { field: 'ACTIVITY_LOG_CAPTURE_SOURCE' },
    );
  }
  return { kind: /^postgres(ql)?:\/\//.test(source) ? 'postgres' : 'mysql', url: source };
}

type SourceKind = 'postgres' | 'mysql';

function ownTable(config: Config): (name: string) => boolean {
  return (name) => isOwnTable(name, config.database.table);
}

async function withSourceClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (error) {
    throw captureSourceUnreachable(error);
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The source's reader, connected (it names the stream). */
async function openedSource(
  config: Config,
  kind: SourceKind,
  url: string,
  tables: readonly string[] = config.capture.tables,
  startWithoutPosition: 'now' | 'earliest' = 'now',
): Promise<CaptureSource> {
  const slot = config.capture.slot;
  if (kind === 'mysql') {
    const source = new MysqlCaptureSource({ url, slot, tables, startWithoutPosition });
    await source.open();
    return source;
  }
  const source = new PostgresCaptureSource({
    url,
    slot,
    ignoreTables: new Set(
      [
        config.database.table,
        'activity_log_capture_positions',
        'activity_log_capture_stats',
        'activity_log_capture_context',
      ].map((name) => `public.${name}`),
    ),
  });
  await source.open();
  return source;
}

/** The stream key of the configured source (which server, database and slot). */
async function streamKeyOf(config: Config, kind: SourceKind, url: string): Promise<string> {
  const source = await openedSource(config, kind, url);
  const key = source.streamKey;
  await source.stop();
  return key;
}

/**
 * `capture --setup`. PostgreSQL: full replica identity, the publication and the slot. MariaDB/MySQL:
 * checks the binary log settings and creates `activity_log_capture_context`. Prints each statement.
 */
export async function setUpCapture(config: Config, print: (line: string) => void): Promise<void> {
  const { kind, url } = captureSourceOf(config);
  if (kind === 'mysql') {
    await setUpMysqlCapture(url, { tables: config.capture.tables, isOwn: ownTable(config) }, print);
  } else {
    await withSourceClient(url, (client) =>
      setUpPostgresCapture(
        client,
        { slot: config.capture.slot, tables: config.capture.tables, activityTable: config.database.table },
        print,
      ),
    );
  }
  const positions = new CapturePositionTable(config.database);
  try {
    await positions.ensure();
    if (kind === 'mysql') {
      // The binary log has no slot to hold the changes made from now on: the position does.
      const streamKey = await streamKeyOf(config, kind, url);
      const { gtidPosition } = await mysqlCaptureState(url);
      if (gtidPosition !== null && (await positions.read(streamKey, config.capture.slot)) === null) {
        await positions.save(streamKey, config.capture.slot, `gtid:${gtidPosition}`);
        print(`capture will start at GTID ${gtidPosition}: changes from now on are captured`);
      }
    }
  } finally {
    await positions.close();
  }
}

/** What `capture --status` adds to the source's state: the saved position and the capture process's last figures. */
interface CaptureBookkeeping {
  readonly saved: CapturePosition | null;
  /** What the capture process of this slot last wrote (stale once it stopped writing); null: none ever ran. */
  readonly process: CaptureJson | null;
}

export type CaptureStatus =
  | ({ readonly kind: 'postgres' } & CaptureBookkeeping & PostgresCaptureState)
  | ({
      readonly kind: 'mysql';
      readonly slot: string;
      readonly tables: readonly string[];
    } & CaptureBookkeeping &
      MysqlCaptureState);

/** `capture --status`: the slot (PostgreSQL) or binary log (MariaDB/MySQL), the lag, the tables, the saved position. */
export async function captureStatus(config: Config): Promise<CaptureStatus> {
  const { kind, url } = captureSourceOf(config);
  const slot = config.capture.slot;
  const streamKey = await streamKeyOf(config, kind, url);
  const positions = new CapturePositionTable(config.database);
  try {
    await positions.ensure();
    const saved = await positions.read(streamKey, slot);
    const reports = (await positions.readStats())
      .filter((row) => row.source === streamKey && row.slot === slot)
      .map((row) => parseCaptureReport(row.report))
      .filter((report) => report !== null);
    const figures = captureJsonOf(reports, Date.now())[0] ?? null;
    if (kind === 'mysql') {
      return {
        kind,
        slot,
        tables: config.capture.tables,
        saved,
        process: figures,
        ...(await mysqlCaptureState(url)),
      };
    }
    const state = await withSourceClient(url, (client) => postgresCaptureState(client, slot));
    return { kind, saved, process: figures, ...state };
  } finally {
    await positions.close();
  }
}

/** `capture --drop-slot`: drops the slot and publication (PostgreSQL) and forgets the saved position. */
export async function dropCapture(config: Config, print: (line: string) => void): Promise<void> {
  const { kind, url } = captureSourceOf(config);
  const streamKey = await streamKeyOf(config, kind, url);
  if (kind === 'postgres') {
    await withSourceClient(url, (client) => dropPostgresCapture(client, config.capture.slot, print));
  } else {
    print('MariaDB/MySQL keep no slot for capture: only the saved position is forgotten');
  }
  const positions = new CapturePositionTable(config.database);
  try {
    await positions.ensure();
    await positions.remove(streamKey, config.capture.slot);
  } finally {
    await positions.close();
  }
}

/** PostgreSQL: checks, creates the slot if missing, waits for it to be free; the position `--from=now` moved it to. */
async function preparePostgres(
  url: string,
  slot: string,
  options: RunCaptureOptions,
): Promise<string | null> {
  return withSourceClient(url, async (client) => {
    await assertLogicalWal(client);
    if (!(await publicationExists(client, slot))) {
      throw new ActivityLogError(
        'CAPTURE_SOURCE_UNSUITABLE',
        `publication ${slot} does not exist on the capture source: run activity-log capture --setup first`,
      );
    }
    if (!(await slotExists(client, slot))) {
      await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      options.print(`capture: created replication slot ${slot}; changes from now on are captured`);
    }
    await waitUntilSlotIsFree(client, slot);
    return options.from === 'now' ? advanceSlotToNow(client, slot) : null;
  });
}

/**
 * `capture`: reads the source's changes into the configured delivery until `stopRequested`, then
 * makes what was handed over durable, saves and confirms its position, and closes everything.
 */
export async function runCapture(config: Config, options: RunCaptureOptions): Promise<CaptureStats> {
  const { kind, url } = captureSourceOf(config);
  const slot = config.capture.slot;
  let startAt: string | null = null;
  let tables = config.capture.tables;
  if (kind === 'mysql') {
    tables = await prepareMysqlCapture(url, { tables, isOwn: ownTable(config), warn: options.warn });
  } else startAt = await preparePostgres(url, slot, options);

  const positions = new CapturePositionTable(config.database);
  const { activityLog, collector } = composeActivityLog({ config, warn: options.warn });
  let monitoring: Monitoring | null = null;
  let source: CaptureSource | null = null;
  let reporting: CaptureReporting | null = null;
  try {
    await positions.ensure();
    source = await openedSource(config, kind, url, tables, options.from === 'earliest' ? 'earliest' : 'now');
    let from: string | null = startAt;
    if (options.from === 'saved') from = (await positions.read(source.streamKey, slot))?.position ?? null;
    if (startAt !== null) await positions.save(source.streamKey, slot, startAt);

    const runner = new CaptureRunner({
      source,
      logger: activityLog,
      positions,
      slot,
      mapping: {
        logName: config.capture.logName,
        subjectTypes: new Map(config.capture.subjects.map((entry) => [entry.table, entry.model])),
        excludedColumns: new Set(config.capture.excludeColumns),
        isSecretKey: secretKeyMatcher(config.redactKeys),
      },
      warn: options.warn,
      ...(options.checkpointIntervalMs === undefined
        ? {}
        : { checkpointIntervalMs: options.checkpointIntervalMs }),
      ...(options.reconnectDelayMs === undefined ? {} : { reconnectDelayMs: options.reconnectDelayMs }),
    });
    options.print(
      `capture started: slot ${slot} of ${source.streamKey}, from ${from ?? (kind === 'mysql' ? `the binary log's ${options.from === 'earliest' ? 'oldest event' : 'end'}` : 'the slot position')}, method ${config.method}`,
    );
    options.onStart?.(runner);
    const where = { host: hostname(), pid: process.pid };
    collector.include({ capture: (nowMs) => captureReportOf(runner.stats(), where, nowMs) });
    // With the queue, this process's figures (capture included) go to Redis like a producer's.
    if (sharesThroughRedis(config, false)) monitoring = startMonitoring({ config, collector, alerts: false });
    const running = runner.run(from);
    reporting = startCaptureReporting(runner, positions, {
      warn: options.warn,
      ...(options.reportIntervalMs === undefined ? {} : { intervalMs: options.reportIntervalMs }),
      ...(options.onMeasured === undefined ? {} : { onMeasured: options.onMeasured }),
    });
    let stopping: Promise<void> | null = null;
    void options.stopRequested.then(() => {
      stopping = runner.stop();
    });
    try {
      await running;
    } finally {
      if (stopping !== null) await stopping;
    }
    await reporting.close();
    reporting = null;
    const stats = runner.stats();
    options.print(
      `capture stopped: ${stats.durableActivities} activities durable, position ${stats.position ?? 'unchanged'}`,
    );
    return stats;
  } finally {
    await reporting?.close();
    await source?.stop();
    await activityLog.close().catch((error: unknown) => options.warn(`capture: ${(error as Error).message}`));
    await monitoring?.close().catch(() => undefined);
    await positions.close();
  }
}

/** How long a start waits for the slot to be released by a capture process that just died. */
const SLOT_RELEASE_WAIT_MS = 15_000;

/**
 * A slot is read by one connection at a time; the server frees it only once it sees the old
 * reader's connection gone, a moment after that process was killed.
 */
async function waitUntilSlotIsFree(client: pg.Client, slot: string): Promise<void> {
  const deadline = Date.now() + SLOT_RELEASE_WAIT_MS;
  for (;;) {
    const result = await client.query<{ pid: number | null }>(
      'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1 AND active',
      [slot],
    );
    const pid = result.rows[0]?.pid;
    if (pid === undefined) return;
    if (Date.now() >= deadline) {
      throw new ActivityLogError(
        'CAPTURE_SOURCE_UNSUITABLE',
        `replication slot ${slot} is read by another connection (server process ${pid ?? 'unknown'}): run one capture process per slot`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
