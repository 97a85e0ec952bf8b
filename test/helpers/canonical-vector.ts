import type { Activity } from '../../src/core/activity.js';

/**
 * The activity of the canonical encoding's test vector (documented in
 * `src/core/canonical-encoding.ts`); the leaf and commitment vectors are made from it too.
 */
export const CANONICAL_VECTOR: Activity = Object.freeze({
  id: '0190a4f0-7c1e-7a3b-8c4d-5e6f70819a2b',
  logName: 'orders',
  description: 'updated order 42',
  subjectType: 'Order',
  subjectId: '42',
  event: 'updated',
  causerType: 'User',
  causerId: '7',
  properties: { old: { total: 9.99 }, attributes: { total: 10.5, note: 'é' } },
  batchUuid: '0190a4f0-0000-7000-8000-000000000001',
  ipAddress: '192.0.2.1',
  url: '/orders/42',
  method: 'PATCH',
  userAgent: 'curl/8.5',
  createdAt: new Date('2025-11-28T09:30:00.123Z'),
});
