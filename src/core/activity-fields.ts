/**
 * Every field of an activity, once. Types, the table's columns, insert parameters, row decoding,
 * the JSON codec, CSV columns, the HTTP schemas and the backoffice's field lists are all read
 * from {@link ACTIVITY_FIELDS}; adding a column is one entry here and one migration step.
 */

/** The kind of value a field holds, as TypeScript and JSON see it. */
export type FieldKind = 'uuid' | 'string' | 'text' | 'json' | 'timestamp';

/** The SQL type a column gets; each dialect maps a column type to its own SQL. */
export type ColumnType =
  | 'uuid'
  | 'name'
  | 'text'
  | 'json'
  | 'ipAddress'
  | 'url'
  | 'method'
  | 'userAgent'
  | 'timestamp';

/**
 * What `POST /api/activities` accepts for a field: `name` a string or null, `text` a required
 * string, `modelId` a string or a number, `object` a JSON object, `time` an ISO-8601 string or
 * epoch milliseconds, `uuid` a UUID string.
 */
export type IngestType = 'name' | 'text' | 'modelId' | 'object' | 'time' | 'uuid';

/** How the activity gets the field from `log()`'s input. */
export type FieldInput =
  /** Built by `buildActivity` by its own rules (defaults, context, redaction, model resolving). */
  | 'builder'
  /** Taken from `LogInput` under the property's name: a string of at most `maxChars`, or null. */
  | 'name';

export interface ActivityFieldDefinition {
  /** The name on {@link Activity} and `LogInput` (camelCase). */
  readonly property: string;
  /** The column, and the name in HTTP bodies, query strings and JSON (snake_case). */
  readonly column: string;
  readonly kind: FieldKind;
  readonly columnType: ColumnType;
  readonly nullable: boolean;
  /** Longest text in UTF-16 units (what `string.length` counts). */
  readonly maxChars?: number;
  /** Longest text in UTF-8 bytes (of the JSON text, for `json`). */
  readonly maxBytes?: number;
  /** A SQL string literal for the column's DEFAULT. */
  readonly defaultValue?: string;
  /** Half of a `{ type, id }` reference (`subject`, `causer`), given to `log()` as one object. */
  readonly modelRef?: { readonly model: 'subject' | 'causer'; readonly part: 'type' | 'id' };
  /** Stored upper-cased, so a filter on it is upper-cased too. */
  readonly upperCase?: boolean;
  readonly input: FieldInput;
  readonly ingest: { readonly type: IngestType; readonly position: number };
  /** Position among the query API's exact-match filters and the backoffice's filter form. */
  readonly filter?: { readonly position: number; readonly label: string; readonly suggestions?: string };
  /** Position of the column in a CSV export (and of the field in the backoffice's detail view). */
  readonly csv: number;
  /** The backoffice's label in the detail view; absent for the second half of a model reference. */
  readonly label?: string;
  /**
   * The schema version whose migration created the column. A migration creates the columns of its
   * own version, so a field added later never changes what an earlier step did.
   */
  readonly since: number;
}

