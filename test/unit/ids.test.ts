import { describe, expect, it } from 'vitest';
import { newActivityId } from '../../src/core/ids.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('newActivityId', () => {
  it('makes RFC 9562 version-7 UUIDs carrying the millisecond timestamp', () => {
    const now = Date.UTC(2026, 10, 28, 12, 0, 0, 123);
    const id = newActivityId(now);
    expect(id).toMatch(UUID_V7);
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(now);
  });

  it('is unique and strictly increasing across many calls in the same millisecond', () => {
    const ids: string[] = [];
    for (let i = 0; i < 100_000; i++) ids.push(newActivityId());
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    for (const id of ids.slice(0, 1000)) expect(id).toMatch(UUID_V7);
  });

  it('stays monotonic when the clock goes backwards', () => {
    const later = newActivityId(Date.now() + 10_000);
    const earlier = newActivityId(Date.now());
    expect(earlier > later).toBe(true);
  });
});
