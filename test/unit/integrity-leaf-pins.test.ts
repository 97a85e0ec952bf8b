import { describe, expect, it } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { CANONICAL_FIELDS, propertiesJson } from '../../src/core/canonical-encoding.js';
import {
  activityLeafHash,
  checkErasableFields,
  type FieldCommitments,
  fieldCommitments,
  storedRowLeafHash,
} from '../../src/integrity/activity-leaf.js';
import { merkleRoot } from '../../src/integrity/merkle-tree.js';
import { CANONICAL_VECTOR } from '../helpers/canonical-vector.js';

/**
 * Leaves and commitments of fixed activities, as the first sealing code computed them. Sealed rows
 * and proofs already stored hold these bytes: any change to how a leaf is made must keep them.
 */

const SALT = Buffer.from('f0e1d2c3b4a5968778695a4b3c2d1e0f', 'hex');
const IP_SALT = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const ERASABLE = checkErasableFields(['causer_id', 'ip_address', 'user_agent', 'properties']);

const ACTIVITIES: Readonly<Record<string, Activity>> = {
  vector: CANONICAL_VECTOR,
  unicode: Object.freeze({
    ...CANONICAL_VECTOR,
    id: '0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2c',
    description: 'Größe 😀 日本語 "quoted" \\ back\nline\ttab \u0001 \u2028',
    causerId: 'ユーザー',
    userAgent: 'Mozilla/5.0 (ü) \u{1F600}',
    properties: { ключ: 'значение', emoji: '🎉', Z: 1, a: 2, é: 3, '': 'empty' },
  }),
  nested: Object.freeze({
    ...CANONICAL_VECTOR,
    id: '0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2d',
    properties: {
      attributes: {
        items: [1, 'two', null, true, false, { z: 1, a: [{ y: null, b: -0 }] }],
        total: 1e21,
        tiny: 1e-7,
        neg: -12.5,
        big: 9007199254740992,
      },
      old: { items: [], nothing: null },
      deep: { a: { b: { c: { d: 'e' } } } },
    },
  }),
  nulls: Object.freeze({
    ...CANONICAL_VECTOR,
    id: '0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2e',
    subjectType: null,
    subjectId: null,
    event: null,
    causerType: null,
    causerId: null,
    properties: {},
    batchUuid: null,
    ipAddress: null,
    url: null,
    method: null,
    userAgent: null,
    createdAt: new Date('1970-01-01T00:00:00.000Z'),
  }),
};

interface Pinned {
  /** Commitments of the default erasable fields under {@link SALT}. */
  readonly commitments: FieldCommitments;
  /** The leaf with the default erasable fields under {@link SALT}, and of the row erased. */
  readonly leaf: string;
  /** The leaf with no erasable field. */
  readonly plain: string;
  /** The leaf with `ip_address` alone erasable, under {@link IP_SALT}. */
  readonly ipOnly: string;
}

const PINNED: Readonly<Record<string, Pinned>> = {
  vector: {
    commitments: {
      causer_id: 'bf526ed83e32aae5b90f3ca106395b955c850bafe9f44aca8b1e025af31000dd',
      ip_address: 'ffac38ae802546eff92cf9e4d77adf32da5d5632648cde772af524824d0e7412',
      user_agent: '9815042ed37fad1f3183625170ce714ccd93ac2e82a97c54c4b976e2f0eb878d',
      properties: '98b9d27081300fa643d28b5350cc54b632819c67da75ed15444ad36a5001d56a',
    },
    leaf: 'fc4d1c019bb71f167f2a2fdd70f910e63a7bbf861d72138779ab20caa24fc092',
    plain: '0b55c2a0f6879b621d19e4fd729a74ece83dd3d340ffa2ab8260ac1e9cc7ec37',
    ipOnly: 'dc8224ea3c3450b8b8be7241de35d1ac57a6f71da4c661ddbf4aa32cbc4d27fc',
  },
  unicode: {
    commitments: {
      causer_id: '96e9d22fe6d4a46e5fc35f38c65c6728480c19e39ea2da5e3d9a5a71ab1ddf67',
      ip_address: 'ffac38ae802546eff92cf9e4d77adf32da5d5632648cde772af524824d0e7412',
      user_agent: '3ae178cb24d778adf6b1b4c05c6f5977ef8019de20adb6a8b93bce8f30f32a8b',
      properties: '8d50841dc871bd9d95f2d98a2f8c1446a357e827e9bcea852355b1971cb5dcea',
    },
    leaf: 'e5982116464621d7622e2428aaae87c78906a32e3d13c30ad57d98d0f1b46bab',
    plain: '168e58c7ce1ed5daac380d474966549806fb4563a0d4763c9faafa25b7ef6140',
    ipOnly: '4eb0b5f62b89d5a763724bce16f94315fbc1d04e0d85f50fc0b2c87a35e358b9',
  },
  nested: {
    commitments: {
      causer_id: 'bf526ed83e32aae5b90f3ca106395b955c850bafe9f44aca8b1e025af31000dd',
      ip_address: 'ffac38ae802546eff92cf9e4d77adf32da5d5632648cde772af524824d0e7412',
      user_agent: '9815042ed37fad1f3183625170ce714ccd93ac2e82a97c54c4b976e2f0eb878d',
      properties: '52ffc864670e71157251acdf5fe207d3f6f0b866648f7a635ab5bc34de0eb201',
    },
    leaf: '66542930142357c13ecd1871f2b05c174a8c3f0e183cde2e6c73f821f02694c8',
    plain: '762d0b77ec4bdc6b648d89127729e44fa8e666af3a966ec4c0962df6c3f87dfe',
    ipOnly: '14d3a673b71f9e9d0a5e0e5fdbba2a54e06748561ecc360d626bbdb57cafb74b',
  },
  nulls: {
    commitments: {
      causer_id: '11ddebc9cb22d4c5c07a65e5dc7a4c17b1aa00bd87c452b2a5179ab174784689',
      ip_address: '69d59aab752f779095fc2f269e29f74393b30acf373411814c2de19f64807fa5',
      user_agent: '524b97c6892b0ba257c6b56226a302cc41b2dbc8324c181b8fea8a033ee70de6',
      properties: 'dfb4b28cf4b0f830a522350655f424b6e70f789e1a87078993fc710f8cb3dd59',
    },
    leaf: 'bc1548848d5dd2bf7ee03a2f89863b5eceb8192e8dffa92567d667e35aab4af4',
    plain: 'eba6e2a9afdc02fe964bb0c79add0b698bdaf2e5385872db71ef7fe5acff273b',
    ipOnly: '9647066d9a43ff4bffa3bbd718069171ba4c379444606ed0971fff3d79004210',
  },
};