/** In column order: the order of CREATE TABLE, of every INSERT's parameters and of JSON keys. */
export const ACTIVITY_FIELDS = Object.freeze([
  {
    property: 'id',
    column: 'id',
    kind: 'uuid',
    columnType: 'uuid',
    nullable: false,
    input: 'builder',
    ingest: { type: 'uuid', position: 15 },
    csv: 1,
    label: 'Id',
    since: 1,
  },
  {
    property: 'logName',
    column: 'log_name',
    kind: 'string',
    columnType: 'name',
    nullable: false,
    maxChars: 191,
    defaultValue: 'default',
    input: 'builder',
    ingest: { type: 'name', position: 2 },
    filter: { position: 1, label: 'Log name' },
    csv: 3,
    label: 'Log',
    since: 1,
  },
  {
    property: 'description',
    column: 'description',
    kind: 'text',
    columnType: 'text',
    nullable: false,
    maxBytes: 4096,
    input: 'builder',
    ingest: { type: 'text', position: 1 },
    csv: 5,
    label: 'Description',
    since: 1,
  },
  {
    property: 'subjectType',
    column: 'subject_type',
    kind: 'string',
    columnType: 'name',
    nullable: true,
    maxChars: 191,
    modelRef: { model: 'subject', part: 'type' },
    input: 'builder',
    ingest: { type: 'name', position: 4 },
    filter: { position: 3, label: 'Subject type' },
    csv: 6,
    label: 'Subject',
    since: 1,
  },
  {
    property: 'subjectId',
    column: 'subject_id',
    kind: 'string',
    columnType: 'name',
    nullable: true,
    maxChars: 191,
    modelRef: { model: 'subject', part: 'id' },
    input: 'builder',
    ingest: { type: 'modelId', position: 5 },
    filter: { position: 4, label: 'Subject id' },
    csv: 7,
    since: 1,
  },
  {
    property: 'event',
    column: 'event',
    kind: 'string',
    columnType: 'name',
    nullable: true,
    maxChars: 191,
    input: 'builder',
    ingest: { type: 'name', position: 3 },
    filter: { position: 2, label: 'Event', suggestions: 'events' },
    csv: 4,
    label: 'Event',
    since: 1,
  },
  {
    property: 'causerType',
    column: 'causer_type',
    kind: 'string',
    columnType: 'name',
    nullable: true,
    maxChars: 191,
    modelRef: { model: 'causer', part: 'type' },
    input: 'builder',
    ingest: { type: 'name', position: 6 },
    filter: { position: 5, label: 'Causer type' },
    csv: 8,
    label: 'Causer',
    since: 1,
  },
  {
    property: 'causerId',
    column: 'causer_id',
    kind: 'string',
    columnType: 'name',
    nullable: true,
    maxChars: 191,
    modelRef: { model: 'causer', part: 'id' },
    input: 'builder',
    ingest: { type: 'modelId', position: 7 },
    filter: { position: 6, label: 'Causer id' },
    csv: 9,
    since: 1,
  },
  {
    property: 'properties',
    column: 'properties',
    kind: 'json',
    columnType: 'json',
    nullable: true,
    maxBytes: 65_536,
    input: 'builder',
    ingest: { type: 'object', position: 8 },
    csv: 15,
    since: 1,
  },
  {
    property: 'batchUuid',
    column: 'batch_uuid',
    kind: 'uuid',
    columnType: 'uuid',
    nullable: true,
    maxChars: 36,
    input: 'builder',
    ingest: { type: 'name', position: 9 },
    filter: { position: 10, label: 'Batch' },
    csv: 10,
    label: 'Batch',
    since: 1,
  },
  {
    property: 'ipAddress',
    column: 'ip_address',
    kind: 'string',
    columnType: 'ipAddress',
    nullable: true,
    // The longest IPv6 text (with an embedded IPv4 address) is 45.
    maxChars: 45,
    input: 'builder',
    ingest: { type: 'name', position: 10 },
    filter: { position: 7, label: 'IP address' },
    csv: 11,
    label: 'IP address',
    since: 1,
  },
  {
    property: 'url',
    column: 'url',
    kind: 'string',
    columnType: 'url',
    nullable: true,
    maxChars: 2048,
    input: 'builder',
    ingest: { type: 'name', position: 11 },
    filter: { position: 8, label: 'URL' },
    csv: 13,
    label: 'URL',
    since: 1,
  },
  {
    property: 'method',
    column: 'method',
    kind: 'string',
    columnType: 'method',
    nullable: true,
    maxChars: 16,
    upperCase: true,
    input: 'builder',
    ingest: { type: 'name', position: 12 },
    filter: { position: 9, label: 'Method', suggestions: 'methods' },
    csv: 12,
    label: 'Method',
    since: 1,
  },
  {
    property: 'userAgent',
    column: 'user_agent',
    kind: 'string',
    columnType: 'userAgent',
    nullable: true,
    maxChars: 1024,
    input: 'builder',
    ingest: { type: 'name', position: 13 },
    csv: 14,
    label: 'User agent',
    since: 1,
  },
  {
    property: 'createdAt',
    column: 'created_at',
    kind: 'timestamp',
    columnType: 'timestamp',
    nullable: false,
    input: 'builder',
    ingest: { type: 'time', position: 14 },
    csv: 2,
    label: 'Time (UTC)',
    since: 1,
  },
] as const satisfies readonly ActivityFieldDefinition[]);

