/**
 * Keys whose values are replaced by `[REDACTED]` unless `ACTIVITY_LOG_REDACT_KEYS` says otherwise,
 * matched as `secretKeyMatcher` describes: the long names anywhere in a key, the short ones
 * (`auth`, `pwd`, `jwt`, `dsn`) as a whole word, and `credentials.key` as a key with the word `key`
 * anywhere inside `credentials`.
 */
export const DEFAULT_REDACT_KEYS: readonly string[] = Object.freeze([
  'password',
  'passwd',
  'pwd',
  'token',
  'secret',
  'authorization',
  'auth',
  'bearer',
  'cookie',
  'api_key',
  'private_key',
  'session_id',
  'jwt',
  'dsn',
  'credentials.key',
]);
