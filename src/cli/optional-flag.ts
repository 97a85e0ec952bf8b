import type { z } from 'zod';
import { ActivityLogError } from '../core/errors.js';

/**
 * A flag's value, checked by the schema of the setting it stands in for (or one built the same
 * way), or undefined when the flag was not given. A bad value is a `CLI_USAGE` error whose one line
 * names the flag, what is allowed (the schema's message) and what was given.
 *
 * @example
 * const queueName = optionalFlag('--queue', flags.queue, SETTINGS.queueName.schema) ?? config.queueName;
 */
export function optionalFlag<S extends z.ZodType>(
  flag: string,
  value: string | undefined,
  schema: S,
): z.output<S> | undefined {
  if (value === undefined) return undefined;
  return checkedFlag(flag, value, value, schema);
}

/** `text` as given on the command line, for the message; `input` what the schema checks. */
export function checkedFlag<S extends z.ZodType>(
  flag: string,
  text: string | undefined,
  input: unknown,
  schema: S,
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const allowed = result.error.issues[0]!.message.replace(/^expected /, '');
  throw new ActivityLogError('CLI_USAGE', `${flag} must be ${allowed} (got ${JSON.stringify(text)})`, {
    field: flag,
  });
}
