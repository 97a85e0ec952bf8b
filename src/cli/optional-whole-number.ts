import { ActivityLogError } from '../core/errors.js';

/**
 * A whole-number flag within bounds, or undefined when the flag was not given. A bad value is a
 * `CLI_USAGE` error whose one line names the flag, the range and what was given.
 *
 * @example
 * const days = optionalWholeNumber('--days', flags.days, 1, 36_500) ?? config.retentionDays;
 */
export function optionalWholeNumber(
  flag: string,
  value: string | undefined,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  const number = /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    const range = max >= Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
    throw new ActivityLogError(
      'CLI_USAGE',
      `${flag} must be a whole number ${range} (got ${JSON.stringify(value)})`,
      {
        field: flag,
      },
    );
  }
  return number;
}
