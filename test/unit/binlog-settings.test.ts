import { describe, expect, it } from 'vitest';
import { binlogConnectionOptions } from '../../src/capture/binlog/binlog-connection.js';
import { formatBinlogPosition, parseBinlogPosition } from '../../src/capture/binlog/binlog-position.js';
import { binlogSettingsAdvice, binlogSettingsProblem } from '../../src/capture/binlog/binlog-settings.js';
import { binlogTableFilter } from '../../src/capture/binlog/binlog-table-filter.js';
import { captureContextTableSql } from '../../src/capture/binlog/capture-context-table.js';

const READY = { log_bin: 'ON', binlog_format: 'ROW', binlog_row_image: 'FULL' };

describe('binlog settings check', () => {
  it('accepts log_bin ON, ROW format and FULL row images', () => {
    expect(binlogSettingsProblem(READY)).toBeNull();
    expect(
      binlogSettingsProblem({ log_bin: 'on', binlog_format: 'row', binlog_row_image: 'full' }),
    ).toBeNull();
  });

  it('refuses a server without the binary log, naming log_bin and the fix in one line', () => {
    const problem = binlogSettingsProblem({ ...READY, log_bin: 'OFF' });
    expect(problem).toMatch(/^log_bin is OFF, .*my\.cnf.*log_bin=mysql-bin/);
    expect(problem).not.toContain('\n');
  });

  it('refuses STATEMENT and MIXED formats, naming binlog_format', () => {
    expect(binlogSettingsProblem({ ...READY, binlog_format: 'MIXED' })).toMatch(
      /^binlog_format is MIXED, capture needs ROW: .*binlog_format=ROW/,
    );
    expect(binlogSettingsProblem({ ...READY, binlog_format: 'STATEMENT' })).toMatch(
      /^binlog_format is STATEMENT/,
    );
  });

  it('refuses MINIMAL and NOBLOB row images, naming binlog_row_image', () => {
    expect(binlogSettingsProblem({ ...READY, binlog_row_image: 'MINIMAL' })).toMatch(
      /^binlog_row_image is MINIMAL, capture needs FULL: .*binlog_row_image=FULL/,
    );
    expect(binlogSettingsProblem({ ...READY, binlog_row_image: 'NOBLOB' })).toMatch(
      /^binlog_row_image is NOBLOB/,
    );
  });

  it('refuses a variable the server did not report', () => {
    expect(binlogSettingsProblem({ log_bin: 'ON', binlog_format: 'ROW' })).toMatch(
      /^binlog_row_image is unknown/,
    );
  });
});

describe('binlog settings advice', () => {
  it('advises binlog_row_metadata=FULL when the binlog carries no column names', () => {
    expect(binlogSettingsAdvice({ ...READY, binlog_row_metadata: 'NO_LOG' })).toMatch(
      /^binlog_row_metadata is NO_LOG: .*set binlog_row_metadata=FULL/,
    );
    expect(binlogSettingsAdvice({ ...READY, binlog_row_metadata: 'MINIMAL' })).toMatch(
      /^binlog_row_metadata is MINIMAL/,
    );
  });

  it('has nothing to advise under FULL or a server without the variable', () => {
    expect(binlogSettingsAdvice({ ...READY, binlog_row_metadata: 'FULL' })).toBeNull();
    expect(binlogSettingsAdvice(READY)).toBeNull();
  });
});

