import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ERASABLE_FIELDS } from '../../src/config/default-erasable-fields.js';
import type { Activity } from '../../src/core/activity.js';
import { activityFromJson, activityToJson } from '../../src/core/activity-json.js';
import { canonicalActivityJson, canonicalJson } from '../../src/core/canonical-encoding.js';
import {
  activityLeafHash,
  checkErasableFields,
  fieldCommitments,
  generateSalt,
  leafEncoding,
  mismatchedCommitments,
  SALT_BYTES,
} from '../../src/integrity/activity-leaf.js';
import { hashLeaf } from '../../src/integrity/merkle-tree.js';
import { CANONICAL_VECTOR } from '../helpers/canonical-vector.js';

const VECTOR = CANONICAL_VECTOR;

const SALT = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const ERASABLE = checkErasableFields(DEFAULT_ERASABLE_FIELDS);

const COMMITMENTS = {
  causer_id: 'eb86c47da78a7e5f5966a140f5bb5e4b5c0b523525858f8540fa698094ca60ef',
  ip_address: 'e88f42d48654c97482f336a7b0b04956b0788bd167a8473354d1c65552c34a8c',
  user_agent: 'c632ae5fc52e3c62621718e4c63f557f29d4614b54ca31087ba7f1628aea1885',
  properties: '8fe45373987dbc544109b7c80a6e6ca71d4fc6521e23058cf02945dc48ed8c55',
};
const LEAF = '213c0800770ca70055cdf6ca207cd443df6d1e91712caf43681a7d937548e898';
const LEAF_WITHOUT_COMMITMENTS = '0b55c2a0f6879b621d19e4fd729a74ece83dd3d340ffa2ab8260ac1e9cc7ec37';

/** The row as erasure leaves it and as a store reads it back: personal fields null, no properties. */
function erased(activity: Activity): Activity {
  return Object.freeze({ ...activity, causerId: null, ipAddress: null, userAgent: null, properties: {} });
}

const sha256 = (...parts: (Buffer | string)[]) =>
  createHash('sha256')
    .update(Buffer.concat(parts.map((part) => Buffer.from(part))))
    .digest('hex');

