/** What the configuration knows about one `DB_CONNECTION` value, before any store exists. */
export interface DatabaseConnection {
  /** `DATABASE_URL` schemes that select it, as `URL.protocol` spells them (with the colon). */
  readonly schemes: readonly string[];
  /**
   * The database is a file named by `DB_DATABASE` or `sqlite:./path`, not a server; its host,
   * port and user are placeholders that nothing reads.
   */
  readonly embedded: boolean;
  readonly defaultPort: number;
  readonly defaultUser: string;
  /** The database name, or for an embedded database the file. */
  readonly defaultDatabase: string;
}

/** Every `DB_CONNECTION` value, in the order error messages list them. */
export const DB_CONNECTIONS = ['sqlite', 'mysql', 'mariadb', 'pgsql'] as const;
export type DbConnection = (typeof DB_CONNECTIONS)[number];

export const DEFAULT_SQLITE_FILE = './storage/activity-log.sqlite';

/**
 * Each connection's URL schemes and defaults. Plain data, so the
 * configuration can read URLs and apply defaults without loading a driver; the store's dialect
 * registry adds each one's capabilities and factory.
 */
export const DATABASE_CONNECTIONS: Readonly<Record<DbConnection, DatabaseConnection>> = Object.freeze({
  sqlite: Object.freeze({
    schemes: ['sqlite:'],
    embedded: true,
    // Passes the port's validation; SQLite has none.
    defaultPort: 1,
    defaultUser: '',
    defaultDatabase: DEFAULT_SQLITE_FILE,
  }),
  mysql: Object.freeze({
    schemes: ['mysql:'],
    embedded: false,
    defaultPort: 3306,
    defaultUser: 'root',
    defaultDatabase: 'activity_log',
  }),
  mariadb: Object.freeze({
    schemes: ['mariadb:'],
    embedded: false,
    defaultPort: 3306,
    defaultUser: 'root',
    defaultDatabase: 'activity_log',
  }),
  pgsql: Object.freeze({
    schemes: ['postgres:', 'postgresql:'],
    embedded: false,
    defaultPort: 5432,
    defaultUser: 'postgres',
    defaultDatabase: 'activity_log',
  }),
});

/** The connection a `DATABASE_URL` scheme selects, or undefined for a scheme none uses. */
export function connectionForScheme(scheme: string): DbConnection | undefined {
  return DB_CONNECTIONS.find((connection) => DATABASE_CONNECTIONS[connection].schemes.includes(scheme));
}
