import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defaultModelResolver, LIMITS } from '../../src/core/activity.js';
import { activityFromJson, activityToJson } from '../../src/core/activity-json.js';
import { buildActivity } from '../../src/core/build-activity.js';
import {
  canonicalActivityJson,
  canonicalEncoding,
  canonicalJson,
  propertiesJson,
} from '../../src/core/canonical-encoding.js';
import { CANONICAL_VECTOR } from '../helpers/canonical-vector.js';

const VECTOR = CANONICAL_VECTOR;

const VECTOR_TEXT =
  '{"batch_uuid":"0190a4f0-0000-7000-8000-000000000001","causer_id":"7","causer_type":"User",' +
  '"created_at":"2025-11-28T09:30:00.123Z","description":"updated order 42","event":"updated",' +
  '"id":"0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2b","ip_address":"192.0.2.1","log_name":"orders",' +
  '"method":"PATCH","properties":{"attributes":{"note":"é","total":10.5},"old":{"total":9.99}},' +
  '"subject_id":"42","subject_type":"Order","url":"/orders/42","user_agent":"curl/8.5"}';

const buildOptions = { resolveModel: defaultModelResolver, isSecretKey: () => false };

describe('canonical encoding', () => {
  it('encodes the documented test vector to its exact bytes and SHA-256', () => {
    const bytes = canonicalEncoding(VECTOR);
    expect(bytes.toString('utf8')).toBe(VECTOR_TEXT);
    expect(bytes.length).toBe(447);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(
      '95c95ba0ba9c19c60c7439e0950ee1552b80148b2dbe896ebb0c3c6c97dc97de',
    );
  });

  it('is the same for an activity however it was rebuilt (JSON, other key order)', () => {
    const reordered = activityFromJson(JSON.parse(JSON.stringify(activityToJson(VECTOR))));
    const shuffled = Object.freeze({
      ...reordered,
      properties: { attributes: { note: 'é', total: 10.5 }, old: { total: 9.99 } },
    });
    expect(canonicalEncoding(reordered).toString('utf8')).toBe(VECTOR_TEXT);
    expect(canonicalEncoding(shuffled).toString('utf8')).toBe(VECTOR_TEXT);
  });

  it('writes nulls for absent values and sorts keys by UTF-16 code unit at every depth', () => {
    const activity = buildActivity(
      {
        description: 'x',
        id: '0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2c',
        createdAt: '2025-01-01T00:00:00Z',
        properties: {
          b: [{ z: 1, a: null }],
          a: true,
          '10': 1,
          '9': 2,
          Z: -0,
          é: 'x',
          '\u{1f600}': 1,
          '\uff21': 2,
        },
      },
      undefined,
      buildOptions,
    );
    expect(canonicalActivityJson(activity)).toBe(
      '{"batch_uuid":null,"causer_id":null,"causer_type":null,"created_at":"2025-01-01T00:00:00.000Z",' +
        '"description":"x","event":null,"id":"0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2c","ip_address":null,' +
        '"log_name":"default","method":null,' +
        '"properties":{"10":1,"9":2,"Z":0,"a":true,"b":[{"a":null,"z":1}],"é":"x","\u{1f600}":1,"\uff21":2},' +
        '"subject_id":null,"subject_type":null,"url":null,"user_agent":null}',
    );
  });

  it('follows JSON.stringify for values outside plain data', () => {
    expect(canonicalJson({ b: undefined, a: () => 1, d: new Date(0), n: Number.NaN, l: [undefined] })).toBe(
      '{"d":"1970-01-01T00:00:00.000Z","l":[null],"n":null}',
    );
    expect(canonicalJson('a"\\\n\u0001')).toBe(JSON.stringify('a"\\\n\u0001'));
    expect(canonicalJson(1e21)).toBe('1e+21');
    expect(canonicalJson(undefined)).toBe('null');
  });

  it('gives the store the properties text it gives the full encoding, made once', () => {
    const [activity] = [
      buildActivity({ description: 'x', properties: { b: 1, a: 2 } }, undefined, buildOptions),
    ];
    const first = propertiesJson(activity!);
    expect(first).toBe('{"a":2,"b":1}');
    expect(propertiesJson(activity!)).toBe(first);
    expect(canonicalActivityJson(activity!)).toContain(`"properties":${first}`);
  });

  it('refuses properties over the limit in log() with the byte count, whether or not the bound decides', () => {
    const limit = LIMITS.propertiesBytes;
    // 8 bytes of JSON around the text: {"a":""}
    const exact = 'x'.repeat(limit - 8);
    expect(() =>
      buildActivity({ description: 'x', properties: { a: exact } }, undefined, buildOptions),
    ).not.toThrow();
    expect(() =>
      buildActivity({ description: 'x', properties: { a: `${exact}y` } }, undefined, buildOptions),
    ).toThrow(
      expect.objectContaining({
        code: 'VALIDATION_FAILED',
        field: 'properties',
        message: `properties must serialize to at most ${limit} bytes of JSON (got ${limit + 1})`,
      }),
    );
    // Escapes count: a quote is two bytes of JSON.
    const quotes = '"'.repeat((limit - 8) / 2);
    expect(() =>
      buildActivity({ description: 'x', properties: { a: quotes } }, undefined, buildOptions),
    ).not.toThrow();
    expect(() =>
      buildActivity({ description: 'x', properties: { a: `${quotes}"` } }, undefined, buildOptions),
    ).toThrow(`(got ${limit + 2})`);
  });
});