describe('activity leaf', () => {
  it('commits each erasable field as SHA-256(salt ‖ column ‖ 0x00 ‖ canonical JSON of the value)', () => {
    expect(fieldCommitments(VECTOR, SALT, ERASABLE)).toEqual(COMMITMENTS);
    expect(COMMITMENTS.causer_id).toBe(sha256(SALT, 'causer_id', Buffer.from([0]), '"7"'));
    expect(COMMITMENTS.properties).toBe(
      sha256(SALT, 'properties', Buffer.from([0]), canonicalJson(VECTOR.properties)),
    );
    expect(fieldCommitments({ ...VECTOR, causerId: null }, SALT, ['causer_id']).causer_id).toBe(
      sha256(SALT, 'causer_id', Buffer.from([0]), 'null'),
    );
  });

  it('hashes the canonical encoding with the committed values replaced, to the documented leaf', () => {
    const expected = { ...JSON.parse(canonicalActivityJson(VECTOR)) };
    for (const [column, commitment] of Object.entries(COMMITMENTS)) expected[column] = { commitment };
    const encoding = leafEncoding(VECTOR, { salt: SALT, erasableFields: ERASABLE });
    expect(encoding.toString('utf8')).toBe(canonicalJson(expected));
    expect(activityLeafHash(VECTOR, { salt: SALT, erasableFields: ERASABLE }).toString('hex')).toBe(LEAF);
    expect(hashLeaf(encoding).toString('hex')).toBe(LEAF);
  });

  it('is SHA-256(0x00 ‖ canonical encoding) when no field is erasable', () => {
    const leaf = activityLeafHash(VECTOR, { salt: null, erasableFields: [] });
    expect(leaf.toString('hex')).toBe(LEAF_WITHOUT_COMMITMENTS);
    expect(leaf.toString('hex')).toBe(sha256(Buffer.from([0]), canonicalActivityJson(VECTOR)));
  });

  it('gives an erased row the leaf it had before, from its stored commitments', () => {
    const options = { salt: null, erasableFields: ERASABLE, commitments: COMMITMENTS };
    expect(activityLeafHash(erased(VECTOR), options).toString('hex')).toBe(LEAF);
    const nullProperties = { ...erased(VECTOR), properties: null } as unknown as Activity;
    expect(activityLeafHash(nullProperties, options).toString('hex')).toBe(LEAF);
  });

  it('changes when any field, a committed value under its salt, or a stored commitment changes', () => {
    const leafOf = (activity: Activity) =>
      activityLeafHash(activity, { salt: SALT, erasableFields: ERASABLE }).toString('hex');
    const changes: Partial<Record<keyof Activity, unknown>> = {
      id: '0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2c',
      logName: 'order',
      description: 'updated order 43',
      subjectType: 'Invoice',
      subjectId: '43',
      event: 'created',
      causerType: 'Admin',
      causerId: '8',
      properties: { old: { total: 9.99 }, attributes: { total: 10.51, note: 'é' } },
      batchUuid: null,
      ipAddress: '192.0.2.2',
      url: '/orders/43',
      method: 'PUT',
      userAgent: 'curl/8.6',
      createdAt: new Date('2025-11-28T09:30:00.124Z'),
    };
    for (const [property, value] of Object.entries(changes)) {
      expect(leafOf({ ...VECTOR, [property]: value } as Activity), property).not.toBe(LEAF);
    }
    const other = activityLeafHash(VECTOR, { salt: Buffer.alloc(SALT_BYTES, 1), erasableFields: ERASABLE });
    expect(other.toString('hex')).not.toBe(LEAF);
    const forged = { ...COMMITMENTS, ip_address: COMMITMENTS.ip_address.replace(/^e/, 'f') };
    const erasedLeaf = activityLeafHash(erased(VECTOR), {
      salt: null,
      erasableFields: ERASABLE,
      commitments: forged,
    });
    expect(erasedLeaf.toString('hex')).not.toBe(LEAF);
  });

  it('makes the leaf from the values while the salt is there, whatever commitments are stored', () => {
    const forged = { ...COMMITMENTS, causer_id: COMMITMENTS.ip_address };
    const leaf = activityLeafHash(VECTOR, { salt: SALT, erasableFields: ERASABLE, commitments: forged });
    expect(leaf.toString('hex')).toBe(LEAF);
    expect(mismatchedCommitments(VECTOR, SALT, forged)).toEqual(['causer_id']);
    expect(mismatchedCommitments({ ...VECTOR, userAgent: 'x' }, SALT, COMMITMENTS)).toEqual(['user_agent']);
    expect(mismatchedCommitments(VECTOR, SALT, COMMITMENTS)).toEqual([]);
  });

  it('is the same for a row however it was read back (JSON, other key order in properties)', () => {
    const reread = activityFromJson(JSON.parse(JSON.stringify(activityToJson(VECTOR))));
    const shuffled = Object.freeze({
      ...reread,
      properties: { attributes: { note: 'é', total: 10.5 }, old: { total: 9.99 } },
    });
    for (const activity of [reread, shuffled]) {
      expect(activityLeafHash(activity, { salt: SALT, erasableFields: ERASABLE }).toString('hex')).toBe(LEAF);
    }
  });

  it('encodes any activity as its canonical JSON object with the committed values replaced', () => {
    const text = fc.option(fc.string({ unit: 'binary', maxLength: 20 }), { nil: null });
    fc.assert(
      fc.property(
        fc.record({
          description: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
          causerId: text,
          ipAddress: text,
          userAgent: text,
          subjectId: text,
          properties: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 })),
        }),
        fc.subarray([...ERASABLE, 'subject_id', 'url'] as const),
        (fields, erasable) => {
          const activity = Object.freeze({ ...VECTOR, ...fields }) as Activity;
          const commitments = fieldCommitments(activity, SALT, erasable);
          const expected = JSON.parse(canonicalActivityJson(activity));
          for (const [column, commitment] of Object.entries(commitments)) expected[column] = { commitment };
          const encoding = leafEncoding(activity, { salt: SALT, erasableFields: erasable });
          expect(encoding.toString('utf8')).toBe(canonicalJson(expected));
          const erasedLeaf = activityLeafHash(activity, {
            salt: null,
            erasableFields: erasable,
            commitments,
          });
          expect(erasedLeaf.equals(hashLeaf(encoding))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('leaves the activity it hashes as it was', () => {
    activityLeafHash(VECTOR, { salt: SALT, erasableFields: ERASABLE });
    expect(VECTOR.causerId).toBe('7');
    expect(canonicalActivityJson(VECTOR)).not.toContain('commitment');
  });

  it('makes a fresh 16-byte salt each time', () => {
    const salts = new Set(Array.from({ length: 20 }, () => generateSalt().toString('hex')));
    expect(salts.size).toBe(20);
    expect([...salts].every((salt) => salt.length === SALT_BYTES * 2)).toBe(true);
  });

  it('refuses a field that cannot be erased, a missing commitment and a salt of the wrong length', () => {
    expect(() => checkErasableFields(['description'])).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', field: 'ACTIVITY_LOG_ERASABLE_FIELDS' }),
    );
    expect(() => checkErasableFields(['created_at'])).toThrow(/not a nullable column/);
    expect(() =>
      activityLeafHash(erased(VECTOR), {
        salt: null,
        erasableFields: ERASABLE,
        commitments: { causer_id: COMMITMENTS.causer_id },
      }),
    ).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', field: 'ip_address' }));
    expect(() => fieldCommitments(VECTOR, Buffer.alloc(8), ERASABLE)).toThrow(RangeError);
  });
});
