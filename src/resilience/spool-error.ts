import { ActivityLogError } from '../core/errors.js';

/** The `SPOOL_FAILED` error every spool operation throws, with the file system's error as its cause. */
export function spoolError(message: string, cause?: unknown): ActivityLogError {
  return new ActivityLogError('SPOOL_FAILED', message, cause === undefined ? {} : { cause });
}

export function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