/** One entry of {@link ACTIVITY_FIELDS}, with its literal types. */
export type ActivityField = (typeof ACTIVITY_FIELDS)[number];

/** The TypeScript value of a field of this kind. */
type KindValue<K extends FieldKind> = K extends 'json'
  ? Readonly<Record<string, unknown>>
  : K extends 'timestamp'
    ? Date
    : string;

/** The JSON value of a field of this kind. */
type KindJson<K extends FieldKind> = K extends 'json' ? Readonly<Record<string, unknown>> : string;

/** `properties` is nullable as a column but never null on an activity: no properties are `{}`. */
type OrNull<F extends ActivityField, V> = F['nullable'] extends true
  ? F['kind'] extends 'json'
    ? V
    : V | null
  : V;

/** An activity's values by property name, as {@link ACTIVITY_FIELDS} declares them. */
export type ActivityValues = {
  readonly [F in ActivityField as F['property']]: OrNull<F, KindValue<F['kind']>>;
};

/** An activity's values by column name, as JSON carries them (`created_at` as ISO-8601). */
export type ActivityJsonValues = {
  readonly [F in ActivityField as F['column']]: OrNull<F, KindJson<F['kind']>>;
};

/** The fields `log()` takes as given, without rules of their own. */
export type PlainInputField = Extract<ActivityField, { readonly input: 'name' }>;

/** The part of `LogInput` read straight from the field table. */
export type PlainInputValues = {
  readonly [F in PlainInputField as F['property']]?: string | null | undefined;
};

/** A field the query API filters on by exact match. */
export type FilterField = Extract<ActivityField, { readonly filter: object }>;

/** The exact-match filters of the query API, by property name. */
export type FilterValues = {
  readonly [F in FilterField as F['property']]?: string | undefined;
};

export type ActivityProperty = ActivityField['property'];
export type ActivityColumnName = ActivityField['column'];

function byPosition<T>(fields: readonly T[], position: (field: T) => number): readonly T[] {
  return Object.freeze([...fields].sort((a, b) => position(a) - position(b)));
}

/** The query API's exact-match filters, in the order the API and the form list them. */
export const FILTER_FIELDS: readonly FilterField[] = byPosition(
  ACTIVITY_FIELDS.filter((field): field is FilterField => 'filter' in field),
  (field) => field.filter.position,
);

/** The columns of a CSV export, in order. */
export const CSV_FIELDS: readonly ActivityField[] = byPosition(ACTIVITY_FIELDS, (field) => field.csv);

/** What `POST /api/activities` accepts, in the order its errors list them. */
export const INGEST_FIELDS: readonly ActivityField[] = byPosition(
  ACTIVITY_FIELDS,
  (field) => field.ingest.position,
);

/** Fields `log()` copies from its input after checking the length. */
export const PLAIN_INPUT_FIELDS: readonly (ActivityFieldDefinition & { readonly maxChars: number })[] =
  ACTIVITY_FIELDS.filter(
    (field): field is ActivityField & { readonly maxChars: number } => (field.input as FieldInput) === 'name',
  );

/** Each field by its property name. */
export const FIELD_BY_PROPERTY: ReadonlyMap<string, ActivityField> = new Map(
  ACTIVITY_FIELDS.map((field) => [field.property, field]),
);

type WithMaxChars = Extract<ActivityField, { readonly maxChars: number }>;
type WithMaxBytes = Extract<ActivityField, { readonly maxBytes: number }>;

/** The longest text a field holds, in UTF-16 units. */
export function maxCharsOf(property: WithMaxChars['property']): number {
  return (FIELD_BY_PROPERTY.get(property) as WithMaxChars).maxChars;
}

/** The longest text a field holds, in UTF-8 bytes. */
export function maxBytesOf(property: WithMaxBytes['property']): number {
  return (FIELD_BY_PROPERTY.get(property) as WithMaxBytes).maxBytes;
}
