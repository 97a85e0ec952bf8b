import { isActivityLogError } from '../core/errors.js';
import type { BreakerTransition } from './breaker.js';
import type { ResilientSink, SpoolReason } from './resilient-sink.js';
import { ThrottledWarning } from './throttled-warning.js';

const REPLAY_WARNING_INTERVAL_MS = 10_000;

/**
 * Says out loud, one line each, what a resilient sink does while its destination is in trouble:
 * the breaker opening and closing, activities starting to go to the spool and the spool being
 * replayed empty, a replay that cannot read the spool, and a missing table (a configuration
 * error, said once). Lines name the destination and the cause, never credentials. Returns a
 * function that stops reporting.
 *
 * @example
 * const stop = reportResilience(sink, (line) => process.stderr.write(`${line}\n`));
 */
export function reportResilience(sink: ResilientSink, warn: (line: string) => void): () => void {
  const say = (text: string) => warn(`activity-log: ${text}`);
  const { breaker, spool } = sink;
  let missingTableSaid = false;
  const replayFailures = new ThrottledWarning(
    warn,
    REPLAY_WARNING_INTERVAL_MS,
    (count, _total, reason) =>
      `activity-log: could not replay the spool at ${spool.dir}${count > 1 ? ` (${count} times)` : ''}: ${reason}; its activities stay there`,
  );

  const onStateChange = ({ from, to, failureCount, error, probeAtMs }: BreakerTransition) => {
    if (to === 'open' && from === 'closed') {
      const probeInMs = Math.max(0, (probeAtMs ?? Date.now()) - Date.now());
      say(
        `the ${breaker.name} circuit breaker opened after ${failureCount} consecutive failure${failureCount === 1 ? '' : 's'}${causeText(error)}; activities go to the spool at ${spool.dir} until a probe succeeds (first in ${probeInMs} ms)`,
      );
    } else if (to === 'closed' && from !== 'closed') {
      say(`the ${breaker.name} circuit breaker closed: the ${sink.name} answers again`);
    }
  };
  const onSpoolingStarted = ({ reason, error }: { reason: SpoolReason; error?: unknown }) => {
    // An open breaker, or a missing table, has said so already.
    if (reason === 'breaker_open' || isActivityLogError(error, 'STORE_SCHEMA_MISSING')) return;
    say(spoolingText(sink.name, spool.dir, reason, error));
  };
  const onSpoolingStopped = ({ replayed }: { replayed: number }) => {
    say(
      `the spool at ${spool.dir} is replayed: ${replayed} activit${replayed === 1 ? 'y' : 'ies'} reached the ${sink.name}; writing to it directly again`,
    );
  };
  const onWriteFailed = ({ sink: name, error }: { sink: string; error: unknown }) => {
    if (name !== sink.name || missingTableSaid || !isActivityLogError(error, 'STORE_SCHEMA_MISSING')) return;
    missingTableSaid = true;
    say(
      `${error.message} first (from code: await store.migrate() on the store the activity log writes to, e.g. with DATABASE_URL=sqlite::memory:); until it exists nothing reaches the table`,
    );
  };
  const onLost = ({ segment }: { segment: string }) => {
    say(
      `the ${sink.name} lost jobs of spool segment ${segment} before they were stored (was Redis restarted without persistence?); enqueueing them again from the spool`,
    );
  };
  const onReplayFailed = ({ error }: { error: unknown }) => {
    replayFailures.add(1, error instanceof Error ? error.message : String(error));
  };

  breaker.events.on('stateChange', onStateChange);
  sink.events.on('spoolingStarted', onSpoolingStarted);
  sink.events.on('spoolingStopped', onSpoolingStopped);
  sink.bus.on('writeFailed', onWriteFailed);
  sink.events.on('replayFailed', onReplayFailed);
  sink.events.on('lost', onLost);
  return () => {
    sink.events.off('lost', onLost);
    breaker.events.off('stateChange', onStateChange);
    sink.events.off('spoolingStarted', onSpoolingStarted);
    sink.events.off('spoolingStopped', onSpoolingStopped);
    sink.bus.off('writeFailed', onWriteFailed);
    sink.events.off('replayFailed', onReplayFailed);
    replayFailures.flush();
  };
}

function causeText(error: unknown): string {
  if (error === undefined) return '';
  return ` (${error instanceof Error ? error.message : String(error)})`;
}

function spoolingText(name: string, dir: string, reason: SpoolReason, error: unknown): string {
  switch (reason) {
    case 'slow_write':
      return `${error instanceof Error ? error.message : `the ${name} is slow`}; activities go to the spool at ${dir} until it answers`;
    case 'backlog':
      return `the ${name} is slower than the activities coming in; the backlog goes to the spool at ${dir} and is replayed as it catches up`;
    default:
      return `a write to the ${name} failed${causeText(error)}; its activities went to the spool at ${dir} and are replayed when it answers`;
  }
}
