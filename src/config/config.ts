import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { DEFAULT_REDACT_KEYS } from '../core/activity.js';
import { ActivityLogError } from '../core/errors.js';

export type DbConnection = 'sqlite' | 'mysql' | 'mariadb' | 'pgsql';
export type DeliveryMethod = 'sync' | 'batch' | 'queue';
export type Durability = 'memory' | 'disk';

export interface DatabaseConfig {
  readonly connection: DbConnection;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string | null;
  /** SQLite file path, or `:memory:`. */
  readonly filename: string;
  readonly table: string;
  readonly poolMax: number;
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  /**
   * TLS to MySQL/MariaDB/PostgreSQL: `disable`, `require` (encrypted, certificate not checked) or
   * `verify-full` (encrypted, certificate and host name checked against the system CAs and
   * `NODE_EXTRA_CA_CERTS`). Null leaves it to the driver (`pg` reads `PGSSLMODE`).
   */
  readonly sslMode: SslMode | null;
}

export type SslMode = 'disable' | 'require' | 'verify-full';

export interface RedisConfig {
  readonly url: string | null;
  readonly host: string;
  readonly port: number;
  readonly password: string | null;
}

/** The validated, frozen configuration. Built once by {@link loadConfig}; nothing re-checks it. */
export interface Config {
  readonly database: DatabaseConfig;
  readonly queueConnection: 'sync' | 'redis';
  readonly redis: RedisConfig;
  readonly method: DeliveryMethod;
  readonly activityQueueConnection: 'redis';
  readonly queueName: string;
  readonly retryAfterSeconds: number;
  readonly tries: number;
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  readonly breakerFailures: number;
  readonly breakerCooldownMs: number;
  /**
   * A write still unanswered after this is slow: its activities are spooled at once (nothing waits
   * in memory for a hung database), and the breaker counts it as a failure.
   */
  readonly slowWriteMs: number;
  readonly spoolDir: string;
  readonly spoolMaxMb: number;
  readonly durability: Durability;
  readonly retentionDays: number;
  readonly redactKeys: readonly string[];
  readonly adminToken: string | null;
  readonly ingestToken: string | null;
  readonly alertWebhook: string | null;
  readonly alertErrorRate: number;
  readonly alertQueueSize: number;
  /** Alert when a circuit breaker has been open this long. */
  readonly alertBreakerOpenSeconds: number;
  /** Alert when the 99th percentile lag from `log()` to the stored row exceeds this. */
  readonly alertLagP99Ms: number;
  /** A firing alert is notified again at most this often. */
  readonly alertCooldownSeconds: number;
  readonly host: string;
  readonly port: number;
  /**
   * Which proxies `serve` believes about the client address (`X-Forwarded-For`) and scheme:
   * false (none), true (any), a number of hops, or addresses and CIDR ranges.
   */
  readonly trustProxy: boolean | number | readonly string[];
}

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends readonly unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};
/** Programmatic overrides: any part of {@link Config}; wins over the environment. */
export type ConfigOverrides = DeepPartial<Config>;

const DIALECT_DEFAULTS: Record<DbConnection, { port: number; user: string; database: string }> = {
  sqlite: { port: 0, user: '', database: '' },
  mysql: { port: 3306, user: 'root', database: 'activity_log' },
  mariadb: { port: 3306, user: 'root', database: 'activity_log' },
  pgsql: { port: 5432, user: 'postgres', database: 'activity_log' },
};

export const DEFAULT_SQLITE_FILE = './storage/activity-log.sqlite';

const int = (min: number, max: number) =>
  z.coerce
    .number({ error: `expected a whole number from ${min} to ${max}` })
    .int({ error: `expected a whole number from ${min} to ${max}` })
    .min(min, { error: `expected a whole number from ${min} to ${max}` })
    .max(max, { error: `expected a whole number from ${min} to ${max}` });
const decimal = (min: number, max: number) =>
  z.coerce
    .number({ error: `expected a number from ${min} to ${max}` })
    .min(min, { error: `expected a number from ${min} to ${max}` })
    .max(max, { error: `expected a number from ${min} to ${max}` });
