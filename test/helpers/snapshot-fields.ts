/** The numeric fields DESIGN lists for the `data` of the performance snapshot. */
export const SNAPSHOT_NUMBER_FIELDS = [
  'queue_size',
  'processing_rate',
  'error_rate',
  'total_processed',
  'pending_jobs',
  'failed_jobs',
  'memory_usage',
] as const;

/** Every field DESIGN lists for the `data` of the performance snapshot. */
export const SNAPSHOT_FIELDS = [...SNAPSHOT_NUMBER_FIELDS, 'circuit_breaker'] as const;
