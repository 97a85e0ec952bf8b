import { configError } from './config-error.js';
import { connectionForScheme, DATABASE_CONNECTIONS, DB_CONNECTIONS } from './database-connections.js';

const URL_FORMS = 'expected mysql://, mariadb://, postgres://, sqlite:./file or sqlite::memory:';

/**
 * Parses `DATABASE_URL`: `mysql://`, `mariadb://`, `postgres(ql)://`, `sqlite:./file`,
 * `sqlite::memory:`. A part the URL leaves out is undefined, so the connection's default applies.
 */
export function parseDatabaseUrl(url: string): Record<string, unknown> {
  const embedded = embeddedFile(url);
  if (embedded !== undefined) return embedded;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw configError('DATABASE_URL', url, URL_FORMS);
  }
  const connection = connectionForScheme(parsed.protocol);
  if (connection === undefined || DATABASE_CONNECTIONS[connection].embedded) {
    throw configError('DATABASE_URL', url, URL_FORMS);
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

/** `sqlite:./file`, `sqlite://./file` or `sqlite::memory:`: a path, not a URL. */
function embeddedFile(url: string): Record<string, unknown> | undefined {
  for (const connection of DB_CONNECTIONS) {
    if (!DATABASE_CONNECTIONS[connection].embedded) continue;
    for (const scheme of DATABASE_CONNECTIONS[connection].schemes) {
      if (!url.startsWith(scheme)) continue;
      const filename = url.slice(scheme.length).replace(/^\/\//, '');
      if (filename === '') {
        throw configError('DATABASE_URL', url, `expected ${scheme}./path/to/file or ${scheme}:memory:`);
      }
      return { connection, filename };
    }
  }
  return undefined;
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
