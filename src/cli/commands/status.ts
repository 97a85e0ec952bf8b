import { stripVTControlCharacters } from 'node:util';
import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config/config.js';
import { ActivityLogError, isActivityLogError } from '../../core/errors.js';
import type { CaptureJson } from '../../metrics/capture-figures.js';
import type { IntegrityJson, PerformanceData, PerformanceSnapshot } from '../../metrics/snapshot.js';
import { connectMonitoringReader, sharesThroughRedis } from '../../runtime/start-monitoring.js';

interface StatusFlags {
  readonly json?: boolean;
  readonly url?: string;
}

const PERFORMANCE_PATH = '/api/backoffice/activity-logs/performance';

/**
 * `activity-log status [--json] [--url <url>]`: the performance snapshot. With the queue it is read
 * from Redis (every live producer and worker); otherwise, or with `--url`, from a running `serve`.
 */
export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('the performance snapshot: queue size, rates, errors, breakers, spool, workers')
    .option('--json', 'print the JSON of GET /api/backoffice/activity-logs/performance')
    .option('--url <url>', 'read it from this running `serve` (default with the queue: from Redis)')
    .action(async (flags: StatusFlags) => {
      const config = loadConfig();
      const snapshot = await readSnapshot(config, flags.url);
      const color = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
      process.stdout.write(
        flags.json === true ? `${JSON.stringify(snapshot)}\n` : formatStatus(snapshot.data, { color }),
      );
    });
}

async function readSnapshot(config: Config, url: string | undefined): Promise<PerformanceSnapshot> {
  if (url === undefined && sharesThroughRedis(config, false)) {
    let monitoring: Awaited<ReturnType<typeof connectMonitoringReader>>;
    try {
      monitoring = await connectMonitoringReader(config);
    } catch (error) {
      if (!isActivityLogError(error, 'QUEUE_UNAVAILABLE')) throw error;
      throw new ActivityLogError(
        'MONITORING_UNAVAILABLE',
        `${error.message}; the figures of the queue's processes are kept there`,
        { cause: error },
      );
    }
    try {
      return await monitoring.snapshot();
    } finally {
      await monitoring.close();
    }
  }
  return fetchSnapshot(config, url ?? `http://${urlHost(config.host)}:${config.port}`);
}

