import { describe, expect, it } from 'vitest';
import { defaultModelResolver } from '../../src/core/activity.js';
import {
  decodeTransactionTag,
  encodeTransactionTag,
  transactionTagOf,
} from '../../src/core/transaction-tag.js';
import { runTagStatement, tagStatement } from '../../src/runtime/tag-transaction.js';

const context = {
  causer: { type: 'User', id: 42 },
  ipAddress: '203.0.113.9',
  url: '/orders?x=1',
  method: 'POST',
  userAgent: 'agent',
  batchUuid: '0190a6c4-0000-7000-8000-000000000001',
};

describe('transaction tags', () => {
  it('carries the request context through JSON and back', () => {
    const tag = transactionTagOf(context, defaultModelResolver);
    expect(decodeTransactionTag(encodeTransactionTag(tag))).toEqual({
      causerType: 'User',
      causerId: '42',
      ipAddress: '203.0.113.9',
      url: '/orders?x=1',
      method: 'POST',
      userAgent: 'agent',
      batchUuid: context.batchUuid,
    });
  });

  it('keeps quotes and SQL in values as data: the tag is a bound parameter', () => {
    const tag = transactionTagOf(
      { causer: { type: "x'); DROP TABLE t; --", id: '"}' } },
      defaultModelResolver,
    );
    const statement = tagStatement(tag, 'postgres');
    expect(statement.sql).toBe('SELECT pg_logical_emit_message(true, $1, $2)');
    expect(statement.params[0]).toBe('activity-log');
    expect(decodeTransactionTag(statement.params[1] as string)).toEqual({
      causerType: "x'); DROP TABLE t; --",
      causerId: '"}',
    });
    expect(tagStatement(tag, 'mysql').sql).toContain('activity_log_capture_context');
  });

  it('reads a foreign message or a malformed value as no tag, or leaves the bad field out', () => {
    expect(decodeTransactionTag('not json')).toBeNull();
    expect(decodeTransactionTag('{"causer_id":"1"}')).toBeNull();
    expect(
      decodeTransactionTag('{"v":"1","ip_address":"not an ip","causer_type":"User","method":"GET"}'),
    ).toEqual({
      method: 'GET',
    });
  });

  it('runs through a function, a client with query() or a Kysely transaction', async () => {
    const calls: unknown[][] = [];
    const tag = transactionTagOf(context, defaultModelResolver);
    await runTagStatement(async (sql, params) => calls.push([sql, params]), tag, 'postgres');
    await runTagStatement(
      { query: async (sql: string, params: unknown[]) => calls.push([sql, params]) },
      tag,
      'postgres',
    );
    await runTagStatement(
      {
        executeQuery: async (query: { sql: string; parameters: readonly unknown[] }) =>
          calls.push([query.sql, query.parameters]),
      },
      tag,
      'postgres',
    );
    expect(calls).toHaveLength(3);
    expect(new Set(calls.map((call) => JSON.stringify(call))).size).toBe(1);
    await expect(runTagStatement({} as never, tag, 'postgres')).rejects.toThrow(
      /^executor must be a function/,
    );
  });
});
