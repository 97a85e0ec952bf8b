import { ActivityLogError } from '../../core/errors.js';
import { CAPTURE_CONTEXT_TABLE } from './capture-context-table.js';

/** Schemas of the server itself: never captured, not even under `*`. */
const SYSTEM_SCHEMAS: readonly string[] = ['mysql', 'information_schema', 'performance_schema', 'sys'];

/** The library's own tables (`activity_log`, `activity_log_*`) are left out of `*` and `schema.*`. */
function isOwnTable(table: string): boolean {
  return table === 'activity_log' || table.startsWith('activity_log_');
}

/** Which tables' row changes a reader hands out, and the filter that spares the stream the rest. */
export interface BinlogTableFilter {
  includes(schema: string, table: string): boolean;
  /** For the binlog client: row and table-map events of tables it leaves out are not decoded. */
  readonly streamFilter: {
    readonly includeSchema?: Record<string, string[] | true>;
    readonly excludeSchema: Record<string, string[] | true>;
  };
}

interface TableName {
  readonly schema: string | undefined;
  readonly table: string;
}

function parseName(entry: string, defaultSchema: string | undefined, field: string): TableName {
  const parts = entry.split('.');
  const valid = parts.length <= 2 && parts.every((part) => part !== '');
  if (!valid) {
    throw new ActivityLogError(
      'CONFIG_INVALID',
      `${field}: "${entry}" is not a table name: write table, schema.table, schema.* or *`,
      { field },
    );
  }
  return parts.length === 2
    ? { schema: parts[0], table: parts[1]! }
    : { schema: defaultSchema, table: parts[0]! };
}

/**
 * Builds the table filter from a list of `table`, `schema.table`, `schema.*`, `*` (every table of
 * the URL's database but the library's own) or `*.*` (every schema but the server's) and a list of
 * tables to leave out. A name without a schema means the database of the source URL, or that
 * table in any schema when the URL names none.
 *
 * @example
 * binlogTableFilter(['*'], ['shop.sessions'], 'shop').includes('shop', 'orders'); // true
 */
export function binlogTableFilter(
  tables: readonly string[],
  exclude: readonly string[] = [],
  defaultSchema?: string,
): BinlogTableFilter {
  const included = tables.map((entry) => parseName(entry.trim(), defaultSchema, 'tables'));
  const excluded = exclude.map((entry) => parseName(entry.trim(), defaultSchema, 'exclude'));
  if (included.length === 0) {
    throw new ActivityLogError('CONFIG_INVALID', 'tables: name at least one table, or * for all', {
      field: 'tables',
    });
  }
  const matches = (name: TableName, schema: string, table: string): boolean =>
    (name.schema === undefined || name.schema === '*' || name.schema === schema) &&
    (name.table === table || (name.table === '*' && !isOwnTable(table)));
  const everything = included.some((name) => name.table === '*' && (name.schema ?? '*') === '*');

  const excludeSchema: Record<string, string[] | true> = {};
  for (const schema of SYSTEM_SCHEMAS) excludeSchema[schema] = true;
  let includeSchema: Record<string, string[] | true> | undefined;
  if (!everything && included.every((name) => name.schema !== undefined)) {
    includeSchema = {};
    for (const { schema, table } of included) {
      const listed = includeSchema[schema!];
      if (table === '*' || listed === true) includeSchema[schema!] = true;
      else includeSchema[schema!] = [...(listed ?? [CAPTURE_CONTEXT_TABLE]), table];
    }
    if (defaultSchema !== undefined && includeSchema[defaultSchema] === undefined) {
      includeSchema[defaultSchema] = [CAPTURE_CONTEXT_TABLE];
    }
  }

  return {
    includes(schema, table) {
      if (SYSTEM_SCHEMAS.includes(schema) || table === CAPTURE_CONTEXT_TABLE) return false;
      if (excluded.some((name) => matches(name, schema, table))) return false;
      return included.some((name) => matches(name, schema, table));
    },
    streamFilter: includeSchema === undefined ? { excludeSchema } : { includeSchema, excludeSchema },
  };
}
