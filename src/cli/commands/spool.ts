import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config/config.js';
import { wholeNumber } from '../../config/setting.js';
import { ActivityLogError } from '../../core/errors.js';
import { createStoreSink } from '../../delivery/store-sink.js';
import { type DrainSpoolResult, drainSpool } from '../../resilience/drain-spool.js';
import { Spool, type SpoolStatus } from '../../resilience/spool.js';
import { createStore } from '../../store/create-store.js';
import { optionalWholeNumber } from '../optional-whole-number.js';

const MIB = 1024 * 1024;

/**
 * `activity-log spool [status|replay|rejected]`: what the local spool holds, replaying it into
 * the store now (the segments of running processes are left to them), and the activities the
 * store refused as data (list, export, purge).
 */
export function registerSpoolCommand(program: Command): void {
  program
    .command('spool')
    .description(
      'inspect the local spool (status, the default), replay it into the store now (replay), or list, export or purge the activities the store refused as data (rejected)',
    )
    .argument('[action]', 'status, replay or rejected', 'status')
    .option('--json', 'status, rejected: print JSON')
    .option('--limit <n>', 'rejected: newest entries to list (default 20)')
    .option(
      '--export',
      'rejected: print every refused activity as one JSON line (NDJSON), ready to send again',
    )
    .option('--purge', 'rejected: delete rejected.ndjson, freeing its room in the spool')
    .action(async (action: string, flags: SpoolFlags) => {
      if (action !== 'status' && action !== 'replay' && action !== 'rejected') {
        throw new ActivityLogError(
          'CLI_USAGE',
          `spool: unknown action ${JSON.stringify(action)}; expected status, replay or rejected`,
          { field: 'action' },
        );
      }
      for (const flag of ['limit', 'export', 'purge'] as const) {
        if (flags[flag] !== undefined && action !== 'rejected') {
          throw new ActivityLogError('CLI_USAGE', `--${flag} goes with spool rejected, not spool ${action}`, {
            field: `--${flag}`,
          });
        }
      }
      const config = loadConfig();
      if (action === 'replay') {
        await replay(config);
        return;
      }
      const spool = new Spool({ dir: resolve(config.spoolDir), maxBytes: config.spoolMaxMb * MIB });
      try {
        if (action === 'rejected') await rejected(spool, flags);
        else {
          const status = await spool.status();
          process.stdout.write(
            flags.json === true ? `${JSON.stringify(statusJson(status), null, 2)}\n` : describe(status),
          );
        }
      } finally {
        await spool.close();
      }
    });
}

interface SpoolFlags {
  readonly json?: boolean;
  readonly limit?: string;
  readonly export?: boolean;
  readonly purge?: boolean;
}

const DEFAULT_REJECTED_LIMIT = 20;
const MESSAGE_PREVIEW_CHARS = 160;

