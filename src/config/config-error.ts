import { ActivityLogError } from '../core/errors.js';

/** Values of these variables are never echoed: they hold, or may hold, credentials. */
const HIDDEN_VALUE = /TOKEN|PASSWORD|URL|WEBHOOK|CAPTURE_SOURCE/i;

/** The one line that stops the program: the variable (or option), the value and what is allowed. */
export function configError(name: string, value: unknown, allowed: string): ActivityLogError {
  const shown = HIDDEN_VALUE.test(name) ? '(hidden)' : JSON.stringify(value);
  return new ActivityLogError('CONFIG_INVALID', `${name}=${shown} is not allowed: ${allowed}`, {
    field: name,
  });
}
