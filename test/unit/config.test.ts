import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_ENV_NAMES, loadConfig, readEnv } from '../../src/config/config.js';
import { SETTINGS } from '../../src/config/config-settings.js';
import { DB_CONNECTIONS } from '../../src/config/database-connections.js';
import { DEFAULT_ERASABLE_FIELDS, ERASABLE_COLUMNS } from '../../src/config/default-erasable-fields.js';
import { ACTIVITY_FIELDS } from '../../src/core/activity-fields.js';
import { isActivityLogError } from '../../src/core/errors.js';

function configError(env: Record<string, string>, overrides?: object): string {
  try {
    loadConfig({ env, ...(overrides === undefined ? {} : { overrides }) });
  } catch (error) {
    if (isActivityLogError(error, 'CONFIG_INVALID')) return error.message;
    throw error;
  }
  throw new Error('expected CONFIG_INVALID');
}

describe('loadConfig', () => {
  it('applies the documented defaults: embedded SQLite, batch method, no Redis', () => {
    const config = loadConfig({ env: {} });
    expect(config.database).toMatchObject({
      connection: 'sqlite',
      filename: './storage/activity-log.sqlite',
      table: 'activity_log',
      poolMax: 10,
      connectTimeoutMs: 5000,
      queryTimeoutMs: 10_000,
    });
    expect(config).toMatchObject({
      method: 'batch',
      queueConnection: 'sync',
      queueName: 'activity-logs',
      retryAfterSeconds: 90,
      tries: 3,
      batchSize: 500,
      flushIntervalMs: 50,
      breakerFailures: 5,
      breakerCooldownMs: 10_000,
      spoolDir: './storage/activity-log-spool',
      spoolMaxMb: 1024,
      durability: 'memory',
      retentionDays: 365,
      adminToken: null,
      ingestToken: null,
      alertErrorRate: 5,
      alertQueueSize: 10_000,
      host: '127.0.0.1',
      port: 3000,
    });
    expect(config.redis).toEqual({
      clusterNodes: [],
      url: null,
      host: '127.0.0.1',
      port: 6379,
      password: null,
    });
  });

  it('is frozen all the way down', () => {
    const config = loadConfig({ env: {} });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.database)).toBe(true);
    expect(Object.isFrozen(config.redactKeys)).toBe(true);
  });

  it('reads DB_* with dialect defaults, and DATABASE_URL wins over them', () => {
    const mysql = loadConfig({ env: { DB_CONNECTION: 'mariadb', DB_HOST: 'db', DB_PASSWORD: 'null' } });
    expect(mysql.database).toMatchObject({
      connection: 'mariadb',
      host: 'db',
      port: 3306,
      user: 'root',
      password: null,
    });
    const url = loadConfig({
      env: { DB_CONNECTION: 'mysql', DATABASE_URL: 'postgres://app:s%40cret@pg.local:6543/audit' },
    });
    expect(url.database).toMatchObject({
      connection: 'pgsql',
      host: 'pg.local',
      port: 6543,
      user: 'app',
      password: 's@cret',
      database: 'audit',
    });
    expect(loadConfig({ env: { DATABASE_URL: 'sqlite::memory:' } }).database.filename).toBe(':memory:');
    expect(loadConfig({ env: { DATABASE_URL: 'sqlite:./data/log.db' } }).database.filename).toBe(
      './data/log.db',
    );
  });

  it('reads TLS, IPv6 hosts and encoded credentials from DATABASE_URL, and refuses what it cannot read', () => {
    const tls = (url: string) => loadConfig({ env: { DATABASE_URL: url } }).database;
    expect(tls('postgres://app@db/audit?sslmode=verify-full').sslMode).toBe('verify-full');
    expect(tls('mysql://app@db/audit?ssl-mode=REQUIRED').sslMode).toBe('require');
    expect(tls('mysql://app@db/audit?ssl=false').sslMode).toBe('disable');
    expect(tls('mysql://app@db/audit').sslMode).toBeNull();
    expect(loadConfig({ env: { DB_CONNECTION: 'pgsql', DB_SSL_MODE: 'require' } }).database.sslMode).toBe(
      'require',
    );
    expect(tls('postgres://app@[::1]:5433/audit')).toMatchObject({ host: '::1', port: 5433 });
    expect(configError({ DATABASE_URL: 'mysql://app:50%off@db/x' })).toBe(
      'DATABASE_URL=(hidden) is not allowed: the password is not URL-encoded (write % as %25)',
    );
    expect(configError({ DATABASE_URL: 'mysql://app@db/x?charset=utf8' })).toBe(
      'DATABASE_URL=(hidden) is not allowed: unknown parameter "charset": only sslmode (disable, require, verify-full) is read',
    );
    expect(configError({ DATABASE_URL: 'postgres://app@db/x?sslmode=prefer' })).toBe(
      'DATABASE_URL=(hidden) is not allowed: expected one of disable, require, verify-full',
    );
    expect(configError({ DB_SSL_MODE: 'on' })).toBe(
      'DB_SSL_MODE="on" is not allowed: expected one of disable, require, verify-full',
    );
  });

  it('reads ACTIVITY_LOG_TRUST_PROXY as a flag, a hop count or addresses', () => {
    const trust = (value?: string) =>
      loadConfig({ env: value === undefined ? {} : { ACTIVITY_LOG_TRUST_PROXY: value } }).trustProxy;
    expect(trust()).toBe(false);
    expect(trust('false')).toBe(false);
    expect(trust('true')).toBe(true);
    expect(trust('2')).toBe(2);
    expect(trust('10.0.0.1, 10.1.0.0/16,fd00::/8,loopback')).toEqual([
      '10.0.0.1',
      '10.1.0.0/16',
      'fd00::/8',
      'loopback',
    ]);
    for (const bad of ['yes', '10.0.0.0/33', '10.0.0.1/8/1', '999']) {
      expect(configError({ ACTIVITY_LOG_TRUST_PROXY: bad }), bad).toMatch(
        /^ACTIVITY_LOG_TRUST_PROXY=.* is not allowed: expected true, false, a number of hops \(1-100\), or comma-separated addresses\/CIDR ranges$/,
      );
    }
  });

  it('accepts only http(s) alert webhooks and hides secrets named in options', () => {
    expect(configError({ ACTIVITY_LOG_ALERT_WEBHOOK: 'file:///etc/passwd' })).toBe(
      'ACTIVITY_LOG_ALERT_WEBHOOK=(hidden) is not allowed: expected an http(s) URL',
    );
    expect(configError({}, { alertWebhook: 'hooks.example/services/T/B/secret' })).toBe(
      'options.alertWebhook=(hidden) is not allowed: expected an http(s) URL',
    );
  });

  it('reads the checkpoint settings: key path, directory, webhook and a whole-second interval', () => {
    expect(loadConfig({ env: {} })).toMatchObject({
      signingKeyPath: null,
      checkpointDir: null,
      checkpointWebhook: null,
      checkpointIntervalSeconds: 3600,
    });
    const config = loadConfig({
      env: {
        ACTIVITY_LOG_SIGNING_KEY: '/etc/activity-log/signing-key.pem',
        ACTIVITY_LOG_CHECKPOINT_DIR: '/var/lib/activity-log/checkpoints',
        ACTIVITY_LOG_CHECKPOINT_WEBHOOK: 'https://checkpoints.example/in',
        ACTIVITY_LOG_CHECKPOINT_INTERVAL_S: '600',
      },
    });
    expect(config).toMatchObject({
      signingKeyPath: '/etc/activity-log/signing-key.pem',
      checkpointDir: '/var/lib/activity-log/checkpoints',
      checkpointWebhook: 'https://checkpoints.example/in',
      checkpointIntervalSeconds: 600,
    });
    expect(loadConfig({ env: { ACTIVITY_LOG_SIGNING_KEY: 'null' } }).signingKeyPath).toBeNull();
    expect(configError({ ACTIVITY_LOG_CHECKPOINT_WEBHOOK: 'ftp://checkpoints.example/in' })).toBe(
      'ACTIVITY_LOG_CHECKPOINT_WEBHOOK=(hidden) is not allowed: expected an http(s) URL',
    );
    for (const bad of ['0', '1.5', 'hourly', '9999999999']) {
      expect(configError({ ACTIVITY_LOG_CHECKPOINT_INTERVAL_S: bad }), bad).toBe(
        `ACTIVITY_LOG_CHECKPOINT_INTERVAL_S="${bad}" is not allowed: expected a whole number from 1 to 2147483`,
      );
    }
  });

  it('leaves the scheduled verify off unless ACTIVITY_LOG_VERIFY_INTERVAL_S sets whole seconds', () => {
    expect(loadConfig({ env: {} }).verifyIntervalSeconds).toBeNull();
    for (const off of ['off', 'OFF', '']) {
      expect(
        loadConfig({ env: { ACTIVITY_LOG_VERIFY_INTERVAL_S: off } }).verifyIntervalSeconds,
        off,
      ).toBeNull();
    }
    expect(loadConfig({ env: { ACTIVITY_LOG_VERIFY_INTERVAL_S: '900' } }).verifyIntervalSeconds).toBe(900);
    for (const bad of ['0', '-5', '1.5', 'hourly', '9999999999']) {
      expect(configError({ ACTIVITY_LOG_VERIFY_INTERVAL_S: bad }), bad).toBe(
        `ACTIVITY_LOG_VERIFY_INTERVAL_S="${bad}" is not allowed: expected off or a whole number of seconds from 1 to 2147483`,
      );
    }
  });

  it('lets options override the environment', () => {
    const config = loadConfig({
      env: { ACTIVITY_LOG_METHOD: 'batch' },
      overrides: { method: 'sync', database: { poolMax: 3 } },
    });
    expect(config.method).toBe('sync');
    expect(config.database.poolMax).toBe(3);
    expect(config.database.connection).toBe('sqlite');
  });

  it.each([
    [{ DB_POOL_MAX: 'abc' }, 'DB_POOL_MAX="abc" is not allowed: expected a whole number from 1 to 1000'],
    [
      { ACTIVITY_LOG_METHOD: 'fast' },
      'ACTIVITY_LOG_METHOD="fast" is not allowed: expected one of sync, batch, queue',
    ],
    [
      { DB_CONNECTION: 'oracle' },
      'DB_CONNECTION="oracle" is not allowed: expected one of sqlite, mysql, mariadb, pgsql',
    ],
    [{ ACTIVITY_LOG_BATCH_SIZE: '0' }, 'ACTIVITY_LOG_BATCH_SIZE="0" is not allowed'],
    [{ PORT: '70000' }, 'PORT="70000" is not allowed'],
    [{ ACTIVITY_LOG_TABLE: 'drop table;' }, 'ACTIVITY_LOG_TABLE="drop table;" is not allowed'],
    [{ ACTIVITY_LOG_ALERT_WEBHOOK: 'not a url' }, 'ACTIVITY_LOG_ALERT_WEBHOOK=(hidden) is not allowed'],
    [{ DATABASE_URL: 'oracle://x' }, 'DATABASE_URL=(hidden) is not allowed'],
  ])('stops on %o with one line naming the variable, value and what is allowed', (env, expected) => {
    const message = configError(env);
    expect(message).toContain(expected);
    expect(message).not.toContain('\n');
  });

  it('names the option path when an override is bad', () => {
    expect(configError({}, { database: { poolMax: 0 } })).toContain(
      'options.database.poolMax=0 is not allowed',
    );
  });

  it('reads .env from the working directory; real variables win', () => {
    const dir = mkdtempSync(join(tmpdir(), 'activity-log-env-'));
    writeFileSync(join(dir, '.env'), 'ACTIVITY_LOG_METHOD=sync\nACTIVITY_LOG_BATCH_SIZE=7\n# comment\n');
    const env = readEnv({ ACTIVITY_LOG_BATCH_SIZE: '9' }, dir);
    const config = loadConfig({ env });
    expect(config.method).toBe('sync');
    expect(config.batchSize).toBe(9);
  });
});

