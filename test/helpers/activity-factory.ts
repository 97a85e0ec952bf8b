import type { LogInput } from '../../src/core/activity.js';
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
