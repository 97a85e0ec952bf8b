import { ActivityLogError } from '../core/errors.js';
import type { CapturedTransaction } from './row-change.js';

/** How far behind its source the capture is, as the source measures it. */
export interface SourceLag {
  /** Bytes of change stream written by the source and not yet confirmed durable. */
  readonly bytes: number;
  /** Bytes the source keeps for the slot (WAL or binary log it may not remove yet). */
  readonly retainedBytes: number;
}

/**
 * One database's change stream (PostgreSQL logical replication, the MariaDB/MySQL binary log),
 * as the capture runner reads it: committed transactions in commit order, and a way to tell the
 * source how far everything is durable.
 */
export interface CaptureSource {
  /** What the source is, recorded in `properties.capture.source`: `postgres`, `mariadb`. */
  readonly kind: string;
  /** Identifies the stream (which server, database and slot) in ids and saved positions. */
  readonly streamKey: string;
  /** Tables of this schema are named without it in `subject_type`. */
  readonly defaultSchema: string;
  /**
   * Reads from `from` (a saved position; null: where the slot is) and calls `handle` with each
   * transaction, one at a time, waiting for it; `opened` once the server started sending. Resolves
   * once {@link stop} was called, rejects when the stream breaks.
   */
  run(
    from: string | null,
    handle: (transaction: CapturedTransaction) => Promise<void>,
    opened?: () => void,
  ): Promise<void>;
  /** Everything up to `position` (a `resumePosition`) is durable: the source may release it. */
  confirm(position: string): void;
  /** Whether every transaction read so far was handed over and nothing is being read (an idle source). */
  caughtUp(): boolean;
  lag(): Promise<SourceLag>;
  /** Whether the source is re-establishing its connection now (sources that reconnect say so). */
  reconnecting?(): boolean;
  /** Sends the last confirmation and stops reading. */
  stop(): Promise<void>;
}

/** The tables of the activity log itself, which `*` never includes and capture never records. */
export function isOwnTable(name: string, activityTable: string): boolean {
  return (
    name === activityTable ||
    name.startsWith(`${activityTable}_`) ||
    name === 'activity_log_capture_positions' ||
    name === 'activity_log_capture_stats' ||
    name === 'activity_log_capture_context'
  );
}

/** The one line for a capture source that could not be connected to, whatever its database. */
export function captureSourceUnreachable(error: unknown): ActivityLogError {
  return new ActivityLogError(
    'CAPTURE_STREAM_FAILED',
    `the capture source (ACTIVITY_LOG_CAPTURE_SOURCE) is not reachable: ${(error as Error).message}`,
    { cause: error },
  );
}