const oneOf = <T extends string>(values: readonly [T, ...T[]]) =>
  z.enum(values, { error: `expected one of ${values.join(', ')}` });
const text = z.string().min(1, { error: 'expected a non-empty value' });
const nullableText = z.string().nullable();
const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, {
  error: 'expected a table name of letters, digits and _ (at most 63)',
});

const TRUST_PROXY_ALLOWED =
  'expected true, false, a number of hops (1-100), or comma-separated addresses/CIDR ranges';

const schema = z.object({
  database: z.object({
    connection: oneOf(['sqlite', 'mysql', 'mariadb', 'pgsql']),
    host: text,
    port: int(1, 65_535),
    database: text,
    user: z.string(),
    password: nullableText,
    filename: text,
    table: identifier,
    poolMax: int(1, 1000),
    connectTimeoutMs: int(100, 600_000),
    queryTimeoutMs: int(100, 3_600_000),
    sslMode: oneOf(['disable', 'require', 'verify-full']).nullable(),
  }),
  queueConnection: oneOf(['sync', 'redis']),
  redis: z.object({ url: nullableText, host: text, port: int(1, 65_535), password: nullableText }),
  method: oneOf(['sync', 'batch', 'queue']),
  activityQueueConnection: oneOf(['redis']),
  queueName: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,100}$/, { error: 'expected 1-100 letters, digits, ".", "_" or "-"' }),
  retryAfterSeconds: int(1, 86_400),
  tries: int(1, 100),
  batchSize: int(1, 10_000),
  flushIntervalMs: int(1, 60_000),
  breakerFailures: int(1, 1000),
  breakerCooldownMs: int(100, 3_600_000),
  slowWriteMs: int(10, 3_600_000),
  spoolDir: text,
  spoolMaxMb: int(1, 1_048_576),
  durability: oneOf(['memory', 'disk']),
  retentionDays: int(1, 36_500),
  redactKeys: z.array(z.string().min(1)),
  adminToken: nullableText,
  ingestToken: nullableText,
  alertWebhook: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).nullable(),
  alertErrorRate: decimal(0, 100),
  alertQueueSize: int(1, 1_000_000_000),
  alertBreakerOpenSeconds: int(0, 86_400),
  alertLagP99Ms: int(1, 86_400_000),
  alertCooldownSeconds: int(0, 86_400),
  host: text,
  port: int(0, 65_535),
  trustProxy: z.union(
    [
      z.boolean(),
      z.number().int().min(1, { error: TRUST_PROXY_ALLOWED }).max(100, { error: TRUST_PROXY_ALLOWED }),
      z.array(z.string().refine(isAddressOrRange, { error: TRUST_PROXY_ALLOWED })).min(1),
    ],
    { error: TRUST_PROXY_ALLOWED },
  ),
});

/** `10.0.0.1`, `::1`, `10.0.0.0/8`, `fd00::/8`, or one of proxy-addr's names (`loopback`, `linklocal`, `uniquelocal`). */
function isAddressOrRange(value: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(value)) return true;
  const [address = '', bits, extra] = value.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/** Config path → environment variable, for error messages and the README. */