async function rejected(spool: Spool, flags: SpoolFlags): Promise<void> {
  if ([flags.export, flags.purge, flags.json].filter((flag) => flag === true).length > 1) {
    throw new ActivityLogError('CLI_USAGE', 'spool rejected: choose one of --json, --export and --purge', {
      field: '--export',
    });
  }
  if (flags.purge === true) {
    const purged = await spool.purgeRejected();
    process.stdout.write(`purged ${activities(purged)} from ${spool.dir}/rejected.ndjson\n`);
    return;
  }
  const records = await spool.rejected();
  if (flags.export === true) {
    for (const record of records) process.stdout.write(`${JSON.stringify(record.activity)}\n`);
    return;
  }
  const limit =
    optionalWholeNumber('--limit', flags.limit, wholeNumber(1, 1_000_000)) ?? DEFAULT_REJECTED_LIMIT;
  const newest = records.slice(-limit).reverse();
  if (flags.json === true) {
    const json = {
      dir: spool.dir,
      rejected: records.length,
      oldest_at: records[0]?.rejectedAt ?? null,
      newest: newest.map((record) => ({
        rejected_at: record.rejectedAt,
        error: record.error,
        activity: record.activity,
      })),
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  if (records.length === 0) {
    process.stdout.write(`no refused activities in ${spool.dir}\n`);
    return;
  }
  const lines = [
    `${activities(records.length)} refused as data in ${spool.dir}/rejected.ndjson, the oldest at ${records[0]!.rejectedAt}`,
    `newest ${newest.length}:`,
  ];
  for (const record of newest) {
    const message =
      record.error.message.length > MESSAGE_PREVIEW_CHARS
        ? `${record.error.message.slice(0, MESSAGE_PREVIEW_CHARS)}…`
        : record.error.message;
    lines.push(
      `  ${record.rejectedAt}  ${String(record.activity.id)}  ${record.error.code ?? '-'}: ${message}`,
    );
  }
  lines.push(
    'Fix the cause, then send them again (activity-log spool rejected --export, POSTed to /api/activities: their ids make a resend store once) and purge them (--purge).',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function replay(config: Config): Promise<void> {
  const tty = process.stderr.isTTY === true;
  let drawn = false;
  let result: DrainSpoolResult;
  try {
    result = await drainSpool(config, createStoreSink(createStore(config.database)), {
      onProgress(replayed, total) {
        if (!tty) return;
        process.stderr.write(
          `\r\u001b[Kreplayed ${formatCount(replayed)} of ${formatCount(total)} activities`,
        );
        drawn = true;
      },
      onSegment(segment, replayed, total) {
        if (!tty)
          process.stderr.write(
            `replayed ${segment} (${formatCount(replayed)} of ${formatCount(total)} activities)\n`,
          );
      },
    });
  } finally {
    if (drawn) process.stderr.write('\r\u001b[K');
  }
  const left =
    result.runningSegments === 0
      ? ''
      : `; ${result.runningSegments} segment(s) of running processes left to them`;
  if (result.total === 0) {
    process.stdout.write(`the spool holds nothing to replay${left}\n`);
    return;
  }
  const rate = result.seconds > 0 ? Math.round(result.replayed / result.seconds) : result.replayed;
  const damaged = result.corruptRecords === 0 ? '' : `; skipped ${result.corruptRecords} damaged record(s)`;
  process.stdout.write(
    `replayed ${formatCount(result.replayed)} activities from ${result.segments} segment(s) in ${result.seconds.toFixed(1)} s (${formatCount(rate)}/s)${damaged}${left}\n`,
  );
  if (!result.complete) {
    const reason = result.error instanceof Error ? result.error.message : String(result.error);
    throw new ActivityLogError(
      'SPOOL_FAILED',
      `replay stopped with ${activities(result.total - result.replayed)} still spooled: ${reason}`,
      { cause: result.error },
    );
  }
}

function statusJson(status: SpoolStatus) {
  return {
    dir: status.dir,
    segments: status.segments.length,
    bytes: status.bytes,
    max_bytes: status.maxBytes,
    activities: status.activities,
    oldest_at: status.oldestAt?.toISOString() ?? null,
    oldest_age_seconds:
      status.oldestAt === null ? null : Math.round((Date.now() - status.oldestAt.getTime()) / 1000),
    rejected: status.rejected,
    rejected_bytes: status.rejectedBytes,
    rejected_oldest_at: status.rejectedOldestAt?.toISOString() ?? null,
    owners: owners(status),
  };
}

function owners(
  status: SpoolStatus,
): { owner: string; alive: boolean; segments: number; activities: number }[] {
  const byOwner = new Map<string, { owner: string; alive: boolean; segments: number; activities: number }>();
  for (const segment of status.segments) {
    const entry = byOwner.get(segment.owner) ?? {
      owner: segment.owner,
      alive: segment.ownerAlive,
      segments: 0,
      activities: 0,
    };
    entry.segments++;
    entry.activities += segment.activities;
    byOwner.set(segment.owner, entry);
  }
  return [...byOwner.values()];
}

function describe(status: SpoolStatus): string {
  const lines = [`spool ${status.dir}`];
  lines.push(
    `  segments             ${status.segments.length} (${(status.bytes / MIB).toFixed(1)} MiB of ${Math.round(status.maxBytes / MIB)} MiB)`,
  );
  lines.push(`  activities waiting   ${formatCount(status.activities)}`);
  lines.push(
    `  oldest               ${status.oldestAt === null ? '-' : `${status.oldestAt.toISOString()} (${age(Date.now() - status.oldestAt.getTime())} ago)`}`,
  );
  if (status.rejected > 0) {
    lines.push(
      `  rejected as bad data ${formatCount(status.rejected)} since ${status.rejectedOldestAt?.toISOString() ?? '-'} (${(status.rejectedBytes / MIB).toFixed(1)} MiB in ${status.dir}/rejected.ndjson; see activity-log spool rejected)`,
    );
  }
  for (const owner of owners(status)) {
    const [pid] = owner.owner.split('-');
    const state = owner.alive
      ? 'running: it replays them itself'
      : 'gone: replayed by the next process to start, or by `activity-log spool replay`';
    lines.push(
      `  pid ${pid}: ${owner.segments} segment(s), ${formatCount(owner.activities)} activities (${state})`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function age(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

function activities(count: number): string {
  return `${formatCount(count)} ${count === 1 ? 'activity' : 'activities'}`;
}

function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}
