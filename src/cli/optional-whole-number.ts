import type { z } from 'zod';
import { checkedFlag } from './optional-flag.js';

/**
 * A whole-number flag checked by a setting's schema (or a `wholeNumber(min, max)` of its own), or
 * undefined when the flag was not given. A bad value is a `CLI_USAGE` error whose one line names
 * the flag, the range and what was given.
 *
 * @example
 * const days = optionalWholeNumber('--days', flags.days, SETTINGS.retentionDays.schema) ?? config.retentionDays;
 */
export function optionalWholeNumber(
  flag: string,
  value: string | undefined,
  schema: z.ZodType<number, unknown>,
): number | undefined {
  if (value === undefined) return undefined;
  // Digits only: the schema alone would also read `1e3`, `0x10`, and a blank as 0.
  const digits = /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  return checkedFlag(flag, value, digits, schema);
}
