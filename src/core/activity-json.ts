import type { Activity } from './activity.js';

/** An activity as plain JSON (queue jobs, spool records, HTTP): snake_case, `created_at` as ISO-8601. */
export interface ActivityJson {
  readonly id: string;
  readonly log_name: string;
  readonly description: string;
  readonly subject_type: string | null;
  readonly subject_id: string | null;
  readonly event: string | null;
  readonly causer_type: string | null;
  readonly causer_id: string | null;
  readonly properties: Readonly<Record<string, unknown>>;
  readonly batch_uuid: string | null;
  readonly ip_address: string | null;
  readonly url: string | null;
  readonly method: string | null;
  readonly user_agent: string | null;
  readonly created_at: string;
}

export function activityToJson(activity: Activity): ActivityJson {
  return {
    id: activity.id,
    log_name: activity.logName,
    description: activity.description,
    subject_type: activity.subjectType,
    subject_id: activity.subjectId,
    event: activity.event,
    causer_type: activity.causerType,
    causer_id: activity.causerId,
    properties: activity.properties,
    batch_uuid: activity.batchUuid,
    ip_address: activity.ipAddress,
    url: activity.url,
    method: activity.method,
    user_agent: activity.userAgent,
    created_at: activity.createdAt.toISOString(),
  };
}

/**
 * Rebuilds an activity from JSON this library wrote (a queue job, a spool record). It was validated
 * when it was logged, so only the shape is restored here, not re-checked.
 */
export function activityFromJson(json: ActivityJson): Activity {
  return Object.freeze({
    id: json.id,
    logName: json.log_name,
    description: json.description,
    subjectType: json.subject_type,
    subjectId: json.subject_id,
    event: json.event,
    causerType: json.causer_type,
    causerId: json.causer_id,
    properties: json.properties,
    batchUuid: json.batch_uuid,
    ipAddress: json.ip_address,
    url: json.url,
    method: json.method,
    userAgent: json.user_agent,
    createdAt: new Date(json.created_at),
  });
}
