import type { Activity } from '../core/activity.js';
import { isDataError } from './breaker.js';

/** An activity the destination refused as data, and why. */
export interface RefusedActivity {
  readonly activity: Activity;
  readonly error: unknown;
}

/** What {@link writeWithIsolation} did with a batch. */
export interface IsolatedWrite {
  /** The statements that stored their activities, in order. */
  readonly stored: readonly (readonly Activity[])[];
  /** Activities the destination refused as data, each alone. */
  readonly refused: readonly RefusedActivity[];
  /** Activities not written because the destination failed for another reason (`error`), in order. */
  readonly unwritten: readonly Activity[];
  /** The failure that left `unwritten` activities. */
  readonly error?: unknown;
  /** New rows, summed from what `write` resolved with (when it counts them). */
  readonly inserted: number;
  /** Write calls made. */
  readonly statements: number;
}

/**
 * Writes `activities` with `write`, one call for the whole batch when all is well. When the
 * destination refuses the data of a batch (a {@link isDataError}: a value too long, a check
 * failing), the batch is halved, and each half written, until every refused activity stands
 * alone: `k` refused activities among `n` cost at most `2k·⌈log₂ n⌉` further calls, and the rest
 * of the batch is stored in the same pass, in order. A failure of the destination itself stops
 * the pass: what was not written yet comes back as `unwritten`, for the caller to keep (spool,
 * queue) and retry — inserts are idempotent, so writing a stored half again is harmless.
 *
 * `alreadyRefused` is the data error of a call the caller made with the whole batch, so that call
 * is not repeated.
 *
 * @example
 * const result = await writeWithIsolation(batch, (part) => breaker.execute(() => store.insertMany(part)));
 * await spool.reject(result.refused.map((r) => r.activity), result.refused[0]?.error);
 */
export async function writeWithIsolation(
  activities: readonly Activity[],
  write: (activities: readonly Activity[]) => Promise<unknown>,
  alreadyRefused?: unknown,
): Promise<IsolatedWrite> {
  const stored: (readonly Activity[])[] = [];
  const refused: RefusedActivity[] = [];
  let inserted = 0;
  let statements = 0;
  // Parts still to write, the next one last; each is a contiguous run of the batch, in order.
  const parts: (readonly Activity[])[] = [];
  if (activities.length === 0) return { stored, refused, unwritten: [], inserted, statements };
  if (alreadyRefused === undefined) parts.push(activities);
  else splitInto(parts, activities, alreadyRefused, refused);
  while (parts.length > 0) {
    const part = parts.pop()!;
    try {
      statements++;
      const added = await write(part);
      if (typeof added === 'number') inserted += added;
      stored.push(part);
    } catch (error) {
      if (!isDataError(error)) {
        const unwritten = [...part];
        for (let i = parts.length - 1; i >= 0; i--) unwritten.push(...parts[i]!);
        return { stored, refused, unwritten, error, inserted, statements };
      }
      splitInto(parts, part, error, refused);
    }
  }
  return { stored, refused, unwritten: [], inserted, statements };
}

/** A refused single activity is set aside; a larger part is halved, its first half written next. */
function splitInto(
  parts: (readonly Activity[])[],
  part: readonly Activity[],
  error: unknown,
  refused: RefusedActivity[],
): void {
  if (part.length === 1) {
    refused.push({ activity: part[0]!, error });
    return;
  }
  const middle = Math.ceil(part.length / 2);
  parts.push(part.slice(middle), part.slice(0, middle));
}