describe('binlog position text', () => {
  it('round-trips a file position and a GTID position', () => {
    for (const position of [
      { file: 'mysql-bin.000002', offset: 4 },
      { file: 'mysql-bin.000002', offset: 492388248, gtid: '0-1-13793,1-2-7' },
    ]) {
      expect(parseBinlogPosition(formatBinlogPosition(position))).toEqual(position);
    }
  });

  it('refuses text that is not a position, naming the shape', () => {
    for (const text of [
      '',
      'mysql-bin.000002:4',
      '{"file":"x","offset":2}',
      '{"file":"x","offset":9,"gtid":"0-1-1\'"}',
    ]) {
      expect(() => parseBinlogPosition(text)).toThrow(
        /is not \{"file": "<binlog file>", "offset": <4 or more>/,
      );
    }
  });
});

describe('binlog table filter', () => {
  it('takes schema.table, table in the URL database, and schema.*', () => {
    const filter = binlogTableFilter(['shop.orders', 'users', 'audit.*'], [], 'shop');
    expect(filter.includes('shop', 'orders')).toBe(true);
    expect(filter.includes('shop', 'users')).toBe(true);
    expect(filter.includes('other', 'users')).toBe(false);
    expect(filter.includes('audit', 'anything')).toBe(true);
    expect(filter.includes('shop', 'carts')).toBe(false);
    expect(filter.streamFilter.includeSchema).toEqual({
      shop: ['activity_log_capture_context', 'orders', 'users'],
      audit: true,
    });
  });

  it('* takes every table of the URL database but the excluded ones and the library tables', () => {
    const filter = binlogTableFilter(['*'], ['shop.sessions'], 'shop');
    expect(filter.includes('shop', 'orders')).toBe(true);
    expect(filter.includes('other', 'things')).toBe(false);
    expect(filter.includes('shop', 'sessions')).toBe(false);
    expect(filter.includes('mysql', 'user')).toBe(false);
    expect(filter.includes('shop', 'activity_log')).toBe(false);
    expect(filter.includes('shop', 'activity_log_capture_positions')).toBe(false);
    expect(filter.includes('shop', 'activity_log_capture_context')).toBe(false);
    expect(filter.streamFilter.includeSchema).toEqual({ shop: true });
  });

  it('*.* takes every schema but the server ones', () => {
    const filter = binlogTableFilter(['*.*'], [], 'shop');
    expect(filter.includes('other', 'things')).toBe(true);
    expect(filter.includes('performance_schema', 'events')).toBe(false);
    expect(filter.streamFilter.includeSchema).toBeUndefined();
  });

  it('refuses a name with too many dots or an empty part, naming the setting', () => {
    expect(() => binlogTableFilter(['a.b.c'])).toThrow(/^tables: "a\.b\.c" is not a table name/);
    expect(() => binlogTableFilter(['shop.orders'], ['.x'])).toThrow(/^exclude: "\.x" is not a table name/);
    expect(() => binlogTableFilter([])).toThrow(/^tables: name at least one table/);
  });
});

describe('capture context table', () => {
  it('is keyed by connection id with a JSON context on both dialects', () => {
    for (const dialect of ['mysql', 'mariadb'] as const) {
      const sql = captureContextTableSql(dialect);
      expect(sql).toMatch(/^CREATE TABLE IF NOT EXISTS activity_log_capture_context \(/);
      expect(sql).toContain('connection_id BIGINT UNSIGNED NOT NULL PRIMARY KEY');
      expect(sql).toMatch(/context (JSON|LONGTEXT .*JSON_VALID)/);
    }
  });
});

describe('capture source URL', () => {
  it('reads host, port, user, password and database, with DATE and DATETIME as text', () => {
    expect(
      binlogConnectionOptions('mariadb://capture:p%40ss@db.internal:3307/shop?sslmode=require'),
    ).toMatchObject({
      host: 'db.internal',
      port: 3307,
      user: 'capture',
      password: 'p@ss',
      database: 'shop',
      dateStrings: ['DATE', 'DATETIME'],
      ssl: { rejectUnauthorized: false },
    });
  });

  it('refuses another scheme or parameter, naming ACTIVITY_LOG_CAPTURE_SOURCE', () => {
    expect(() => binlogConnectionOptions('postgres://db/shop')).toThrow(/ACTIVITY_LOG_CAPTURE_SOURCE/);
    expect(() => binlogConnectionOptions('not a url')).toThrow(/ACTIVITY_LOG_CAPTURE_SOURCE/);
    expect(() => binlogConnectionOptions('redis://user:secret@db/shop')).toThrow(
      /^ACTIVITY_LOG_CAPTURE_SOURCE=\(hidden\) is not allowed: expected mysql:\/\//,
    );
    expect(() => binlogConnectionOptions('mysql://db/shop?sslmode=prefer')).toThrow(
      /ACTIVITY_LOG_CAPTURE_SOURCE.*sslmode=disable\|require\|verify-full/,
    );
  });
});
