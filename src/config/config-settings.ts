import { z } from 'zod';
import { DATABASE_CONNECTIONS, type DatabaseConnection, DB_CONNECTIONS } from './database-connections.js';
import { DEFAULT_ERASABLE_FIELDS, ERASABLE_COLUMNS } from './default-erasable-fields.js';
import { DEFAULT_REDACT_KEYS } from './default-redact-keys.js';
import {
  commaList,
  decimalNumber,
  nonEmptyText,
  noneOrText,
  nullableText,
  oneOf,
  type SettingGroup,
  setting,
  textAsWritten,
  wholeNumber,
} from './setting.js';
import { trustProxyFromEnv, trustProxySchema } from './trust-proxy.js';

/** The longest delay a Node timer takes, in whole seconds. */
const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

const VERIFY_INTERVAL_ALLOWED = `expected off or a whole number of seconds from 1 to ${MAX_TIMER_SECONDS}`;

/** `off` and the empty string turn a periodic task off. */
const offOrText = (text: string): string | null =>
  text.trim() === '' || text.trim().toLowerCase() === 'off' ? null : text;

/** The connection's defaults; an unknown connection is reported by its own setting, so any will do. */
function connectionOf(database: SettingGroup): DatabaseConnection {
  const connection = DB_CONNECTIONS.find((name) => name === database.connection) ?? 'sqlite';
  return DATABASE_CONNECTIONS[connection];
}

/** Where the activities are stored. The defaults of port, database and user follow the connection. */
export const DATABASE_SETTINGS = {
  connection: setting({ env: 'DB_CONNECTION', schema: oneOf(DB_CONNECTIONS), default: 'sqlite' }),
  host: setting({ env: 'DB_HOST', schema: nonEmptyText, default: '127.0.0.1' }),
  port: setting({
    env: 'DB_PORT',
    schema: wholeNumber(1, 65_535),
    default: (database: SettingGroup) => connectionOf(database).defaultPort,
  }),
  database: setting({
    env: 'DB_DATABASE',
    schema: nonEmptyText,
    default: (database: SettingGroup) =>
      connectionOf(database).embedded
        ? (database.filename ?? connectionOf(database).defaultDatabase)
        : connectionOf(database).defaultDatabase,
  }),
  user: setting({
    env: 'DB_USERNAME',
    schema: z.string(),
    default: (database: SettingGroup) => connectionOf(database).defaultUser,
    fromEnv: textAsWritten,
  }),
  password: setting({ env: 'DB_PASSWORD', schema: nullableText, default: null, fromEnv: noneOrText }),
  /** SQLite file path, or `:memory:`. */
  filename: setting({
    env: 'DB_DATABASE',
    schema: nonEmptyText,
    default: (database: SettingGroup) =>
      connectionOf(database).embedded
        ? (database.database ?? connectionOf(database).defaultDatabase)
        : ':none:',
    // DB_DATABASE is read once, as `database`; an embedded database's file defaults to it.
    fromEnv: () => undefined,
  }),
  table: setting({
    env: 'ACTIVITY_LOG_TABLE',
    schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, {
      error: 'expected a table name of letters, digits and _ (at most 63)',
    }),
    default: 'activity_log',
  }),
  /**
   * Whether every INSERT that stores new rows also appends a seal to `<table>_seals` (tamper
   * evidence). Off by default for now; the columns and the seals table exist either way.
   */
  seal: setting({ env: 'ACTIVITY_LOG_SEAL', schema: oneOf(['on', 'off']), default: 'off' }),
  /** Columns a row's seal commits to by salted hash rather than by value, so they can be erased. */
  erasableFields: setting({
    env: 'ACTIVITY_LOG_ERASABLE_FIELDS',
    schema: z
      .array(
        z.enum(ERASABLE_COLUMNS, {
          error: `expected comma-separated column names among ${ERASABLE_COLUMNS.join(', ')}`,
        }),
      )
      .readonly(),
    default: DEFAULT_ERASABLE_FIELDS,
    fromEnv: commaList,
  }),
  /**
   * Whether `migrate` creates the activity table partitioned by `created_at` (PostgreSQL, MySQL,
   * MariaDB; SQLite ignores it): one partition per month or per day, or none.
   */
  partition: setting({
    env: 'ACTIVITY_LOG_PARTITION',
    schema: oneOf(['month', 'day', 'none']),
    default: 'none',
  }),
  /** Partitions kept created ahead of the current one, by `migrate`, `serve`, `work` and `partitions ensure`. */
  partitionsAhead: setting({
    env: 'ACTIVITY_LOG_PARTITIONS_AHEAD',
    schema: wholeNumber(1, 366),
    default: 3,
  }),
  poolMax: setting({ env: 'DB_POOL_MAX', schema: wholeNumber(1, 1000), default: 10 }),
  connectTimeoutMs: setting({
    env: 'DB_CONNECT_TIMEOUT_MS',
    schema: wholeNumber(100, 600_000),
    default: 5000,
  }),
  queryTimeoutMs: setting({
    env: 'DB_QUERY_TIMEOUT_MS',
    schema: wholeNumber(100, 3_600_000),
    default: 10_000,
  }),
  /**
   * TLS to MySQL/MariaDB/PostgreSQL: `disable`, `require` (encrypted, certificate not checked) or
   * `verify-full` (encrypted, certificate and host name checked against the system CAs and
   * `NODE_EXTRA_CA_CERTS`). Null leaves it to the driver (`pg` reads `PGSSLMODE`).
   */
  sslMode: setting({
    env: 'DB_SSL_MODE',
    schema: oneOf(['disable', 'require', 'verify-full']).nullable(),
    default: null,
    fromEnv: noneOrText,
  }),
};

