import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import {
  type Activity,
  CREATED_AT_MAX_MS,
  DEFAULT_REDACT_KEYS,
  defaultModelResolver,
  type LogInput,
} from '../../src/core/activity.js';
import { buildActivity } from '../../src/core/build-activity.js';
import { isActivityLogError } from '../../src/core/errors.js';
import { newActivityId } from '../../src/core/ids.js';
import { secretKeyMatcher } from '../../src/core/redact.js';
import { verifyChain } from '../../src/integrity/verify-chain.js';
import type { ActivityStore } from '../../src/store/activity-store.js';
import { createStore } from '../../src/store/create-store.js';
import { openSealReader } from '../../src/store/seal-reader.js';
import { serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { migratedStore, storeTargets } from '../helpers/store-targets.js';
import { test as it } from '../helpers/test-context.js';

/**
 * Whatever log() accepts, every dialect stores and reads back equal; whatever it refuses, it
 * refuses as VALIDATION_FAILED naming a field. Random activities, hostile on purpose, go through
 * the real buildActivity and into each store with insertMany.
 */

const RUNS_PER_DIALECT = 250;
const MAX_ACTIVITIES_PER_RUN = 12;
/** Runs of the sealed variant: each leaf made from the activity must be the leaf of the row read back. */
const SEALED_RUNS_PER_DIALECT = 60;

const sqliteDir = mkdtempSync(join(tmpdir(), 'activity-roundtrip-'));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

/** Every field name log() may report, property paths (`properties.a[2]`) included. */
const FIELD =
  /^(description|logName|event|(subject|causer)(\.type|\.id)?|properties([.[].*)?|batchUuid|ipAddress|url|method|userAgent|createdAt|id)$/s;

const BUILD_OPTIONS = {
  resolveModel: defaultModelResolver,
  isSecretKey: secretKeyMatcher(DEFAULT_REDACT_KEYS),
};

/** Code units that databases and drivers treat specially; NUL is refused, so it comes rarely. */
const HOSTILE_UNIT = fc.constantFrom(
  '\ud800',
  '\udbff',
  '\udc00',
  '\udfff',
  '\ufffd',
  '\uffff',
  '\ufeff',
  '\u2028',
  '\u00df',
  '\u0130',
  '\ufb03',
  '😀',
  '\u{10ffff}',
  ' ',
  '\t',
  '\n',
  '\r',
  "'",
  '"',
  '\\',
  '%',
  '_',
  '`',
  ':',
  '/*',
  '\u001f',
  '\u007f',
);
const UNIT = fc.oneof(
  { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }), weight: 600 },
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 300 },
  { arbitrary: HOSTILE_UNIT, weight: 200 },
  { arbitrary: fc.constant('\u0000'), weight: 2 },
);

const text = (maxLength: number, minLength = 0) => fc.string({ unit: UNIT, minLength, maxLength });

/** Mostly short text, sometimes text right around a column's limit. */
const nearLimit = (limit: number) =>
  fc.oneof(
    { arbitrary: text(24, 1), weight: 12 },
    {
      arbitrary: fc
        .tuple(text(8, 1), fc.integer({ min: limit - 8, max: limit + 2 }))
        .map(([seed, length]) => seed.repeat(length).slice(0, length)),
      weight: 1,
    },
  );

const EDGE_NUMBERS = fc.constantFrom(
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  -0,
  0.1,
  0.30000000000000004,
  1e-7,
  1e21,
  1e300,
  2 ** 53 + 2,
  2 ** 53,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  4503599627370495.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
);

const leaf: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: text(16), weight: 80 },
  { arbitrary: fc.double({ min: -1e15, max: 1e15, noNaN: true }), weight: 40 },
  { arbitrary: fc.integer(), weight: 40 },
  { arbitrary: fc.boolean(), weight: 20 },
  { arbitrary: fc.constantFrom(null, undefined), weight: 20 },
  { arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), weight: 10 },
  {
    arbitrary: fc.date({ min: new Date(0), max: new Date(CREATED_AT_MAX_MS), noInvalidDate: true }),
    weight: 10,
  },
  { arbitrary: EDGE_NUMBERS, weight: 3 },
  { arbitrary: fc.double(), weight: 2 },
);

