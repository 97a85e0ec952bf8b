import type { Activity, LogInput } from '../../src/core/activity.js';
import { defaultModelResolver } from '../../src/core/activity.js';
import { type BuildOptions, buildActivity } from '../../src/core/build-activity.js';
import { newActivityId } from '../../src/core/ids.js';

/**
 * A `log()` input with every field filled, distinct per `index` (id, subject id, url, a property),
 * so a stored row can be matched back to the input it came from. `overrides` win.
 */
export function activityInput(index: number, overrides: Partial<LogInput> = {}): LogInput {
  return {
    id: newActivityId(),
    description: `updated order ${index}`,
    logName: 'orders',
    event: 'updated',
    subject: { type: 'Order', id: index },
    causer: { type: 'User', id: 7 },
    properties: { attributes: { total: 10.5, n: index }, old: { total: 9.99 }, note: 'ünïcødé ✓' },
    ipAddress: '203.0.113.9',
    url: `https://shop.example/orders/${index}`,
    method: 'PATCH',
    userAgent: 'test-agent/1.0',
    ...overrides,
  };
}

/** `count` inputs from {@link activityInput}, indexes `offset`, `offset + 1`, … */
export function activityInputs(count: number, offset = 0, overrides: Partial<LogInput> = {}): LogInput[] {
  return Array.from({ length: count }, (_, i) => activityInput(offset + i, overrides));
}

const BUILD_OPTIONS: BuildOptions = { resolveModel: defaultModelResolver, isSecretKey: () => false };

/** `input` built as `log()` builds it (default model resolver), without request context or redaction. */
export function builtActivity(input: LogInput): Activity {
  return buildActivity(input, undefined, BUILD_OPTIONS);
}

/** The batch every {@link builtActivities} activity belongs to, so that field is filled too. */
export const SAMPLE_BATCH_UUID = '0190a0b0-0000-7000-8000-000000000001';

/**
 * `count` built activities from {@link activityInputs}, indexes `offset`, `offset + 1`, …, every
 * field filled (batch uuid included) and created now, in order.
 */
export function builtActivities(count: number, offset = 0, overrides: Partial<LogInput> = {}): Activity[] {
  return activityInputs(count, offset, { batchUuid: SAMPLE_BATCH_UUID, ...overrides }).map(builtActivity);
}

/**
 * An Activity as a store reads it back, with only what is required set (every nullable field null,
 * created now); `overrides` win. For tests that need exact stored values such as `createdAt`.
 */
export function storedActivity(overrides: Partial<Activity> = {}): Activity {
  return Object.freeze({
    id: newActivityId(),
    logName: 'default',
    description: 'did something',
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
    createdAt: new Date(),
    ...overrides,
  });
}
