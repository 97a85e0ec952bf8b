import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config/config.js';
import { ActivityLogError } from '../../core/errors.js';
import { createStoreSink } from '../../delivery/store-sink.js';
import { type DrainSpoolResult, drainSpool } from '../../resilience/drain-spool.js';
import { Spool, type SpoolStatus } from '../../resilience/spool.js';
import { createStore } from '../../store/create-store.js';

const MIB = 1024 * 1024;

/**
 * `activity-log spool [status|replay]`: what the local spool holds, and replaying it into the
 * store now (the segments of running processes are left to them).
 */
export function registerSpoolCommand(program: Command): void {
  program
    .command('spool')
    .description('inspect the local spool (status, the default) or replay it into the store now (replay)')
    .argument('[action]', 'status or replay', 'status')
    .option('--json', 'status: print JSON')
    .action(async (action: string, flags: { json?: boolean }) => {
      if (action !== 'status' && action !== 'replay') {
        throw new ActivityLogError(
          'CLI_USAGE',
          `spool: unknown action ${JSON.stringify(action)}; expected status or replay`,
          { field: 'action' },
        );
      }
      const config = loadConfig();
      if (action === 'status') {
        const spool = new Spool({ dir: resolve(config.spoolDir), maxBytes: config.spoolMaxMb * MIB });
        try {
          const status = await spool.status();
          process.stdout.write(
            flags.json === true ? `${JSON.stringify(statusJson(status), null, 2)}\n` : describe(status),
          );
        } finally {
          await spool.close();
        }
        return;
      }
      await replay(config);
    });
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
      `  rejected as bad data ${formatCount(status.rejected)} (kept in ${status.dir}/rejected.ndjson)`,
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
