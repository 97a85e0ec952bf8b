/**
 * Columns whose values a row's seal commits to by salted hash rather than by value, so that
 * erasing them (GDPR art. 17) leaves the seal verifiable, unless `ACTIVITY_LOG_ERASABLE_FIELDS`
 * says otherwise: the personal data an activity usually carries.
 */
export const DEFAULT_ERASABLE_FIELDS: readonly string[] = Object.freeze([
  'causer_id',
  'ip_address',
  'user_agent',
  'properties',
]);