describe('REDIS_CLUSTER_NODES', () => {
  it('is an empty list by default and reads host:port entries, IPv6 hosts in brackets', () => {
    expect(loadConfig({ env: {} }).redis.clusterNodes).toEqual([]);
    expect(loadConfig({ env: { REDIS_CLUSTER_NODES: '' } }).redis.clusterNodes).toEqual([]);
    expect(
      loadConfig({ env: { REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-2.internal:7001,[::1]:7002' } }).redis
        .clusterNodes,
    ).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: 'redis-2.internal', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
  });

  it.each(['10.0.0.1', '10.0.0.1:0', '10.0.0.1:65536', 'host:port', ':7000', '10.0.0.1:7000:1'])(
    'refuses %s with one line naming the variable and the entry',
    (entry) => {
      expect(configError({ REDIS_CLUSTER_NODES: `127.0.0.1:7000,${entry}` })).toBe(
        `REDIS_CLUSTER_NODES=${JSON.stringify(entry)} is not allowed: expected host:port entries separated by commas, each port from 1 to 65535`,
      );
    },
  );
});

describe('sealing settings', () => {
  it('seal nothing by default and commit the default erasable fields', () => {
    const { database } = loadConfig({ env: {} });
    expect(database.seal).toBe('off');
    expect(database.erasableFields).toEqual(DEFAULT_ERASABLE_FIELDS);
  });

  it('read ACTIVITY_LOG_SEAL and a comma list of erasable columns', () => {
    const { database } = loadConfig({
      env: { ACTIVITY_LOG_SEAL: 'on', ACTIVITY_LOG_ERASABLE_FIELDS: ' ip_address , url,' },
    });
    expect(database).toMatchObject({ seal: 'on', erasableFields: ['ip_address', 'url'] });
    expect(loadConfig({ env: { ACTIVITY_LOG_ERASABLE_FIELDS: '' } }).database.erasableFields).toEqual([]);
  });

  it('refuse a column that cannot be erased, naming the variable and the allowed columns', () => {
    expect(() => loadConfig({ env: { ACTIVITY_LOG_ERASABLE_FIELDS: 'ip_address,description' } })).toThrow(
      'ACTIVITY_LOG_ERASABLE_FIELDS="description" is not allowed: expected comma-separated column names among subject_type, subject_id, event, causer_type, causer_id, properties, batch_uuid, ip_address, url, method, user_agent',
    );
    expect(() => loadConfig({ env: { ACTIVITY_LOG_SEAL: 'yes' } })).toThrow(
      'ACTIVITY_LOG_SEAL="yes" is not allowed: expected one of on, off',
    );
  });

  it('read ACTIVITY_LOG_PARTITION (default none) and ACTIVITY_LOG_PARTITIONS_AHEAD (default 3), refusing anything else', () => {
    expect(loadConfig({ env: {} }).database).toMatchObject({ partition: 'none', partitionsAhead: 3 });
    expect(
      loadConfig({ env: { ACTIVITY_LOG_PARTITION: 'day', ACTIVITY_LOG_PARTITIONS_AHEAD: '14' } }).database,
    ).toMatchObject({ partition: 'day', partitionsAhead: 14 });
    expect(() => loadConfig({ env: { ACTIVITY_LOG_PARTITION: 'week' } })).toThrow(
      'ACTIVITY_LOG_PARTITION="week" is not allowed: expected one of month, day, none',
    );
    expect(() => loadConfig({ env: { ACTIVITY_LOG_PARTITIONS_AHEAD: '0' } })).toThrow(
      /^ACTIVITY_LOG_PARTITIONS_AHEAD="0" is not allowed: /,
    );
  });

  it('know the erasable columns as the field table does: every nullable column', () => {
    expect([...ERASABLE_COLUMNS].sort()).toEqual(
      ACTIVITY_FIELDS.filter((field) => field.nullable)
        .map((field) => field.column)
        .sort(),
    );
  });
});

describe('the settings table', () => {
  it('documents every variable in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const undocumented = [...new Set(Object.values(CONFIG_ENV_NAMES))].filter(
      (name) => !readme.includes(`\`${name}\``),
    );
    expect(undocumented).toEqual([]);
  });

  it('names the variable of every path, nested groups included', () => {
    expect(CONFIG_ENV_NAMES).toMatchObject({
      'database.poolMax': 'DB_POOL_MAX',
      'database.filename': 'DB_DATABASE',
      'redis.port': 'REDIS_PORT',
      retryAfterSeconds: 'ACTIVITY_LOG_RETRY_AFTER',
      port: 'PORT',
    });
    expect(Object.keys(CONFIG_ENV_NAMES)).toContain('trustProxy');
  });

  it.each(DB_CONNECTIONS)('gives DB_CONNECTION=%s defaults that pass its own checks', (connection) => {
    const { database } = loadConfig({ env: { DB_CONNECTION: connection } });
    expect(database.connection).toBe(connection);
    expect(database.port).toBeGreaterThan(0);
  });

  it('checks a bad value the way the environment reader does, wherever it comes from', () => {
    const batchSize = SETTINGS.batchSize.schema.safeParse(0);
    expect(batchSize.success).toBe(false);
    expect(batchSize.error?.issues[0]?.message).toBe('expected a whole number from 1 to 10000');
    expect(configError({ ACTIVITY_LOG_BATCH_SIZE: '0' })).toBe(
      'ACTIVITY_LOG_BATCH_SIZE="0" is not allowed: expected a whole number from 1 to 10000',
    );
  });
});
