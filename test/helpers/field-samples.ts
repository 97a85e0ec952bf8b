import type { Activity } from '../../src/core/activity.js';
import { CREATED_AT_MAX_MS } from '../../src/core/activity.js';
import { ACTIVITY_FIELDS, type ActivityFieldDefinition } from '../../src/core/activity-fields.js';
import { newActivityId } from '../../src/core/ids.js';

/** Which value each field gets: an ordinary one, the longest it may hold, or none where it may be empty. */
export type SampleShape = 'typical' | 'longest' | 'sparse';

const TYPICAL_PROPERTIES = Object.freeze({
  attributes: { total: 10.5, tags: ['a', 'b'], nested: { emoji: '😀👍🏽', cjk: '中文' } },
  old: { total: 9.99, flag: false, nothing: null },
  '键 🔑': [1, 2.25, -3e10, { x: 'y' }],
});

/** Text of exactly `units` UTF-16 units, with two-byte letters and an emoji at the end. */
function longText(units: number): string {
  return `${'é'.repeat(units - 2)}😀`;
}

function sampleValue(field: ActivityFieldDefinition, shape: SampleShape): unknown {
  if (shape === 'sparse' && field.nullable) return field.kind === 'json' ? {} : null;
  const longest = shape === 'longest';
  switch (field.kind) {
    case 'uuid':
      return newActivityId();
    case 'string':
      return longest && field.maxChars !== undefined
        ? longText(field.maxChars)
        : `${field.column} ü 😀 漢`.slice(0, field.maxChars);
    case 'text':
      // Two bytes per 'é': exactly the byte limit.
      return longest && field.maxBytes !== undefined
        ? 'é'.repeat(field.maxBytes / 2)
        : `Zoë updated ${field.column} 🚀 — 漢字かな한글 𝄞`;
    case 'json':
      return longest ? { ...TYPICAL_PROPERTIES, text: 'ü'.repeat(30_000) } : TYPICAL_PROPERTIES;
    case 'timestamp':
      return longest ? new Date(CREATED_AT_MAX_MS) : new Date('2024-12-31T23:59:59.999Z');
  }
}

/** An activity with a value in every field of the field table, shaped as asked. */
export function sampleActivity(shape: SampleShape): Activity {
  const activity: Record<string, unknown> = {};
  for (const field of ACTIVITY_FIELDS) activity[field.property] = sampleValue(field, shape);
  return Object.freeze(activity) as unknown as Activity;
}

/** One activity of each shape, with distinct times so a newest-first read returns them in this order. */
export function sampleActivities(): Activity[] {
  return (['longest', 'typical', 'sparse'] as const).map((shape, index) =>
    Object.freeze({
      ...sampleActivity(shape),
      createdAt: shape === 'longest' ? new Date(CREATED_AT_MAX_MS) : new Date(Date.UTC(2024, 11, 31 - index)),
    }),
  );
}

/** Asserts field by field, so a failure names the column that did not come back. */
export function fieldsOf(activity: Activity): Record<string, unknown> {
  const values = activity as unknown as Readonly<Record<string, unknown>>;
  return Object.fromEntries(ACTIVITY_FIELDS.map((field) => [field.column, values[field.property]]));
}