const propertyKey = fc.oneof(
  { arbitrary: text(10), weight: 12 },
  {
    arbitrary: fc.constantFrom('__proto__', 'password', 'api_token', 'toJSON', 'constructor', ''),
    weight: 1,
  },
);

const { json } = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small' },
    { arbitrary: leaf, weight: 4 },
    { arbitrary: fc.array(tie('json'), { maxLength: 4 }), weight: 1 },
    { arbitrary: fc.dictionary(propertyKey, tie('json'), { maxKeys: 4 }), weight: 1 },
  ),
}));

/** Nesting around MariaDB's limit: `levels` containers counting the properties object itself. */
const deepProperties = fc
  .tuple(fc.integer({ min: 28, max: 33 }), fc.array(fc.boolean(), { minLength: 34, maxLength: 34 }), leaf)
  .map(([levels, useArray, value]) => {
    let inner: unknown = {};
    for (let level = levels; level > 1; level--) inner = useArray[level] ? [inner] : { k: inner };
    return { deep: inner, value };
  });

const properties = fc.oneof(
  { arbitrary: fc.dictionary(propertyKey, json, { maxKeys: 6 }), weight: 12 },
  { arbitrary: deepProperties, weight: 2 },
  { arbitrary: fc.array(leaf, { minLength: 100, maxLength: 300 }).map((wide) => ({ wide })), weight: 1 },
  {
    arbitrary: fc.integer({ min: 65_500, max: 65_540 }).map((length) => ({ blob: 'b'.repeat(length - 11) })),
    weight: 1,
  },
);

const zoneId = fc.string({
  unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.:'),
  minLength: 1,
  maxLength: 16,
});
const ipAddress = fc.oneof(
  { arbitrary: fc.ipV4(), weight: 4 },
  { arbitrary: fc.ipV6(), weight: 4 },
  { arbitrary: fc.tuple(fc.ipV6(), zoneId).map(([ip, zone]) => `${ip}%${zone}`), weight: 2 },
  { arbitrary: fc.ipV4Extended(), weight: 1 },
  {
    arbitrary: fc.constantFrom(
      'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255',
      '::ffff:192.168.100.200',
      'FE80::1%eth0',
      `fe80::1%${'z'.repeat(37)}`,
      `fe80::1%${'z'.repeat(38)}`,
      `${'ffff:'.repeat(7)}ffff%a`,
      ' 10.0.0.1',
      'not-an-ip',
    ),
    weight: 1,
  },
);

const modelRef = fc.record({
  type: nearLimit(191),
  id: fc.oneof(
    { arbitrary: nearLimit(191), weight: 6 },
    { arbitrary: fc.integer({ min: 0, max: 2 ** 31 }), weight: 3 },
    { arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 53, -1, 0), weight: 1 },
  ),
});

const method = fc.oneof(
  {
    arbitrary: fc.constantFrom('get', 'POST', 'patch', 'ß'.repeat(8), 'ß'.repeat(9), 'ﬃ'.repeat(5)),
    weight: 3,
  },
  { arbitrary: nearLimit(16), weight: 1 },
);

const createdAt = fc.oneof(
  fc.date({ min: new Date(0), max: new Date(CREATED_AT_MAX_MS), noInvalidDate: true }),
  fc.integer({ min: -1000, max: CREATED_AT_MAX_MS + 1000 }),
  fc.constantFrom('2024-02-29T23:59:59.999Z', '2024-01-01T10:00:00+02:00', '9999-12-31T23:59:59.999Z'),
);

const logInput: fc.Arbitrary<LogInput> = fc.record(
  {
    description: fc.oneof(
      { arbitrary: text(40, 1), weight: 12 },
      { arbitrary: nearLimit(4096), weight: 1 },
      { arbitrary: fc.constantFrom(':properties.value', ':subject.id by :causer.type', ' '), weight: 1 },
    ),
    logName: nearLimit(191),
    event: fc.option(nearLimit(191)),
    subject: fc.option(modelRef),
    causer: fc.option(modelRef),
    properties: fc.option(properties),
    batchUuid: fc.option(
      fc.oneof({ arbitrary: fc.uuid(), weight: 12 }, { arbitrary: fc.constant('nope'), weight: 1 }),
    ),
    ipAddress: fc.option(ipAddress),
    url: fc.option(nearLimit(2048)),
    method: fc.option(method),
    userAgent: fc.option(nearLimit(1024)),
    createdAt,
  },
  { requiredKeys: ['description'] },
);

