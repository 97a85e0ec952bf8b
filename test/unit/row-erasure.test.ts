import { describe, expect, it } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { activityLeafHash, type ErasableField, fieldCommitments } from '../../src/integrity/activity-leaf.js';
import { type ErasableRow, planRowErasure } from '../../src/integrity/row-erasure.js';
import { CANONICAL_VECTOR } from '../helpers/canonical-vector.js';

const SALT = '000102030405060708090a0b0c0d0e0f';
const DEFAULT_FIELDS: readonly ErasableField[] = ['causer_id', 'ip_address', 'user_agent', 'properties'];
const VECTOR_LEAF = '213c0800770ca70055cdf6ca207cd443df6d1e91712caf43681a7d937548e898';

function sealedRow(overrides: Partial<ErasableRow> = {}): ErasableRow {
  return { activity: CANONICAL_VECTOR, sealSeq: 3, salt: SALT, commitments: null, ...overrides };
}

/** The row as the store leaves it once erased: the fields null (properties read back as {}). */
function erasedActivity(activity: Activity, fields: readonly ErasableField[]): Activity {
  const property: Record<string, string> = {
    causer_id: 'causerId',
    ip_address: 'ipAddress',
    user_agent: 'userAgent',
    properties: 'properties',
  };
  const values: Record<string, unknown> = { ...activity };
  for (const field of fields) values[property[field]!] = field === 'properties' ? {} : null;
  return values as unknown as Activity;
}

describe('planRowErasure', () => {
  it('keeps the commitments of the fields a sealed row was sealed with, so its leaf is unchanged', () => {
    const plan = planRowErasure(sealedRow(), DEFAULT_FIELDS, ['ip_address']);
    expect(plan.kind).toBe('erase');
    if (plan.kind !== 'erase') return;
    expect(plan.fields).toEqual(DEFAULT_FIELDS);
    expect(plan.commitments).toEqual(
      fieldCommitments(CANONICAL_VECTOR, Buffer.from(SALT, 'hex'), DEFAULT_FIELDS),
    );
    expect(plan.commitments?.causer_id).toBe(
      'eb86c47da78a7e5f5966a140f5bb5e4b5c0b523525858f8540fa698094ca60ef',
    );
    const leaf = activityLeafHash(erasedActivity(CANONICAL_VECTOR, plan.fields), {
      salt: null,
      erasableFields: plan.fields,
      commitments: plan.commitments,
    });
    expect(leaf.toString('hex')).toBe(VECTOR_LEAF);
  });

  it("uses the configured list for a seal that records none, and a row's stored commitments first", () => {
    const fallback = planRowErasure(sealedRow(), null, ['ip_address']);
    expect(fallback).toMatchObject({ kind: 'erase', fields: ['ip_address'] });
    const stored = planRowErasure(sealedRow({ commitments: '{"user_agent":"x"}' }), DEFAULT_FIELDS, []);
    expect(stored).toMatchObject({ kind: 'erase', fields: ['user_agent'] });
  });

  it('skips a row erased before: no salt, commitments kept', () => {
    expect(
      planRowErasure(sealedRow({ salt: null, commitments: '{}' }), DEFAULT_FIELDS, DEFAULT_FIELDS),
    ).toEqual({
      kind: 'already-erased',
    });
  });

  it('refuses a sealed row whose leaf commits to no field', () => {
    expect(planRowErasure(sealedRow(), [], DEFAULT_FIELDS)).toEqual({ kind: 'not-erasable' });
  });

  it('nulls the configured fields of an unsealed row and keeps nothing; one without values is done', () => {
    const unsealed = sealedRow({ sealSeq: null, salt: null });
    expect(planRowErasure(unsealed, null, ['ip_address', 'properties'])).toEqual({
      kind: 'erase',
      fields: ['ip_address', 'properties'],
      commitments: null,
    });
    const empty = { ...unsealed, activity: erasedActivity(CANONICAL_VECTOR, DEFAULT_FIELDS) };
    expect(planRowErasure(empty, null, DEFAULT_FIELDS)).toEqual({ kind: 'already-erased' });
  });

  it('names a row whose salt or commitments were altered instead of committing to them', () => {
    expect(() => planRowErasure(sealedRow({ salt: 'zz' }), DEFAULT_FIELDS, DEFAULT_FIELDS)).toThrow(
      /seal_salt is not 32 hex digits/,
    );
    expect(() =>
      planRowErasure(sealedRow({ commitments: '{"id":"x"}' }), DEFAULT_FIELDS, DEFAULT_FIELDS),
    ).toThrow(/seal_commitments are not commitments of erasable fields/);
  });
});
