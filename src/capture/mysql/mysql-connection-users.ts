/** Connection ids looked up, kept per server run (ids are never reused until the server restarts). */
const MAX_KNOWN = 10_000;

type Query = (sql: string, values?: unknown[]) => Promise<Record<string, unknown>[]>;

/**
 * The database user of a connection id, from `information_schema.PROCESSLIST`, for untagged
 * transactions whose binary log events carry the id (MySQL's `BEGIN`, MariaDB 11.5+'s GTID event).
 * Sound only within one server run, where an id names one connection: a transaction committed
 * before the server's last start is never looked up, and a connection already closed is unknown.
 * Other users' connections are listed only with the `PROCESS` privilege.
 *
 * @example
 * const users = new MysqlConnectionUsers((sql, values) => side.query(sql, values).then(([rows]) => rows));
 * await users.userOf(1234, commitTime); // 'app' or undefined
 */
export class MysqlConnectionUsers {
  readonly #query: Query;
  readonly #known = new Map<number, string | null>();
  #serverStartMs: number | null = null;

  constructor(query: Query) {
    this.#query = query;
  }

  async userOf(connectionId: number, committedAt: Date): Promise<string | undefined> {
    const known = this.#known.get(connectionId);
    if (known !== undefined) return known ?? undefined;
    this.#serverStartMs ??= await this.#serverStart();
    if (committedAt.getTime() < this.#serverStartMs) return undefined;
    const rows = await this.#query('SELECT USER AS user FROM information_schema.PROCESSLIST WHERE ID = ?', [
      connectionId,
    ]);
    const user = typeof rows[0]?.user === 'string' ? (rows[0].user as string) : null;
    // A closed connection is not remembered as unknown: an id seen again later is still the same one.
    if (user === null) return undefined;
    if (this.#known.size >= MAX_KNOWN) this.#known.delete(this.#known.keys().next().value!);
    this.#known.set(connectionId, user);
    return user;
  }

  async #serverStart(): Promise<number> {
    const rows = await this.#query(
      "SELECT VARIABLE_VALUE AS uptime FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'",
    );
    // A second of slack: the binary log's timestamps are whole seconds.
    return Date.now() - (Number(rows[0]?.uptime ?? 0) + 1) * 1000;
  }
}
