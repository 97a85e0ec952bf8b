import { z } from 'zod';

/** The other settings of a setting's group (`database`, `redis`, the top level) as given, before defaults. */
export type SettingGroup = Readonly<Record<string, unknown>>;

/**
 * One configuration setting: the environment variable that sets it, what it may be, and its value
 * when nothing sets it. The config's schema, its type, the environment reader and the error
 * messages are all derived from a table of these (`config-settings.ts`).
 */
export interface Setting<S extends z.ZodType = z.ZodType> {
  /** The environment variable, also named in the error when the value is not allowed. */
  readonly env: string;
  /** What the value may be; its error message says what is allowed ("expected …"). */
  readonly schema: S;
  /**
   * The value when neither the variable nor an option sets it. A function is called after the
   * options are applied, with the group's settings as given, for defaults that depend on another
   * setting (a database's port on its connection).
   */
  readonly default: z.input<S> | ((group: SettingGroup) => unknown);
  /**
   * The variable's text as the value the schema checks; undefined leaves the setting to its
   * default. Unless given, {@link emptyIsUnset}.
   */
  readonly fromEnv?: (text: string) => unknown;
}

/** Declares a setting, keeping its schema's own type (so `Config` knows `method` is an enum). */
export function setting<S extends z.ZodType>(definition: Setting<S>): Setting<S> {
  return Object.freeze(definition);
}

export function isSetting(value: unknown): value is Setting {
  return typeof value === 'object' && value !== null && (value as Setting).schema instanceof z.ZodType;
}

/** An empty variable counts as unset, as an unset one does. */
export const emptyIsUnset = (text: string): string | undefined => (text === '' ? undefined : text);

/** `null`, `NULL` and the empty string mean "none" (as in Laravel's .env files). */
export const noneOrText = (text: string): string | null =>
  text === '' || text.toLowerCase() === 'null' ? null : text;

/** The text as written: an empty variable sets the empty string. */
export const textAsWritten = (text: string): string => text;

/** Comma-separated entries, trimmed; an empty variable is an empty list. */
export const commaList = (text: string): string[] =>
  text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');

/** A whole number within bounds, from a number or its text; `max` of `Number.MAX_SAFE_INTEGER` means none. */
export function wholeNumber(min: number, max: number) {
  const allowed = `expected a whole number ${max >= Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`}`;
  return z.coerce
    .number({ error: allowed })
    .int({ error: allowed })
    .min(min, { error: allowed })
    .max(max, { error: allowed });
}

export function decimalNumber(min: number, max: number) {
  const allowed = `expected a number from ${min} to ${max}`;
  return z.coerce.number({ error: allowed }).min(min, { error: allowed }).max(max, { error: allowed });
}

export function oneOf<const T extends string>(values: readonly [T, ...T[]]) {
  return z.enum(values, { error: `expected one of ${values.join(', ')}` });
}

export const nonEmptyText = z.string().min(1, { error: 'expected a non-empty value' });
export const nullableText = z.string().nullable();