/** The Merkle root of the four `leaf` values, in the order above. */
const PINNED_ROOT = 'f2db8add6d78bbd3e71a968e29f3419f4c6550b769e1168670c92f9441368870';

/** The row as erasure leaves it: personal fields null, no properties. */
function erased(activity: Activity): Activity {
  return Object.freeze({ ...activity, causerId: null, ipAddress: null, userAgent: null, properties: {} });
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

/** The activity's values as a reader keeps them, `properties` as given. */
function storedValues(activity: Activity, properties: unknown): unknown[] {
  const values = activity as unknown as Readonly<Record<string, unknown>>;
  return CANONICAL_FIELDS.map((field) =>
    field.kind === 'json'
      ? properties
      : field.kind === 'timestamp'
        ? (values[field.property] as Date).toISOString()
        : values[field.property],
  );
}

describe('pinned leaves', () => {
  for (const [name, activity] of Object.entries(ACTIVITIES)) {
    const pinned = PINNED[name]!;
    it(`keeps the ${name} activity's commitments and leaves byte for byte`, () => {
      expect(fieldCommitments(activity, SALT, ERASABLE)).toEqual(pinned.commitments);
      expect(hex(activityLeafHash(activity, { salt: SALT, erasableFields: ERASABLE }))).toBe(pinned.leaf);
      expect(
        hex(
          activityLeafHash(erased(activity), {
            salt: null,
            erasableFields: ERASABLE,
            commitments: pinned.commitments,
          }),
        ),
      ).toBe(pinned.leaf);
      expect(hex(activityLeafHash(activity, { salt: null, erasableFields: [] }))).toBe(pinned.plain);
      expect(hex(activityLeafHash(activity, { salt: IP_SALT, erasableFields: ['ip_address'] }))).toBe(
        pinned.ipOnly,
      );
    });
  }

  for (const [name, activity] of Object.entries(ACTIVITIES)) {
    const pinned = PINNED[name]!;
    it(`makes the ${name} activity's pinned leaves from its stored values, properties as text or parsed`, () => {
      for (const properties of [propertiesJson(activity), activity.properties]) {
        const values = storedValues(activity, properties);
        expect(hex(storedRowLeafHash(values, SALT, ERASABLE)!)).toBe(pinned.leaf);
        expect(hex(storedRowLeafHash(values, SALT, [])!)).toBe(pinned.plain);
        expect(hex(storedRowLeafHash(values, IP_SALT, ['ip_address'])!)).toBe(pinned.ipOnly);
      }
    });
  }

  it('makes another leaf from a stored properties text that is not canonical, and none from values it does not take', () => {
    const activity = ACTIVITIES.nested!;
    const spaced = JSON.stringify(activity.properties, null, 1);
    for (const fields of [ERASABLE, checkErasableFields(['ip_address'])]) {
      expect(hex(storedRowLeafHash(storedValues(activity, spaced), SALT, fields)!)).not.toBe(
        hex(activityLeafHash(activity, { salt: SALT, erasableFields: fields })),
      );
    }
    const withNumber = storedValues(activity, propertiesJson(activity)).map((value, index) =>
      CANONICAL_FIELDS[index]!.column === 'subject_id' ? 42 : value,
    );
    expect(storedRowLeafHash(withNumber, SALT, ERASABLE)).toBeNull();
    // A stored text holding a lone surrogate (the canonical text escapes it) is left to decoding.
    expect(storedRowLeafHash(storedValues(activity, '{"a":"\\ud800"}'), SALT, [])).not.toBeNull();
    expect(storedRowLeafHash(storedValues(activity, '{"a":"\ud800"}'), SALT, [])).toBeNull();
  });

  it('keeps the Merkle root of the pinned leaves', () => {
    const leaves = Object.values(PINNED).map((pinned) => Buffer.from(pinned.leaf, 'hex'));
    expect(hex(merkleRoot(leaves))).toBe(PINNED_ROOT);
  });
});
