import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { ActivityLogError } from '../core/errors.js';
import { configError } from './config-error.js';
import { SETTINGS } from './config-settings.js';
import { parseDatabaseUrl } from './database-url.js';
import { emptyIsUnset, isSetting, type Setting, type SettingGroup } from './setting.js';

/** A group of settings (the top level, `database`, `redis`), possibly with groups inside. */
type SettingsTable = { readonly [key: string]: Setting | SettingsTable };

/** The zod schema a table of settings stands for: an object of their schemas, frozen when parsed. */
type SchemaOf<T extends SettingsTable> = z.ZodReadonly<
  z.ZodObject<{ -readonly [K in keyof T]: EntrySchema<T[K]> }>
>;
type EntrySchema<E> =
  E extends Setting<infer S extends z.ZodType> ? S : E extends SettingsTable ? SchemaOf<E> : never;

function schemaOf<T extends SettingsTable>(table: T): SchemaOf<T> {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, entry] of Object.entries(table))
    shape[key] = isSetting(entry) ? entry.schema : schemaOf(entry);
  // Object.entries forgets which key holds which schema; SchemaOf<T> restates it.
  return z.object(shape).readonly() as SchemaOf<T>;
}

/** Everything the configuration is checked against, once, by {@link loadConfig}. */
const CONFIG_SCHEMA = schemaOf(SETTINGS);

/** The validated, frozen configuration. Built once by {@link loadConfig}; nothing re-checks it. */
export type Config = z.output<typeof CONFIG_SCHEMA>;
export type DatabaseConfig = Config['database'];
export type RedisConfig = Config['redis'];
export type CaptureConfig = Config['capture'];
export type DbConnection = DatabaseConfig['connection'];
export type SslMode = NonNullable<DatabaseConfig['sslMode']>;
export type DeliveryMethod = Config['method'];
export type Durability = Config['durability'];

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends readonly unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};
/** Programmatic overrides: any part of {@link Config}; wins over the environment. */
export type ConfigOverrides = DeepPartial<Config>;

function envNamesOf(
  table: SettingsTable,
  prefix: string,
  names: Record<string, string>,
): Record<string, string> {
  for (const [key, entry] of Object.entries(table)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    if (isSetting(entry)) names[path] = entry.env;
    else envNamesOf(entry, path, names);
  }
  return names;
}

/** The environment variable behind each config path (documentation and error messages). */
export const CONFIG_ENV_NAMES: Readonly<Record<string, string>> = Object.freeze(envNamesOf(SETTINGS, '', {}));

type Env = Readonly<Record<string, string | undefined>>;

/** Reads `.env` from `cwd` (if present); real environment variables win over it, as with dotenv. */
export function readEnv(env: Env = process.env, cwd: string = process.cwd()): Env {
  const file = resolve(cwd, '.env');
  if (!existsSync(file)) return env;
  let fromFile: Record<string, string>;
  try {
    fromFile = parseEnv(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch (error) {
    throw new ActivityLogError('CONFIG_INVALID', `.env could not be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { ...fromFile, ...env };
}

/**
 * Each setting from its variable, or its default; a default that depends on other settings waits
 * for {@link applyDependentDefaults}, after the options.
 */
function readSettings(table: SettingsTable, env: Env): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(table)) {
    if (!isSetting(entry)) {
      raw[key] = readSettings(entry, env);
      continue;
    }
    const text = env[entry.env];
    const value = text === undefined ? undefined : (entry.fromEnv ?? emptyIsUnset)(text);
    raw[key] = value === undefined && typeof entry.default !== 'function' ? entry.default : value;
  }
  return raw;
}

function applyDependentDefaults(table: SettingsTable, raw: Record<string, unknown>): void {
  const given: SettingGroup = { ...raw };
  for (const [key, entry] of Object.entries(table)) {
    if (!isSetting(entry)) {
      const group = raw[key];
      if (isPlainObject(group)) applyDependentDefaults(entry, group);
    } else if (typeof entry.default === 'function') {
      raw[key] ??= entry.default(given);
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function mergeOverrides(
  target: Record<string, unknown>,
  overrides: object,
  prefix: string,
  paths: Set<string>,
): void {
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const current = target[key];
    if (isPlainObject(value) && isPlainObject(current)) {
      mergeOverrides(current, value, path, paths);
    } else {
      target[key] = value;
      paths.add(path);
    }
  }
}

/** Parts of `database` that `DATABASE_URL` sets (or leaves to their defaults) over `DB_*`. */
const DATABASE_URL_PATHS = [
  'connection',
  'host',
  'port',
  'database',
  'user',
  'password',
  'filename',
  'sslMode',
];

export interface LoadConfigOptions {
  /** Environment to read; defaults to `process.env` plus `.env` in the working directory. */
  readonly env?: Env;
  /** Values that win over the environment. */
  readonly overrides?: ConfigOverrides;
}

/**
 * Builds the configuration from the environment (and `.env`), applies defaults and overrides,
 * validates everything once and freezes the result.
 *
 * @throws ActivityLogError `CONFIG_INVALID`, with a message naming the variable, the value and what is allowed.
 * @example
 * const config = loadConfig({ overrides: { method: 'sync' } });
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? readEnv();
  const raw = readSettings(SETTINGS, env);
  const fromUrl = new Set<string>();
  const url = emptyIsUnset(env.DATABASE_URL ?? '');
  if (url !== undefined && isPlainObject(raw.database)) {
    Object.assign(raw.database, parseDatabaseUrl(url));
    for (const key of DATABASE_URL_PATHS) fromUrl.add(`database.${key}`);
  }
  const overridden = new Set<string>();
  if (options.overrides !== undefined) mergeOverrides(raw, options.overrides, '', overridden);
  applyDependentDefaults(SETTINGS, raw);

  const result = CONFIG_SCHEMA.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.join('.');
  let value: unknown = raw;
  for (const key of issue.path) value = (value as Record<PropertyKey, unknown>)?.[key as PropertyKey];
  const name = overridden.has(path)
    ? `options.${path}`
    : fromUrl.has(path)
      ? 'DATABASE_URL'
      : (CONFIG_ENV_NAMES[path] ?? CONFIG_ENV_NAMES[path.split('.').slice(0, -1).join('.')] ?? path);
  throw configError(name, value, issue.message);
}