const ENV_NAMES: Record<string, string> = {
  'database.connection': 'DB_CONNECTION',
  'database.host': 'DB_HOST',
  'database.port': 'DB_PORT',
  'database.database': 'DB_DATABASE',
  'database.user': 'DB_USERNAME',
  'database.password': 'DB_PASSWORD',
  'database.filename': 'DB_DATABASE',
  'database.table': 'ACTIVITY_LOG_TABLE',
  'database.poolMax': 'DB_POOL_MAX',
  'database.connectTimeoutMs': 'DB_CONNECT_TIMEOUT_MS',
  'database.queryTimeoutMs': 'DB_QUERY_TIMEOUT_MS',
  'database.sslMode': 'DB_SSL_MODE',
  queueConnection: 'QUEUE_CONNECTION',
  'redis.url': 'REDIS_URL',
  'redis.host': 'REDIS_HOST',
  'redis.port': 'REDIS_PORT',
  'redis.password': 'REDIS_PASSWORD',
  method: 'ACTIVITY_LOG_METHOD',
  activityQueueConnection: 'ACTIVITY_LOG_QUEUE_CONNECTION',
  queueName: 'ACTIVITY_LOG_QUEUE_NAME',
  retryAfterSeconds: 'ACTIVITY_LOG_RETRY_AFTER',
  tries: 'ACTIVITY_LOG_TRIES',
  batchSize: 'ACTIVITY_LOG_BATCH_SIZE',
  flushIntervalMs: 'ACTIVITY_LOG_FLUSH_INTERVAL_MS',
  breakerFailures: 'ACTIVITY_LOG_BREAKER_FAILURES',
  breakerCooldownMs: 'ACTIVITY_LOG_BREAKER_COOLDOWN_MS',
  slowWriteMs: 'ACTIVITY_LOG_SLOW_WRITE_MS',
  spoolDir: 'ACTIVITY_LOG_SPOOL_DIR',
  spoolMaxMb: 'ACTIVITY_LOG_SPOOL_MAX_MB',
  durability: 'ACTIVITY_LOG_DURABILITY',
  retentionDays: 'ACTIVITY_LOG_RETENTION_DAYS',
  redactKeys: 'ACTIVITY_LOG_REDACT_KEYS',
  adminToken: 'ACTIVITY_LOG_ADMIN_TOKEN',
  ingestToken: 'ACTIVITY_LOG_INGEST_TOKEN',
  alertWebhook: 'ACTIVITY_LOG_ALERT_WEBHOOK',
  alertErrorRate: 'ACTIVITY_LOG_ALERT_ERROR_RATE',
  alertQueueSize: 'ACTIVITY_LOG_ALERT_QUEUE_SIZE',
  alertBreakerOpenSeconds: 'ACTIVITY_LOG_ALERT_BREAKER_OPEN_SECONDS',
  alertLagP99Ms: 'ACTIVITY_LOG_ALERT_LAG_P99_MS',
  alertCooldownSeconds: 'ACTIVITY_LOG_ALERT_COOLDOWN_SECONDS',
  host: 'HOST',
  port: 'PORT',
  trustProxy: 'ACTIVITY_LOG_TRUST_PROXY',
};

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

/** `null`, `NULL` and the empty string mean "none" (as in Laravel's .env files). */
function nullable(value: string | undefined): string | null | undefined {
  if (value === undefined) return undefined;
  return value === '' || value.toLowerCase() === 'null' ? null : value;
}

