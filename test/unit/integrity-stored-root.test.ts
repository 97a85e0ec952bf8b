import { describe, expect, it } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { CANONICAL_FIELDS, propertiesJson } from '../../src/core/canonical-encoding.js';
import { activityLeafHash, checkErasableFields, generateSalt } from '../../src/integrity/activity-leaf.js';
import { merkleRoot } from '../../src/integrity/merkle-tree.js';
import { nextSeal } from '../../src/integrity/seal-hash.js';
import { ChainChecker, type StoredSealedRow, storedValuesRoot } from '../../src/integrity/verify-chain.js';
import { builtActivities } from '../helpers/activity-factory.js';

const ERASABLE = checkErasableFields(['causer_id', 'ip_address', 'user_agent', 'properties']);

/** A row as a reader keeps it, counting how often its activity is decoded. */
function storedRow(activity: Activity, salt: Buffer, properties: unknown, decoded: { count: number }) {
  const values = activity as unknown as Readonly<Record<string, unknown>>;
  return {
    id: activity.id,
    salt: salt.toString('hex'),
    commitments: null,
    values: CANONICAL_FIELDS.map((field) =>
      field.kind === 'json'
        ? properties
        : field.kind === 'timestamp'
          ? (values[field.property] as Date).toISOString()
          : values[field.property],
    ),
    get activity() {
      decoded.count++;
      return activity;
    },
  } satisfies StoredSealedRow;
}

function sealOf(activities: readonly Activity[], salts: readonly Buffer[]) {
  const leaves = activities.map((activity, index) =>
    activityLeafHash(activity, { salt: salts[index]!, erasableFields: ERASABLE }),
  );
  return nextSeal(null, {
    root: merkleRoot(leaves),
    rowCount: leaves.length,
    sealedAt: new Date(1_764_322_200_123),
  });
}

describe('seal roots from stored values', () => {
  const activities = builtActivities(4).sort((a, b) => (a.id < b.id ? -1 : 1));
  const salts = activities.map(() => Buffer.from(generateSalt()));
  const seal = sealOf(activities, salts);

  it('finds a seal intact from its rows stored values without decoding one', () => {
    const decoded = { count: 0 };
    const rows = activities.map((a, i) => storedRow(a, salts[i]!, propertiesJson(a), decoded));
    expect(storedValuesRoot(rows, ERASABLE)).toEqual(seal.root);
    const checker = new ChainChecker({ fromSeq: 1, anchor: null, erasableFields: ERASABLE, unsealedRows: 0 });
    checker.check({ seq: 1, seal, rows });
    checker.check({ seq: 1, seal, rows }, seal.root);
    expect(decoded.count).toBe(0);
  });

  it('decodes the rows of a seal whose stored values do not make its root, and reports what a row-by-row check does', () => {
    const decoded = { count: 0 };
    // The same properties written with other whitespace: another leaf from the text, the same values.
    const rows = activities.map((a, i) =>
      storedRow(a, salts[i]!, JSON.stringify(JSON.parse(propertiesJson(a)), null, 2), decoded),
    );
    expect(storedValuesRoot(rows, ERASABLE)).not.toEqual(seal.root);
    const checker = new ChainChecker({ fromSeq: 1, anchor: null, erasableFields: ERASABLE, unsealedRows: 0 });
    checker.check({ seq: 1, seal, rows });
    expect(decoded.count).toBeGreaterThan(0);
    expect(checker.report().intact).toBe(true);

    const wrongRoot = Buffer.alloc(32, 7);
    const plain = activities.map((a, i) => storedRow(a, salts[i]!, propertiesJson(a), decoded));
    const again = new ChainChecker({ fromSeq: 1, anchor: null, erasableFields: ERASABLE, unsealedRows: 0 });
    again.check({ seq: 1, seal, rows: plain }, wrongRoot);
    expect(again.report().intact).toBe(true);
  });

  it('gives no root for rows it cannot make one from: erased, without stored values, or with another value type', () => {
    const decoded = { count: 0 };
    const rows = activities.map((a, i) => storedRow(a, salts[i]!, propertiesJson(a), decoded));
    expect(storedValuesRoot([{ ...rows[0]!, salt: null }], ERASABLE)).toBeNull();
    expect(storedValuesRoot([{ ...rows[0]!, values: undefined }], ERASABLE)).toBeNull();
    expect(storedValuesRoot([{ ...rows[0]!, commitments: '{}' }], ERASABLE)).toBeNull();
    expect(storedValuesRoot([{ ...rows[0]!, salt: 'not hex' }], ERASABLE)).toBeNull();
    const timestampAt = CANONICAL_FIELDS.findIndex((field) => field.kind === 'timestamp');
    const values = rows[0]!.values.map((value, index) => (index === timestampAt ? null : value));
    expect(storedValuesRoot([{ ...rows[0]!, values }], ERASABLE)).toBeNull();
  });
});