const CLUSTER_NODE_ALLOWED = 'expected host:port entries separated by commas, each port from 1 to 65535';

/** One `host:port` of `REDIS_CLUSTER_NODES` (an IPv6 host in brackets: `[::1]:7000`). */
const clusterNode = z.string().transform((entry, context) => {
  const match = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(entry);
  const port = Number(match?.[2]);
  if (match === null || port < 1 || port > 65_535) {
    context.addIssue({ code: 'custom', message: CLUSTER_NODE_ALLOWED });
    return z.NEVER;
  }
  return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
});

/**
 * The Redis server of the queue: `url` wins over host, port and password. With `clusterNodes`
 * the queue is on a Redis Cluster instead, reached through those nodes (and `password`); `url`,
 * `host` and `port` are then not used.
 */
export const REDIS_SETTINGS = {
  clusterNodes: setting({
    env: 'REDIS_CLUSTER_NODES',
    schema: z.array(clusterNode, { error: CLUSTER_NODE_ALLOWED }).readonly(),
    default: [],
    fromEnv: commaList,
  }),
  url: setting({ env: 'REDIS_URL', schema: nullableText, default: null, fromEnv: noneOrText }),
  host: setting({ env: 'REDIS_HOST', schema: nonEmptyText, default: '127.0.0.1' }),
  port: setting({ env: 'REDIS_PORT', schema: wholeNumber(1, 65_535), default: 6379 }),
  password: setting({ env: 'REDIS_PASSWORD', schema: nullableText, default: null, fromEnv: noneOrText }),
};

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/;
const TABLES_ALLOWED = 'expected * or comma-separated table names (schema.table allowed)';
const COLUMNS_ALLOWED = 'expected comma-separated table.column entries (schema.table.column allowed)';
const SUBJECTS_ALLOWED = 'expected comma-separated table:Model entries (schema.table:Model allowed)';