function rawFromEnv(env: Env): { raw: Record<string, unknown>; fromUrl: Set<string> } {
  const fromUrl = new Set<string>();
  const get = (name: string) => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };
  const database: Record<string, unknown> = {
    connection: get('DB_CONNECTION') ?? 'sqlite',
    host: get('DB_HOST') ?? '127.0.0.1',
    port: get('DB_PORT'),
    database: get('DB_DATABASE'),
    user: env.DB_USERNAME,
    password: nullable(env.DB_PASSWORD) ?? null,
    table: get('ACTIVITY_LOG_TABLE') ?? 'activity_log',
    poolMax: get('DB_POOL_MAX') ?? 10,
    connectTimeoutMs: get('DB_CONNECT_TIMEOUT_MS') ?? 5000,
    queryTimeoutMs: get('DB_QUERY_TIMEOUT_MS') ?? 10_000,
    sslMode: nullable(env.DB_SSL_MODE) ?? null,
  };
  const url = get('DATABASE_URL');
  if (url !== undefined) {
    Object.assign(database, parseDatabaseUrl(url));
    for (const key of ['connection', 'host', 'port', 'database', 'user', 'password', 'filename', 'sslMode'])
      fromUrl.add(`database.${key}`);
  }
  const raw: Record<string, unknown> = {
    database,
    queueConnection: get('QUEUE_CONNECTION') ?? 'sync',
    redis: {
      url: nullable(env.REDIS_URL) ?? null,
      host: get('REDIS_HOST') ?? '127.0.0.1',
      port: get('REDIS_PORT') ?? 6379,
      password: nullable(env.REDIS_PASSWORD) ?? null,
    },
    method: get('ACTIVITY_LOG_METHOD') ?? 'batch',
    activityQueueConnection: get('ACTIVITY_LOG_QUEUE_CONNECTION') ?? 'redis',
    queueName: get('ACTIVITY_LOG_QUEUE_NAME') ?? 'activity-logs',
    retryAfterSeconds: get('ACTIVITY_LOG_RETRY_AFTER') ?? 90,
    tries: get('ACTIVITY_LOG_TRIES') ?? 3,
    batchSize: get('ACTIVITY_LOG_BATCH_SIZE') ?? 500,
    flushIntervalMs: get('ACTIVITY_LOG_FLUSH_INTERVAL_MS') ?? 50,
    breakerFailures: get('ACTIVITY_LOG_BREAKER_FAILURES') ?? 5,
    breakerCooldownMs: get('ACTIVITY_LOG_BREAKER_COOLDOWN_MS') ?? 10_000,
    slowWriteMs: get('ACTIVITY_LOG_SLOW_WRITE_MS') ?? 1000,
    spoolDir: get('ACTIVITY_LOG_SPOOL_DIR') ?? './storage/activity-log-spool',
    spoolMaxMb: get('ACTIVITY_LOG_SPOOL_MAX_MB') ?? 1024,
    durability: get('ACTIVITY_LOG_DURABILITY') ?? 'memory',
    retentionDays: get('ACTIVITY_LOG_RETENTION_DAYS') ?? 365,
    redactKeys:
      env.ACTIVITY_LOG_REDACT_KEYS === undefined
        ? [...DEFAULT_REDACT_KEYS]
        : env.ACTIVITY_LOG_REDACT_KEYS.split(',')
            .map((key) => key.trim())
            .filter((key) => key !== ''),
    adminToken: nullable(env.ACTIVITY_LOG_ADMIN_TOKEN) ?? null,
    ingestToken: nullable(env.ACTIVITY_LOG_INGEST_TOKEN) ?? null,
    alertWebhook: nullable(env.ACTIVITY_LOG_ALERT_WEBHOOK) ?? null,
    alertErrorRate: get('ACTIVITY_LOG_ALERT_ERROR_RATE') ?? 5,
    alertQueueSize: get('ACTIVITY_LOG_ALERT_QUEUE_SIZE') ?? 10_000,
    alertBreakerOpenSeconds: get('ACTIVITY_LOG_ALERT_BREAKER_OPEN_SECONDS') ?? 60,
    alertLagP99Ms: get('ACTIVITY_LOG_ALERT_LAG_P99_MS') ?? 60_000,
    alertCooldownSeconds: get('ACTIVITY_LOG_ALERT_COOLDOWN_SECONDS') ?? 300,
    host: get('HOST') ?? '127.0.0.1',
    port: get('PORT') ?? 3000,
    trustProxy: trustProxyFromEnv(env.ACTIVITY_LOG_TRUST_PROXY),
  };
  return { raw, fromUrl };
}