/** Reads the snapshot from a running `serve`, with `ACTIVITY_LOG_ADMIN_TOKEN`. */
async function fetchSnapshot(config: Config, baseUrl: string): Promise<PerformanceSnapshot> {
  let target: URL;
  try {
    target = new URL(PERFORMANCE_PATH, baseUrl);
  } catch {
    throw new ActivityLogError(
      'CLI_USAGE',
      `--url must be an http(s) URL, e.g. http://127.0.0.1:3000 (got ${JSON.stringify(baseUrl)})`,
      {
        field: '--url',
      },
    );
  }
  if (config.adminToken === null) {
    throw new ActivityLogError(
      'MONITORING_UNAVAILABLE',
      `set ACTIVITY_LOG_ADMIN_TOKEN to the token of the \`serve\` at ${target.origin} (with ACTIVITY_LOG_METHOD=${config.method} each process keeps its own figures, so status asks the server)`,
      { field: 'ACTIVITY_LOG_ADMIN_TOKEN' },
    );
  }
  let response: Response;
  try {
    response = await fetch(target, {
      headers: { authorization: `Bearer ${config.adminToken}`, accept: 'application/json' },
      signal: AbortSignal.timeout(5000),
    });
  } catch (error) {
    throw new ActivityLogError(
      'MONITORING_UNAVAILABLE',
      `no \`serve\` answered at ${target.origin} (${error instanceof Error ? error.message : String(error)}); start it, or pass --url`,
      { cause: error },
    );
  }
  const body = (await response.json().catch(() => null)) as
    | PerformanceSnapshot
    | { error?: { code?: string; message?: string } }
    | null;
  if (!response.ok || body === null || !('data' in body)) {
    const reason =
      body !== null && 'error' in body && body.error?.message !== undefined
        ? body.error.message
        : `HTTP ${response.status}`;
    throw new ActivityLogError(
      'MONITORING_UNAVAILABLE',
      `${target.href} answered ${response.status}: ${reason}`,
    );
  }
  return body;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

const ANSI = {
  red: '\u001b[31;1m',
  yellow: '\u001b[33;1m',
  green: '\u001b[32m',
  bold: '\u001b[1m',
  reset: '\u001b[0m',
};

/** The snapshot as a readable table; breaker states stand out (in colour on a terminal). */
export function formatStatus(data: PerformanceData, options: { readonly color: boolean }): string {
  const paint = (code: string, text: string) => (options.color ? `${code}${text}${ANSI.reset}` : text);
  const state = (value: string) => {
    const label = value.toUpperCase();
    if (value === 'open') return paint(ANSI.red, label);
    if (value === 'half_open') return paint(ANSI.yellow, label);
    return paint(ANSI.green, label);
  };
  const breaker = data.circuit_breaker;
  const ms = (value: number | null) => (value === null ? '–' : `${value} ms`);
  const rows: [string, string][] = [
    ['queue size', `${data.queue_size} activities (buffers + queue + spool)`],
    ['processing rate', `${data.processing_rate} activities/s (mean of the last 60 s)`],
    ['error rate', `${data.error_rate} % of write attempts (last 5 min)`],
    ['total processed', String(data.total_processed)],
    ['pending jobs', String(data.pending_jobs)],
    ['failed jobs', String(data.failed_jobs)],
    ['memory', `${data.memory_usage} MB`],
    [
      'circuit breaker',
      `${state(breaker.state)} (${breaker.failure_count} consecutive failures${breaker.is_allowed ? '' : ', refusing writes'})`,
    ],
    [
      'spool',
      `${data.spool.activities} activities, ${formatBytes(data.spool.bytes)}${data.spool.oldest_age_seconds === null ? '' : `, oldest ${data.spool.oldest_age_seconds} s`}`,
    ],
    ['dropped', String(data.dropped_total)],
    ['lag', `p50 ${ms(data.lag_ms.p50)}, p99 ${ms(data.lag_ms.p99)} (last 5 min)`],
  ];
  if (data.integrity !== null) rows.push(...integrityRows(data.integrity, paint));
  for (const capture of data.capture ?? []) rows.push(captureRow(capture, paint));
  const lines = [
    paint(
      ANSI.bold,
      `activity-log status: method ${data.method}, ${data.processes} process${data.processes === 1 ? '' : 'es'} (${data.source === 'redis' ? 'all, via Redis' : 'one process'}), ${data.generated_at}`,
    ),
    '',
    ...table(
      rows.map(([name, value]) => [`  ${name}`, value]),
      false,
    ),
  ];
  const breakers = Object.entries(data.breakers);
  if (breakers.length > 0) {
    lines.push('', paint(ANSI.bold, 'breakers'));
    lines.push(
      ...table(
        [
          ['  name', 'state', 'failures', 'processes', 'open for'],
          ...breakers.map(([name, value]) => [
            `  ${name}`,
            state(value.state),
            String(value.failure_count),
            String(value.processes),
            value.open_for_seconds === null ? '–' : `${value.open_for_seconds} s`,
          ]),
        ],
        true,
      ),
    );
  }
  lines.push('', paint(ANSI.bold, `workers (${data.workers.length})`));
  if (data.workers.length === 0) {
    lines.push(data.method === 'queue' ? '  none alive: start `activity-log work`' : '  none (no queue)');
  } else {
    lines.push(
      ...table(
        [
          ['  id', 'host', 'pid', 'started', 'last heartbeat', 'stored', 'rate/s'],
          ...data.workers.map((worker) => [
            `  ${worker.id}`,
            worker.host,
            String(worker.pid),
            worker.started,
            worker.last_heartbeat,
            String(worker.stored),
            String(worker.current_rate),
          ]),
        ],
        true,
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** One captured stream: its state, rate, lag and retained log, or how old its last figures are. */
function captureRow(capture: CaptureJson, paint: (code: string, text: string) => string): [string, string] {
  const name = `capture ${capture.slot}`;
  if (!capture.live) {
    return [
      name,
      `${paint(ANSI.red, capture.state.toUpperCase())} (figures ${capture.report_age_seconds} s old, pid ${capture.pid} on ${capture.host})`,
    ];
  }
  const state =
    capture.state === 'streaming'
      ? paint(ANSI.green, 'STREAMING')
      : paint(ANSI.yellow, capture.state.toUpperCase());
  const retained =
    capture.retained_bytes === null ? '' : `, ${formatBytes(capture.retained_bytes)} kept behind the slot`;
  return [
    name,
    `${state} ${capture.events_per_second} changes/s, ${capture.lag_seconds} s behind${retained}`,
  ];
}

/** The seal chain's lines: seals, the newest checkpoint, the last scheduled verify. */
function integrityRows(
  integrity: IntegrityJson,
  paint: (code: string, text: string) => string,
): [string, string][] {
  const { checkpoint, verify } = integrity;
  const behind = integrity.checkpoint_behind_seconds ?? 0;
  const unread = integrity.read_error === null ? '' : ` (not read now: ${integrity.read_error})`;
  const checkpointLine =
    checkpoint === null
      ? 'none known'
      : `seal ${checkpoint.seq}, ${checkpoint.age_seconds} s old (${checkpoint.source === 'dir' ? 'in ACTIVITY_LOG_CHECKPOINT_DIR' : 'published here'})`;
  let verifyLine: string;
  if (verify.interval_seconds === null) verifyLine = 'not scheduled (ACTIVITY_LOG_VERIFY_INTERVAL_S)';
  else if (verify.status === 'never') verifyLine = `none finished yet (every ${verify.interval_seconds} s)`;
  else if (verify.status === 'ok')
    verifyLine = `${paint(ANSI.green, 'INTACT')} at ${verify.at} (${verify.seals} seals, ${verify.rows} rows, ${verify.duration_ms} ms)`;
  else
    verifyLine = `${paint(ANSI.red, 'NOT INTACT')} at ${verify.at}: ${verify.problems} problems, first: ${verify.first_problem}`;
  if (verify.error !== null) verifyLine += `; the last attempt could not run: ${verify.error}`;
  return [
    ['seals', `${integrity.seals_written} seals, ${integrity.rows_sealed} rows sealed${unread}`],
    ['checkpoint', `${checkpointLine}${behind > 0 ? `; the newest seals ${behind} s without one` : ''}`],
    ['last verify', verifyLine],
  ];
}

/** Columns padded to their widest cell (colour codes do not count). */
function table(rows: readonly (readonly string[])[], header: boolean): string[] {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, index) => {
      widths[index] = Math.max(widths[index] ?? 0, stripVTControlCharacters(cell).length);
    });
  return rows.map((row, rowIndex) => {
    const line = row
      .map((cell, index) =>
        index === row.length - 1
          ? cell
          : cell + ' '.repeat(widths[index]! - stripVTControlCharacters(cell).length),
      )
      .join('  ');
    return header && rowIndex === 0 ? line.toUpperCase() : line;
  });
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