/**
 * Each run gives its activities fresh ids (upper-case ones are accepted too), so a run replayed
 * while fast-check shrinks a failure never meets the rows of an earlier one.
 */
const withFreshIds = (inputs: readonly (readonly [LogInput, boolean])[]): LogInput[] =>
  inputs.map(([input, upperCaseId]) => {
    const id = newActivityId();
    return { ...input, id: upperCaseId ? id.toUpperCase() : id };
  });

/**
 * The rows with these ids, in id order. Rows of earlier runs at the latest possible `created_at`
 * stay (prune stops just before it), so the others are left out by id.
 */
async function storedRows(store: ActivityStore, ids: ReadonlySet<string>): Promise<Activity[]> {
  const rows: Activity[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.query({ limit: 500, cursor });
    rows.push(...page.data.filter((row) => ids.has(row.id)));
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function byId(activities: readonly Activity[]): Activity[] {
  return [...activities].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

for (const target of storeTargets(sqliteDir)) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`what log() accepts is stored and read back equal: ${target.name}`, () => {
    it('stores and reads back every accepted random activity, and refuses the rest with a field', async ({
      defer,
    }) => {
      const { store } = await migratedStore(defer, target, 'roundtrip');
      let accepted = 0;
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(logInput, fc.boolean()), { minLength: 1, maxLength: MAX_ACTIVITIES_PER_RUN }),
          async (generated) => {
            const built: Activity[] = [];
            for (const input of withFreshIds(generated)) {
              try {
                built.push(buildActivity(input, undefined, BUILD_OPTIONS));
              } catch (error) {
                if (!isActivityLogError(error)) throw error;
                expect(error.code).toBe('VALIDATION_FAILED');
                expect(error.field).toMatch(FIELD);
                expect(error.message.startsWith(`${error.field} `)).toBe(true);
                refused++;
              }
            }
            try {
              expect(await store.insertMany(built)).toBe(built.length);
              const ids = new Set(built.map((activity) => activity.id));
              expect(await storedRows(store, ids)).toEqual(byId(built));
            } finally {
              await store.prune({ before: new Date(CREATED_AT_MAX_MS), chunkSize: 1000 });
            }
            accepted += built.length;
          },
        ),
        { numRuns: RUNS_PER_DIALECT },
      );
      // The generators must exercise both paths, or the property says little.
      expect(accepted).toBeGreaterThan(RUNS_PER_DIALECT);
      expect(refused).toBeGreaterThan(0);
    });

    it('seals every accepted random activity so that its row read back verifies', async () => {
      const table = `roundtrip_sealed_${uniqueSuffix()}`;
      const config = loadConfig({
        env: { DATABASE_URL: target.databaseUrl(table), ACTIVITY_LOG_TABLE: table, ACTIVITY_LOG_SEAL: 'on' },
      });
      const store = createStore(config.database);
      let stored = 0;
      try {
        await store.migrate();
        await fc.assert(
          fc.asyncProperty(
            fc.array(logInput, { minLength: 1, maxLength: MAX_ACTIVITIES_PER_RUN }),
            async (inputs) => {
              const built: Activity[] = [];
              for (const input of withFreshIds(inputs.map((input) => [input, false] as const))) {
                try {
                  built.push(buildActivity(input, undefined, BUILD_OPTIONS));
                } catch (error) {
                  if (!isActivityLogError(error)) throw error;
                }
              }
              stored += await store.insertMany(built);
            },
          ),
          { numRuns: SEALED_RUNS_PER_DIALECT },
        );
        const reader = openSealReader(config.database);
        try {
          const report = await verifyChain(reader.groups(1), {
            fromSeq: 1,
            anchor: null,
            erasableFields: config.database.erasableFields,
            unsealedRows: await reader.countUnsealed(),
          });
          expect(report.problems).toEqual([]);
          expect(report).toMatchObject({ intact: true, rows: stored, unsealedRows: 0 });
          expect(stored).toBeGreaterThan(SEALED_RUNS_PER_DIALECT);
        } finally {
          await reader.close();
        }
      } finally {
        await store.close();
        await target.drop(table);
      }
    });
  });
}
