import { describe, expect, it } from 'vitest';
import { ActivityLogError, type ErrorCode } from '../../src/core/errors.js';
import { mapMysqlError } from '../../src/store/mysql/mysql-errors.js';
import { mapPostgresError } from '../../src/store/postgres/postgres-errors.js';
import { mapSqliteError } from '../../src/store/sqlite/sqlite-errors.js';

/** A driver error as the drivers build them: a plain Error with extra fields. */
function driverError(message: string, fields: { code?: string; errno?: number } = {}): Error {
  return Object.assign(new Error(message), fields);
}

type Case = readonly [label: string, error: Error, expected: ErrorCode];

function checkCases(map: (error: unknown) => ActivityLogError, cases: readonly Case[]): void {
  it.each(cases)('maps %s', (_label, error, expected) => {
    const mapped = map(error);
    expect(mapped).toBeInstanceOf(ActivityLogError);
    expect(mapped.code).toBe(expected);
    expect(mapped.cause).toBe(error);
  });
}

describe('mapMysqlError', () => {
  const map = (error: unknown) => mapMysqlError(error, 'MySQL at db:3306/app');

  checkCases(map, [
    [
      'ECONNREFUSED',
      driverError('connect ECONNREFUSED 127.0.0.1:1', { code: 'ECONNREFUSED' }),
      'STORE_CONNECTION_REFUSED',
    ],
    ['ENOTFOUND', driverError('getaddrinfo ENOTFOUND db', { code: 'ENOTFOUND' }), 'STORE_CONNECTION_REFUSED'],
    [
      'PROTOCOL_CONNECTION_LOST',
      driverError('Connection lost', { code: 'PROTOCOL_CONNECTION_LOST' }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      'ER_ACCESS_DENIED_ERROR',
      driverError('Access denied', { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045 }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      'ER_BAD_DB_ERROR',
      driverError("Unknown database 'app'", { code: 'ER_BAD_DB_ERROR', errno: 1049 }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      'ER_CON_COUNT_ERROR',
      driverError('Too many connections', { code: 'ER_CON_COUNT_ERROR', errno: 1040 }),
      'STORE_CONNECTION_REFUSED',
    ],
    ['connect ETIMEDOUT', driverError('connect ETIMEDOUT', { code: 'ETIMEDOUT' }), 'STORE_TIMEOUT'],
    [
      'a client query timeout',
      driverError('Query inactivity timeout', { code: 'PROTOCOL_SEQUENCE_TIMEOUT' }),
      'STORE_TIMEOUT',
    ],
    [
      'MariaDB max_statement_time (1969)',
      driverError('Query execution was interrupted (max_statement_time exceeded)', { errno: 1969 }),
      'STORE_TIMEOUT',
    ],
    [
      'MySQL max_execution_time (3024)',
      driverError('maximum statement execution time exceeded', { code: 'ER_QUERY_TIMEOUT', errno: 3024 }),
      'STORE_TIMEOUT',
    ],
    ['a full mysql2 queue', driverError('Queue limit reached.'), 'STORE_POOL_EXHAUSTED'],
    [
      'ER_LOCK_WAIT_TIMEOUT',
      driverError('Lock wait timeout exceeded', { code: 'ER_LOCK_WAIT_TIMEOUT', errno: 1205 }),
      'STORE_LOCK_TIMEOUT',
    ],
    [
      'ER_LOCK_DEADLOCK',
      driverError('Deadlock found', { code: 'ER_LOCK_DEADLOCK', errno: 1213 }),
      'STORE_LOCK_TIMEOUT',
    ],
    [
      'ER_DATA_TOO_LONG',
      driverError("Data too long for column 'subject_type'", { code: 'ER_DATA_TOO_LONG', errno: 1406 }),
      'STORE_DATA_TOO_LONG',
    ],
    [
      'ER_NET_PACKET_TOO_LARGE',
      driverError('Got a packet bigger than max_allowed_packet', {
        code: 'ER_NET_PACKET_TOO_LARGE',
        errno: 1153,
      }),
      'STORE_DATA_TOO_LONG',
    ],
    [
      'ER_NO_SUCH_TABLE',
      driverError("Table 'app.activity_log' doesn't exist", { code: 'ER_NO_SUCH_TABLE', errno: 1146 }),
      'STORE_SCHEMA_MISSING',
    ],
    [
      'ER_BAD_FIELD_ERROR',
      driverError("Unknown column 'method'", { code: 'ER_BAD_FIELD_ERROR', errno: 1054 }),
      'STORE_SCHEMA_MISSING',
    ],
    [
      'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD',
      driverError('Incorrect string value', { code: 'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD', errno: 1366 }),
      'STORE_DATA_INVALID',
    ],
    [
      'a MariaDB CHECK failure (4025)',
      driverError('CONSTRAINT `activity_log.properties` failed', { errno: 4025 }),
      'STORE_DATA_INVALID',
    ],
    [
      "a trigger's SIGNAL (1644)",
      driverError('refused by the audit trigger', { errno: 1644 }),
      'STORE_DATA_INVALID',
    ],
    [
      'an unknown server error',
      driverError('Something odd', { code: 'ER_SOMETHING', errno: 1105 }),
      'STORE_FAILED',
    ],
    ['a closed pool', driverError('Pool is closed.'), 'STORE_CLOSED'],
  ]);

  it('passes an already coded error through unchanged', () => {
    const coded = new ActivityLogError('STORE_POOL_EXHAUSTED', 'busy');
    expect(map(coded)).toBe(coded);
  });

  it('names the server and says what to do, without the password', () => {
    const mapped = map(driverError('connect ECONNREFUSED 127.0.0.1:3306', { code: 'ECONNREFUSED' }));
    expect(mapped.message).toContain('MySQL at db:3306/app');
    expect(mapped.message).toContain('ECONNREFUSED');
    expect(mapped.message).toContain('DATABASE_URL');
  });

  it('keeps only the start of the failed statement, not megabytes of activity data', () => {
    const error = Object.assign(driverError('Data too long', { errno: 1406 }), {
      sql: `INSERT INTO activity_log VALUES ${"('x'), ".repeat(100_000)}`,
    });
    const mapped = map(error);
    expect((mapped.cause as { sql: string }).sql.length).toBeLessThan(300);
  });

  it('tells to run migrate when the table is missing', () => {
    const mapped = map(driverError("Table 'app.activity_log' doesn't exist", { errno: 1146 }));
    expect(mapped.message).toContain('activity-log migrate');
  });
});

describe('mapPostgresError', () => {
  const map = (error: unknown) => mapPostgresError(error, 'PostgreSQL at db:5432/app');

  checkCases(map, [
    [
      'ECONNREFUSED',
      driverError('connect ECONNREFUSED 127.0.0.1:1', { code: 'ECONNREFUSED' }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      '28P01 (bad password)',
      driverError('password authentication failed', { code: '28P01' }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      '3D000 (no such database)',
      driverError('database "app" does not exist', { code: '3D000' }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      '57P01 (admin shutdown)',
      driverError('terminating connection due to administrator command', { code: '57P01' }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      '08006 (connection failure)',
      driverError('connection failure', { code: '08006' }),
      'STORE_CONNECTION_REFUSED',
    ],
    ['a dropped connection', driverError('Connection terminated unexpectedly'), 'STORE_CONNECTION_REFUSED'],
    [
      '57014 (statement_timeout)',
      driverError('canceling statement due to statement timeout', { code: '57014' }),
      'STORE_TIMEOUT',
    ],
    ['a client query timeout', driverError('Query read timeout'), 'STORE_TIMEOUT'],
    ['a connect timeout', driverError('Connection terminated due to connection timeout'), 'STORE_TIMEOUT'],
    ['a pool wait timeout', driverError('timeout exceeded when trying to connect'), 'STORE_POOL_EXHAUSTED'],
    ['40P01 (deadlock)', driverError('deadlock detected', { code: '40P01' }), 'STORE_LOCK_TIMEOUT'],
    [
      '55P03 (lock not available)',
      driverError('could not obtain lock', { code: '55P03' }),
      'STORE_LOCK_TIMEOUT',
    ],
    [
      '22001 (value too long)',
      driverError('value too long for type character varying(191)', { code: '22001' }),
      'STORE_DATA_TOO_LONG',
    ],
    [
      '42P01 (undefined table)',
      driverError('relation "activity_log" does not exist', { code: '42P01' }),
      'STORE_SCHEMA_MISSING',
    ],
    [
      '42703 (undefined column)',
      driverError('column "method" does not exist', { code: '42703' }),
      'STORE_SCHEMA_MISSING',
    ],
    [
      '22021 (NUL byte in text)',
      driverError('invalid byte sequence for encoding "UTF8": 0x00', { code: '22021' }),
      'STORE_DATA_INVALID',
    ],
    [
      '22P05 (\\u0000 in jsonb)',
      driverError('unsupported Unicode escape sequence', { code: '22P05' }),
      'STORE_DATA_INVALID',
    ],
    [
      '23502 (not null)',
      driverError('null value in column "description"', { code: '23502' }),
      'STORE_DATA_INVALID',
    ],
    [
      "a trigger's RAISE EXCEPTION (P0001)",
      driverError('refused by the audit trigger', { code: 'P0001' }),
      'STORE_DATA_INVALID',
    ],
    ['an unknown SQLSTATE', driverError('internal error', { code: 'XX000' }), 'STORE_FAILED'],
    ['an ended pool', driverError('Cannot use a pool after calling end on the pool'), 'STORE_CLOSED'],
  ]);

  it('passes an already coded error through unchanged', () => {
    const coded = new ActivityLogError('STORE_TIMEOUT', 'slow');
    expect(map(coded)).toBe(coded);
  });
});

describe('mapSqliteError', () => {
  const map = (error: unknown) => mapSqliteError(error, 'SQLite database ./storage/activity-log.sqlite');

  checkCases(map, [
    ['SQLITE_BUSY', driverError('database is locked', { code: 'SQLITE_BUSY' }), 'STORE_LOCK_TIMEOUT'],
    [
      'SQLITE_BUSY_SNAPSHOT',
      driverError('database is locked', { code: 'SQLITE_BUSY_SNAPSHOT' }),
      'STORE_LOCK_TIMEOUT',
    ],
    [
      'SQLITE_LOCKED',
      driverError('database table is locked', { code: 'SQLITE_LOCKED' }),
      'STORE_LOCK_TIMEOUT',
    ],
    [
      'SQLITE_TOOBIG',
      driverError('string or blob too big', { code: 'SQLITE_TOOBIG' }),
      'STORE_DATA_TOO_LONG',
    ],
    [
      'SQLITE_CANTOPEN',
      driverError('unable to open database file', { code: 'SQLITE_CANTOPEN' }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      'SQLITE_NOTADB',
      driverError('file is not a database', { code: 'SQLITE_NOTADB' }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      'ENOTDIR (directory cannot be created)',
      driverError("ENOTDIR: not a directory, mkdir '/x'", { code: 'ENOTDIR' }),
      'STORE_CONNECTION_REFUSED',
    ],
    [
      'no such table',
      driverError('no such table: activity_log', { code: 'SQLITE_ERROR' }),
      'STORE_SCHEMA_MISSING',
    ],
    [
      'a missing column',
      driverError('table activity_log has no column named method', { code: 'SQLITE_ERROR' }),
      'STORE_SCHEMA_MISSING',
    ],
    [
      "a trigger's RAISE(ABORT)",
      driverError('refused by the audit trigger', { code: 'SQLITE_CONSTRAINT_TRIGGER' }),
      'STORE_DATA_INVALID',
    ],
    [
      'SQLITE_CONSTRAINT_NOTNULL',
      driverError('NOT NULL constraint failed', { code: 'SQLITE_CONSTRAINT_NOTNULL' }),
      'STORE_DATA_INVALID',
    ],
    ['SQLITE_FULL', driverError('database or disk is full', { code: 'SQLITE_FULL' }), 'STORE_FAILED'],
    ['a syntax error', driverError('near "SELEC": syntax error', { code: 'SQLITE_ERROR' }), 'STORE_FAILED'],
    ['a closed connection', new TypeError('The database connection is not open'), 'STORE_CLOSED'],
  ]);

  it('passes an already coded error through unchanged', () => {
    const coded = new ActivityLogError('STORE_CLOSED', 'closed');
    expect(map(coded)).toBe(coded);
  });
});
