import type { Connection } from 'mysql2/promise';

/** What the binlog does not say about a table and the reader reads from information_schema. */
export interface TableKeys {
  /** Primary key columns in key order; empty for a table without one. */
  readonly primaryKey: readonly string[];
  /** MariaDB JSON columns (LONGTEXT with a JSON_VALID check), whose text is parsed. */
  readonly jsonColumns: ReadonlySet<string>;
}

const JSON_CHECK = /^json_valid\(`((?:[^`]|``)+)`\)$/i;

/**
 * Primary keys (and, on MariaDB, JSON columns) per `schema.table`, read once and kept until the
 * stream shows DDL, when {@link TableKeyCache.forgetAll} drops them.
 */
export class TableKeyCache {
  readonly #connection: Connection;
  readonly #mariadb: boolean;
  readonly #cache = new Map<string, Promise<TableKeys>>();

  constructor(connection: Connection, mariadb: boolean) {
    this.#connection = connection;
    this.#mariadb = mariadb;
  }

  keysOf(schema: string, table: string): Promise<TableKeys> {
    const key = `${schema}.${table}`;
    let keys = this.#cache.get(key);
    if (keys === undefined) {
      keys = this.#read(schema, table);
      keys.catch(() => this.#cache.delete(key));
      this.#cache.set(key, keys);
    }
    return keys;
  }

  forgetAll(): void {
    this.#cache.clear();
  }

  async #read(schema: string, table: string): Promise<TableKeys> {
    const [keyRows] = await this.#connection.query(
      `SELECT COLUMN_NAME AS name FROM information_schema.KEY_COLUMN_USAGE
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'
        ORDER BY ORDINAL_POSITION`,
      [schema, table],
    );
    const primaryKey = (keyRows as { name: string }[]).map((row) => row.name);
    const jsonColumns = new Set<string>();
    if (this.#mariadb) {
      const [checks] = await this.#connection.query(
        `SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS
          WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`,
        [schema, table],
      );
      for (const { clause } of checks as { clause: string }[]) {
        const match = JSON_CHECK.exec(clause.trim());
        if (match !== null) jsonColumns.add(match[1]!.replaceAll('``', '`'));
      }
    }
    return { primaryKey, jsonColumns };
  }
}
