/**
 * The columns that may be erased: every nullable column of the field table (erasure writes null
 * into them). Kept here as plain data so the configuration can check `ACTIVITY_LOG_ERASABLE_FIELDS`
 * without loading the field table; a unit test holds it equal to the field table's nullable columns.
 */
export const ERASABLE_COLUMNS = [
  'subject_type',
  'subject_id',
  'event',
  'causer_type',
  'causer_id',
  'properties',
  'batch_uuid',
  'ip_address',
  'url',
  'method',
  'user_agent',
] as const;

export type ErasableColumn = (typeof ERASABLE_COLUMNS)[number];

/**
 * Columns whose values a row's seal commits to by salted hash rather than by value, so that
 * erasing them (GDPR art. 17) leaves the seal verifiable, unless `ACTIVITY_LOG_ERASABLE_FIELDS`
 * says otherwise: the personal data an activity usually carries.
 */
export const DEFAULT_ERASABLE_FIELDS: readonly ErasableColumn[] = Object.freeze([
  'causer_id',
  'ip_address',
  'user_agent',
  'properties',
]);
