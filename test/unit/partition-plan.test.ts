import { describe, expect, it } from 'vitest';
import { missingPartitions, partitionName, plannedPartitions } from '../../src/store/partition-plan.js';

describe('partition plan', () => {
  it('names partitions after their period: pYYYYMM by month, pYYYYMMDD by day', () => {
    expect(partitionName(new Date('2026-12-01T00:00:00Z'), 'month')).toBe('p202612');
    expect(partitionName(new Date('2026-12-03T00:00:00Z'), 'day')).toBe('p20261203');
  });

  it('plans the current period and the periods ahead, across a year end', () => {
    const planned = plannedPartitions(new Date('2026-12-15T10:00:00Z'), 'month', 2);
    expect(planned.map((range) => [range.name, range.from.toISOString(), range.to.toISOString()])).toEqual([
      ['p202612', '2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
      ['p202701', '2027-01-01T00:00:00.000Z', '2027-02-01T00:00:00.000Z'],
      ['p202702', '2027-02-01T00:00:00.000Z', '2027-03-01T00:00:00.000Z'],
    ]);
    const days = plannedPartitions(new Date('2028-02-28T23:59:59Z'), 'day', 2);
    expect(days.map((range) => range.name)).toEqual(['p20280228', 'p20280229', 'p20280301']);
  });

  it('fills every period from the last partition up to the planned ones, with no gap', () => {
    const missing = missingPartitions(
      new Date('2026-09-01T00:00:00Z'),
      new Date('2026-12-15T00:00:00Z'),
      'month',
      1,
    );
    expect(missing.map((range) => range.name)).toEqual([
      'p202609',
      'p202610',
      'p202611',
      'p202612',
      'p202701',
    ]);
    expect(
      missingPartitions(new Date('2027-02-01T00:00:00Z'), new Date('2026-12-15T00:00:00Z'), 'month', 1),
    ).toEqual([]);
  });
});
