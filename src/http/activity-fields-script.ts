import { CSV_FIELDS, FILTER_FIELDS } from '../core/activity-fields.js';

/** Where the backoffice's pages import the field lists from. */
export const ACTIVITY_FIELDS_SCRIPT_PATH = '/backoffice/assets/activity-fields.js';

/**
 * The field lists of the backoffice's log browser, as a JavaScript module made from the field
 * table, so a new filter or column shows up on the page without an edit there.
 *
 * - `FILTER_FIELDS`: the query API's exact-match filters in form order, `{ name, label, list? }`
 *   (`list` names a `<datalist>` of suggestions on the page).
 * - `DETAIL_FIELDS`: `[name, label]` pairs of the detail view, in export order; a `{ type, id }`
 *   reference is one entry named `subject` or `causer`.
 */
export function activityFieldsScript(): string {
  const filters = FILTER_FIELDS.map((field) => {
    const filter: { readonly label: string; readonly suggestions?: string } = field.filter;
    return filter.suggestions === undefined
      ? { name: field.column, label: filter.label }
      : { name: field.column, label: filter.label, list: filter.suggestions };
  });
  const details = CSV_FIELDS.flatMap((field) => {
    const label: string | undefined = 'label' in field ? field.label : undefined;
    if (label === undefined || field.kind === 'json') return [];
    return [['modelRef' in field ? field.modelRef.model : field.column, label]];
  });
  return [
    '// Made by the server from the activity field table.',
    `export const FILTER_FIELDS = ${JSON.stringify(filters)};`,
    `export const DETAIL_FIELDS = ${JSON.stringify(details)};`,
    '',
  ].join('\n');
}
