import type { ConnectionOptions } from 'mysql2';
import { ActivityLogError } from '../../core/errors.js';

const SOURCE_SETTING = 'ACTIVITY_LOG_CAPTURE_SOURCE';
/** The URL may hold a password, so the line never repeats it. */
function sourceError(allowed: string): ActivityLogError {
  return new ActivityLogError('CONFIG_INVALID', `${SOURCE_SETTING}=(hidden) is not allowed: ${allowed}`, {
    field: SOURCE_SETTING,
  });
}

const SSL_MODES: readonly string[] = ['disable', 'require', 'verify-full'];
const SOURCE_FORMS = 'expected mysql://user:password@host:port/database or mariadb://…';

/**
 * mysql2 connection options for a `mysql://` or `mariadb://` capture source URL. DATE and
 * DATETIME are read as the text the database holds (they carry no time zone, so none is made
 * up); TIMESTAMP, an instant, comes as a `Date`; BIGINT and DECIMAL keep every digit.
 */
export function binlogConnectionOptions(url: string): ConnectionOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw sourceError(SOURCE_FORMS);
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') {
    throw sourceError(SOURCE_FORMS);
  }
  const decoded = (part: string, value: string): string => {
    try {
      return decodeURIComponent(value);
    } catch {
      throw sourceError(`the ${part} is not URL-encoded (write % as %25)`);
    }
  };
  const database = decoded('database name', parsed.pathname.replace(/^\//, ''));
  for (const [name, value] of parsed.searchParams) {
    if (name !== 'sslmode' || !SSL_MODES.includes(value)) {
      throw sourceError(`the only parameter is sslmode=${SSL_MODES.join('|')}`);
    }
  }
  const sslMode = parsed.searchParams.get('sslmode');
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: parsed.port === '' ? 3306 : Number(parsed.port),
    user: parsed.username === '' ? 'root' : decoded('user name', parsed.username),
    ...(parsed.password === '' ? {} : { password: decoded('password', parsed.password) }),
    ...(database === '' ? {} : { database }),
    charset: 'utf8mb4_unicode_ci',
    dateStrings: ['DATE', 'DATETIME'],
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: true,
    ...(sslMode === null || sslMode === 'disable'
      ? {}
      : { ssl: { rejectUnauthorized: sslMode === 'verify-full' } }),
  };
}