/** `true`/`false`, a hop count, or a comma-separated list (validated by the schema). */
function trustProxyFromEnv(value: string | undefined): unknown {
  const text = value?.trim() ?? '';
  if (text === '' || text === '0' || text.toLowerCase() === 'false') return false;
  if (text.toLowerCase() === 'true') return true;
  if (/^\d+$/.test(text)) return Number(text);
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/** Parses `DATABASE_URL`: `mysql://`, `mariadb://`, `postgres(ql)://`, `sqlite:./file`, `sqlite::memory:`. */
export function parseDatabaseUrl(url: string): Record<string, unknown> {
  if (url.startsWith('sqlite:')) {
    const filename = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (filename === '')
      throw configError('DATABASE_URL', url, 'expected sqlite:./path/to/file or sqlite::memory:');
    return { connection: 'sqlite', filename };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw configError(
      'DATABASE_URL',
      url,
      'expected mysql://, mariadb://, postgres://, sqlite:./file or sqlite::memory:',
    );
  }
  const protocols: Record<string, DbConnection> = {
    'mysql:': 'mysql',
    'mariadb:': 'mariadb',
    'postgres:': 'pgsql',
    'postgresql:': 'pgsql',
  };
  const connection = protocols[parsed.protocol];
  if (connection === undefined) {
    throw configError(
      'DATABASE_URL',
      url,
      'expected mysql://, mariadb://, postgres://, sqlite:./file or sqlite::memory:',
    );
  }
  const decoded = (part: string, value: string): string => {
    try {
      return decodeURIComponent(value);
    } catch {
      throw configError('DATABASE_URL', url, `the ${part} is not URL-encoded (write % as %25)`);
    }
  };
  const database = decoded('database name', parsed.pathname.replace(/^\//, ''));
  const fields: Record<string, unknown> = {
    connection,
    // `[::1]` is how a URL writes an IPv6 address; the drivers want it bare.
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: parsed.port === '' ? undefined : parsed.port,
    database: database === '' ? undefined : database,
    user: parsed.username === '' ? undefined : decoded('user name', parsed.username),
    password: parsed.password === '' ? null : decoded('password', parsed.password),
  };
  for (const [name, value] of parsed.searchParams) {
    if (!SSL_PARAMETERS.has(name)) {
      throw configError(
        'DATABASE_URL',
        url,
        `unknown parameter "${name}": only sslmode (disable, require, verify-full) is read`,
      );
    }
    fields.sslMode = SSL_MODE_ALIASES[value.toLowerCase()] ?? value;
  }
  return fields;
}

/** `sslmode` as in PostgreSQL URLs, `ssl-mode` as in MySQL's, `ssl=true|false` as in many clients. */
const SSL_PARAMETERS = new Set(['sslmode', 'ssl-mode', 'ssl']);
const SSL_MODE_ALIASES: Readonly<Record<string, string>> = {
  disable: 'disable',
  disabled: 'disable',
  false: 'disable',
  require: 'require',
  required: 'require',
  true: 'require',
  'verify-full': 'verify-full',
  verify_identity: 'verify-full',
};

function configError(name: string, value: unknown, allowed: string): ActivityLogError {
  const shown = /TOKEN|PASSWORD|URL|WEBHOOK/i.test(name) ? '(hidden)' : JSON.stringify(value);
  return new ActivityLogError('CONFIG_INVALID', `${name}=${shown} is not allowed: ${allowed}`, {
    field: name,
  });
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

function applyDialectDefaults(database: Record<string, unknown>): void {
  const connection = database.connection as DbConnection;
  const defaults = DIALECT_DEFAULTS[connection] ?? DIALECT_DEFAULTS.sqlite;
  if (connection === 'sqlite') {
    database.filename ??= database.database ?? DEFAULT_SQLITE_FILE;
    database.database ??= database.filename;
    database.port ??= 1;
    database.user ??= '';
    return;
  }
  database.filename ??= ':none:';
  database.port ??= defaults.port;
  database.database ??= defaults.database;
  database.user ??= defaults.user;
}

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
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? readEnv();
  const { raw, fromUrl } = rawFromEnv(env);
  const overridden = new Set<string>();
  if (options.overrides !== undefined) mergeOverrides(raw, options.overrides, '', overridden);
  applyDialectDefaults(raw.database as Record<string, unknown>);

  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.join('.');
    let value: unknown = raw;
    for (const key of issue.path) value = (value as Record<PropertyKey, unknown>)?.[key as PropertyKey];
    const name = overridden.has(path)
      ? `options.${path}`
      : fromUrl.has(path)
        ? 'DATABASE_URL'
        : (ENV_NAMES[path] ?? ENV_NAMES[path.split('.').slice(0, -1).join('.')] ?? path);
    throw configError(name, value, issue.message);
  }
  const config = result.data as Config;
  deepFreeze(config);
  return config;
}

function deepFreeze(value: object): void {
  for (const item of Object.values(value)) {
    if (typeof item === 'object' && item !== null) deepFreeze(item);
  }
  Object.freeze(value);
}

/** The environment variable behind each config path (documentation and error messages). */
export const CONFIG_ENV_NAMES: Readonly<Record<string, string>> = Object.freeze({ ...ENV_NAMES });
