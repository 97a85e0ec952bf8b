import { Socket } from 'node:net';

/**
 * The real services the integration suites talk to. Under `CI=true` a service that does not
 * answer fails the run; elsewhere its suites are skipped with one line saying what to start.
 */
export interface ServiceInfo {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly start: string;
}

export const MARIADB: ServiceInfo = {
  name: 'MariaDB',
  host: process.env.TEST_MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.TEST_MYSQL_PORT ?? 3306),
  start: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd',
};
export const POSTGRES: ServiceInfo = {
  name: 'PostgreSQL',
  host: process.env.TEST_PG_HOST ?? '127.0.0.1',
  port: Number(process.env.TEST_PG_PORT ?? 5432),
  start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
};
export const REDIS: ServiceInfo = {
  name: 'Redis',
  host: process.env.TEST_REDIS_HOST ?? '127.0.0.1',
  port: Number(process.env.TEST_REDIS_PORT ?? 6379),
  start: 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
};

/** Connection URLs for the test databases (database `test` on both servers). */
export const MYSQL_URL = `mysql://root@${MARIADB.host}:${MARIADB.port}/test`;
export const POSTGRES_URL = `postgres://postgres@${POSTGRES.host}:${POSTGRES.port}/test`;

/** A SQL server the integration suites run against: its name, its service and its test database. */
export interface SqlTarget {
  readonly name: string;
  readonly service: ServiceInfo;
  readonly url: string;
}

/** MariaDB, reached at {@link MYSQL_URL}. */
export const MARIADB_TARGET: SqlTarget = { name: 'MariaDB', service: MARIADB, url: MYSQL_URL };
/** PostgreSQL, reached at {@link POSTGRES_URL}. */
export const POSTGRES_TARGET: SqlTarget = { name: 'PostgreSQL', service: POSTGRES, url: POSTGRES_URL };

const reachability = new Map<string, Promise<boolean>>();

function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => done(true));
  });
}

/**
 * Whether the service answers. Under CI a missing service throws (the run fails); elsewhere it
 * prints one line and returns false so the caller can skip its suite.
 */
export async function serviceAvailable(service: ServiceInfo): Promise<boolean> {
  const key = `${service.host}:${service.port}`;
  let check = reachability.get(key);
  if (check === undefined) {
    check = canConnect(service.host, service.port);
    reachability.set(key, check);
  }
  const ok = await check;
  if (ok) return true;
  const message = `${service.name} is not reachable at ${key}; start it with: ${service.start}`;
  if (process.env.CI === 'true') throw new Error(`${message} (required under CI=true)`);
  console.warn(`skipping ${service.name} tests: ${message}`);
  return false;
}

/** A short unique suffix for per-test tables, databases and key prefixes. */
export function uniqueSuffix(): string {
  return `${process.pid.toString(36)}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`;
}