/** One `table:Model` entry of `ACTIVITY_LOG_CAPTURE_SUBJECTS` (or, as an option, `{ table, model }`). */
const subjectMapping = z.preprocess(
  (entry) =>
    typeof entry === 'object' && entry !== null && 'table' in entry && 'model' in entry
      ? `${String(entry.table)}:${String(entry.model)}`
      : entry,
  z.string({ error: SUBJECTS_ALLOWED }).transform((entry, context) => {
    const colon = entry.lastIndexOf(':');
    const table = entry.slice(0, colon).trim();
    const model = entry.slice(colon + 1).trim();
    if (colon <= 0 || !TABLE_NAME.test(table) || model === '' || model.length > 191) {
      context.addIssue({ code: 'custom', message: SUBJECTS_ALLOWED });
      return z.NEVER;
    }
    return { table, model };
  }),
);

/**
 * Change capture (`activity-log capture`): the application's database whose row changes become
 * activities, which tables, what is left out, and the replication slot it reads through.
 */
export const CAPTURE_SETTINGS = {
  /** A `postgres://` or `mysql://`/`mariadb://` URL of the application's database; may differ from DATABASE_URL. */
  source: setting({
    env: 'ACTIVITY_LOG_CAPTURE_SOURCE',
    schema: z
      .string()
      .regex(/^(postgres|postgresql|mysql|mariadb):\/\//, {
        error: 'expected a postgres://, mysql:// or mariadb:// URL of the application database',
      })
      .nullable(),
    default: null,
    fromEnv: noneOrText,
  }),
  /** Tables whose changes are captured; `*` = every table of the database but the activity log's own. */
  tables: setting({
    env: 'ACTIVITY_LOG_CAPTURE_TABLES',
    schema: z
      .array(
        z.string().refine((name) => name === '*' || TABLE_NAME.test(name), { error: TABLES_ALLOWED }),
        {
          error: TABLES_ALLOWED,
        },
      )
      .readonly(),
    default: [],
    fromEnv: commaList,
  }),
  /** `table.column` entries never recorded (the redacted keys are left out as well). */
  excludeColumns: setting({
    env: 'ACTIVITY_LOG_CAPTURE_EXCLUDE_COLUMNS',
    schema: z
      .array(
        z.string().refine((name) => /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){1,2}$/.test(name), {
          error: COLUMNS_ALLOWED,
        }),
        { error: COLUMNS_ALLOWED },
      )
      .readonly(),
    default: [],
    fromEnv: commaList,
  }),
  /** `subject_type` per table (`orders:Order`); a table not listed is its own subject type. */
  subjects: setting({
    env: 'ACTIVITY_LOG_CAPTURE_SUBJECTS',
    schema: z.array(subjectMapping, { error: SUBJECTS_ALLOWED }).readonly(),
    default: [],
    fromEnv: commaList,
  }),
  /** The replication slot (PostgreSQL; also the publication's name) and the key of the saved position. */
  slot: setting({
    env: 'ACTIVITY_LOG_CAPTURE_SLOT',
    schema: z.string().regex(/^[a-z0-9_]{1,63}$/, {
      error: 'expected 1-63 lower-case letters, digits or _ (a replication slot name)',
    }),
    default: 'activity_log',
  }),
  logName: setting({
    env: 'ACTIVITY_LOG_CAPTURE_LOG_NAME',
    schema: z.string().min(1, { error: 'expected a non-empty log name' }).max(191, {
      error: 'expected at most 191 characters',
    }),
    default: 'capture',
  }),
};

/**
 * Every setting, in the shape of {@link Config}: its environment variable, what it may be and its
 * default. The order is the order in which problems are reported.
 */
