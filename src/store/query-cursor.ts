import { CREATED_AT_MAX_MS, invalid, isUuid } from '../core/activity.js';

/** Where the previous page ended: the last row's `created_at` and `id` (the tie-breaker). */
export interface QueryCursor {
  readonly createdAtMs: number;
  readonly id: string;
}

const CURSOR_PATTERN = /^(\d{1,15}):(.{36})$/;

/** Opaque to callers (base64url) so the keyset can change without breaking their code. */
export function encodeCursor(cursor: QueryCursor): string {
  return Buffer.from(`${cursor.createdAtMs}:${cursor.id}`, 'utf8').toString('base64url');
}

/** @throws ActivityLogError `VALIDATION_FAILED` naming `cursor` when it is not one this store made. */
export function decodeCursor(value: string): QueryCursor {
  const match = CURSOR_PATTERN.exec(Buffer.from(value, 'base64url').toString('utf8'));
  const createdAtMs = Number(match?.[1]);
  const id = match?.[2] ?? '';
  if (
    !isUuid(id) ||
    !Number.isSafeInteger(createdAtMs) ||
    createdAtMs > CREATED_AT_MAX_MS ||
    encodeCursor({ createdAtMs, id }) !== value
  ) {
    throw invalid('cursor', 'is not a cursor returned by a previous page (pass next_cursor back unchanged)');
  }
  return { createdAtMs, id };
}
