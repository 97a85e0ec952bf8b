import pg from 'pg';
import { CaptureRunner, type CaptureStats } from '../capture/capture-runner.js';
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
import { type CapturePosition, CapturePositionTable } from '../store/capture-positions.js';
import { composeActivityLog } from './create-activity-log.js';

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
}

/** The capture source URL, or one line saying it is missing or not yet supported. */
export function postgresSourceOf(config: Config): string {
  const source = config.capture.source;
  if (source === null) {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      'ACTIVITY_LOG_CAPTURE_SOURCE is not set: expected a postgres:// URL of the application database',
      { field: 'ACTIVITY_LOG_CAPTURE_SOURCE' },
    );
  }
  if (!/^postgres(ql)?:\/\//.test(source)) {
    throw new ActivityLogError(
      'CAPTURE_SOURCE_UNSUITABLE',
      'ACTIVITY_LOG_CAPTURE_SOURCE is a MariaDB/MySQL URL: capture reads PostgreSQL sources only so far',
      { field: 'ACTIVITY_LOG_CAPTURE_SOURCE' },
    );
  }
  return source;
}

async function withSourceClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (error) {
    throw new ActivityLogError(
      'CAPTURE_STREAM_FAILED',
      `the capture source (ACTIVITY_LOG_CAPTURE_SOURCE) is not reachable: ${(error as Error).message}`,
      { cause: error },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** `capture --setup`: full replica identity, the publication and the slot; prints each statement. */
export async function setUpCapture(config: Config, print: (line: string) => void): Promise<void> {
  const url = postgresSourceOf(config);
  await withSourceClient(url, (client) =>
    setUpPostgresCapture(
      client,
      { slot: config.capture.slot, tables: config.capture.tables, activityTable: config.database.table },
      print,
    ),
  );
  const positions = new CapturePositionTable(config.database);
  try {
    await positions.ensure();
  } finally {
    await positions.close();
  }
}

export interface CaptureStatus extends PostgresCaptureState {
  readonly saved: CapturePosition | null;
}

/** `capture --status`: the slot, its lag, the published tables and the saved position. */
export async function captureStatus(config: Config): Promise<CaptureStatus> {
  const url = postgresSourceOf(config);
  const source = new PostgresCaptureSource({ url, slot: config.capture.slot });
  const state = await withSourceClient(url, (client) => postgresCaptureState(client, config.capture.slot));
  await source.open();
  await source.stop();
  const positions = new CapturePositionTable(config.database);
  try {
    await positions.ensure();
    return { ...state, saved: await positions.read(source.streamKey, config.capture.slot) };
  } finally {
    await positions.close();
  }
}

/** `capture --drop-slot`: drops the slot and the publication and forgets the saved position. */
export async function dropCapture(config: Config, print: (line: string) => void): Promise<void> {
  const url = postgresSourceOf(config);
  const source = new PostgresCaptureSource({ url, slot: config.capture.slot });
  await source.open();
  await source.stop();
  await withSourceClient(url, (client) => dropPostgresCapture(client, config.capture.slot, print));
  const positions = new CapturePositionTable(config.database);
  try {
    await positions.ensure();
    await positions.remove(source.streamKey, config.capture.slot);
  } finally {
    await positions.close();
  }
}

/**
 * `capture`: reads the source's changes into the configured delivery until `stopRequested`, then
 * makes what was handed over durable, saves and confirms its position, and closes everything.
 */
export async function runCapture(config: Config, options: RunCaptureOptions): Promise<CaptureStats> {
  const url = postgresSourceOf(config);
  const slot = config.capture.slot;
  const startAt = await withSourceClient(url, async (client) => {
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

  const positions = new CapturePositionTable(config.database);
  const source = new PostgresCaptureSource({
    url,
    slot,
    ignoreTables: new Set(
      [config.database.table, 'activity_log_capture_positions', 'activity_log_capture_context'].map(
        (name) => `public.${name}`,
      ),
    ),
  });
  const { activityLog } = composeActivityLog({ config, warn: options.warn });
  try {
    await positions.ensure();
    await source.open();
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
    });
    options.print(
      `capture started: slot ${slot} of ${source.streamKey}, from ${from ?? 'the slot position'}, method ${config.method}`,
    );
    options.onStart?.(runner);
    const running = runner.run(from);
    let stopping: Promise<void> | null = null;
    void options.stopRequested.then(() => {
      stopping = runner.stop();
    });
    try {
      await running;
    } finally {
      if (stopping !== null) await stopping;
    }
    const stats = runner.stats();
    options.print(
      `capture stopped: ${stats.durableActivities} activities durable, position ${stats.position ?? 'unchanged'}`,
    );
    return stats;
  } finally {
    await source.stop();
    await activityLog.close().catch((error: unknown) => options.warn(`capture: ${(error as Error).message}`));
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