export const SETTINGS = {
  database: DATABASE_SETTINGS,
  queueConnection: setting({ env: 'QUEUE_CONNECTION', schema: oneOf(['sync', 'redis']), default: 'sync' }),
  redis: REDIS_SETTINGS,
  capture: CAPTURE_SETTINGS,
  method: setting({
    env: 'ACTIVITY_LOG_METHOD',
    schema: oneOf(['sync', 'batch', 'queue']),
    default: 'batch',
  }),
  activityQueueConnection: setting({
    env: 'ACTIVITY_LOG_QUEUE_CONNECTION',
    schema: oneOf(['redis']),
    default: 'redis',
  }),
  queueName: setting({
    env: 'ACTIVITY_LOG_QUEUE_NAME',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,100}$/, { error: 'expected 1-100 letters, digits, ".", "_" or "-"' }),
    default: 'activity-logs',
  }),
  retryAfterSeconds: setting({
    env: 'ACTIVITY_LOG_RETRY_AFTER',
    schema: wholeNumber(1, 86_400),
    default: 90,
  }),
  tries: setting({ env: 'ACTIVITY_LOG_TRIES', schema: wholeNumber(1, 100), default: 3 }),
  batchSize: setting({ env: 'ACTIVITY_LOG_BATCH_SIZE', schema: wholeNumber(1, 10_000), default: 500 }),
  flushIntervalMs: setting({
    env: 'ACTIVITY_LOG_FLUSH_INTERVAL_MS',
    schema: wholeNumber(1, 60_000),
    default: 50,
  }),
  breakerFailures: setting({
    env: 'ACTIVITY_LOG_BREAKER_FAILURES',
    schema: wholeNumber(1, 1000),
    default: 5,
  }),
  breakerCooldownMs: setting({
    env: 'ACTIVITY_LOG_BREAKER_COOLDOWN_MS',
    schema: wholeNumber(100, 3_600_000),
    default: 10_000,
  }),
  /**
   * A write still unanswered after this is slow: its activities are spooled at once (nothing waits
   * in memory for a hung database), and the breaker counts it as a failure.
   */
  slowWriteMs: setting({
    env: 'ACTIVITY_LOG_SLOW_WRITE_MS',
    schema: wholeNumber(10, 3_600_000),
    default: 1000,
  }),
  spoolDir: setting({
    env: 'ACTIVITY_LOG_SPOOL_DIR',
    schema: nonEmptyText,
    default: './storage/activity-log-spool',
  }),
  spoolMaxMb: setting({
    env: 'ACTIVITY_LOG_SPOOL_MAX_MB',
    schema: wholeNumber(1, 1_048_576),
    default: 1024,
  }),
  durability: setting({
    env: 'ACTIVITY_LOG_DURABILITY',
    schema: oneOf(['memory', 'disk']),
    default: 'memory',
  }),
  retentionDays: setting({
    env: 'ACTIVITY_LOG_RETENTION_DAYS',
    schema: wholeNumber(1, 36_500),
    default: 365,
  }),
  redactKeys: setting({
    env: 'ACTIVITY_LOG_REDACT_KEYS',
    schema: z.array(z.string().min(1)).readonly(),
    default: DEFAULT_REDACT_KEYS,
    fromEnv: commaList,
  }),
  adminToken: setting({
    env: 'ACTIVITY_LOG_ADMIN_TOKEN',
    schema: nullableText,
    default: null,
    fromEnv: noneOrText,
  }),
  ingestToken: setting({
    env: 'ACTIVITY_LOG_INGEST_TOKEN',
    schema: nullableText,
    default: null,
    fromEnv: noneOrText,
  }),
  alertWebhook: setting({
    env: 'ACTIVITY_LOG_ALERT_WEBHOOK',
    schema: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).nullable(),
    default: null,
    fromEnv: noneOrText,
  }),
  alertErrorRate: setting({
    env: 'ACTIVITY_LOG_ALERT_ERROR_RATE',
    schema: decimalNumber(0, 100),
    default: 5,
  }),
  alertQueueSize: setting({
    env: 'ACTIVITY_LOG_ALERT_QUEUE_SIZE',
    schema: wholeNumber(1, 1_000_000_000),
    default: 10_000,
  }),
  /** Alert when a circuit breaker has been open this long. */
  alertBreakerOpenSeconds: setting({
    env: 'ACTIVITY_LOG_ALERT_BREAKER_OPEN_SECONDS',
    schema: wholeNumber(0, 86_400),
    default: 60,
  }),
  /** Alert when the 99th percentile lag from `log()` to the stored row exceeds this. */
  alertLagP99Ms: setting({
    env: 'ACTIVITY_LOG_ALERT_LAG_P99_MS',
    schema: wholeNumber(1, 86_400_000),
    default: 60_000,
  }),
  /** Alert when change capture is this far behind its source (seconds since the oldest change not yet durable). */
  alertCaptureLagSeconds: setting({
    env: 'ACTIVITY_LOG_ALERT_CAPTURE_LAG_S',
    schema: wholeNumber(1, 86_400 * 30),
    default: 300,
  }),
  /** Alert when the source keeps more than this many MB of WAL / binary log behind the capture slot. */
  alertCaptureRetainedMb: setting({
    env: 'ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB',
    schema: wholeNumber(1, 1024 * 1024 * 1024),
    default: 1024,
  }),
  /** A firing alert is notified again at most this often. */
  alertCooldownSeconds: setting({
    env: 'ACTIVITY_LOG_ALERT_COOLDOWN_SECONDS',
    schema: wholeNumber(0, 86_400),
    default: 300,
  }),
  /** Path of the Ed25519 private key (PEM) that signs checkpoints; `activity-log keygen` writes one. */
  signingKeyPath: setting({
    env: 'ACTIVITY_LOG_SIGNING_KEY',
    schema: z.string().min(1, { error: 'expected the path of an Ed25519 private key (PEM)' }).nullable(),
    default: null,
    fromEnv: noneOrText,
  }),
  /** Directory that receives one JSON file per checkpoint, never overwritten. */
  checkpointDir: setting({
    env: 'ACTIVITY_LOG_CHECKPOINT_DIR',
    schema: z.string().min(1, { error: 'expected a directory path' }).nullable(),
    default: null,
    fromEnv: noneOrText,
  }),
  /** URL each checkpoint is POSTed to as JSON. */
  checkpointWebhook: setting({
    env: 'ACTIVITY_LOG_CHECKPOINT_WEBHOOK',
    schema: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).nullable(),
    default: null,
    fromEnv: noneOrText,
  }),
  /**
   * How often `serve` publishes a checkpoint when the chain head moved. At most what a Node timer
   * can wait (2^31 - 1 ms, about 24.8 days).
   */
  checkpointIntervalSeconds: setting({
    env: 'ACTIVITY_LOG_CHECKPOINT_INTERVAL_S',
    schema: wholeNumber(1, MAX_TIMER_SECONDS),
    default: 3600,
  }),
  /**
   * How often `serve` verifies the seal chain (as `activity-log verify` does, against
   * `ACTIVITY_LOG_CHECKPOINT_DIR` when set); null (`off`, the default) never.
   */
  verifyIntervalSeconds: setting({
    env: 'ACTIVITY_LOG_VERIFY_INTERVAL_S',
    schema: z.coerce
      .number({ error: VERIFY_INTERVAL_ALLOWED })
      .int({ error: VERIFY_INTERVAL_ALLOWED })
      .min(1, { error: VERIFY_INTERVAL_ALLOWED })
      .max(MAX_TIMER_SECONDS, { error: VERIFY_INTERVAL_ALLOWED })
      .nullable(),
    default: null,
    fromEnv: offOrText,
  }),
  host: setting({ env: 'HOST', schema: nonEmptyText, default: '127.0.0.1' }),
  port: setting({ env: 'PORT', schema: wholeNumber(0, 65_535), default: 3000 }),
  /**
   * Which proxies `serve` believes about the client address (`X-Forwarded-For`) and scheme:
   * false (none), true (any), a number of hops, or addresses and CIDR ranges.
   */
  trustProxy: setting({
    env: 'ACTIVITY_LOG_TRUST_PROXY',
    schema: trustProxySchema,
    default: false,
    fromEnv: trustProxyFromEnv,
  }),
};
