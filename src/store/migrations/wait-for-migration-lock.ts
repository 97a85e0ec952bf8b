import { setTimeout as sleep } from 'node:timers/promises';
import { ActivityLogError } from '../../core/errors.js';

/** How long a second migrating process waits for the first; creating the schema takes well under a second. */
const MIGRATION_LOCK_WAIT_MS = 60_000;
const POLL_INTERVAL_MS = 100;

/**
 * Polls a non-blocking lock attempt until it succeeds. Polling rather than one blocking wait keeps
 * every statement far below the query timeout, which would otherwise cut a long wait short.
 *
 * @throws ActivityLogError `STORE_LOCK_TIMEOUT` when the lock is still held after `waitMs`.
 */
export async function waitForMigrationLock(
  tryLock: () => Promise<boolean>,
  lockName: string,
  waitMs: number = MIGRATION_LOCK_WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!(await tryLock())) {
    if (Date.now() >= deadline) {
      throw new ActivityLogError(
        'STORE_LOCK_TIMEOUT',
        `another process has held the migration lock "${lockName}" for over ${waitMs} ms; wait for it to finish and run migrate again`,
      );
    }
    await sleep(POLL_INTERVAL_MS);
  }
}
