/** Typed events for metrics and alerts. */
export interface SpoolEvents {
  spooled: [event: { readonly count: number; readonly bytes: number }];
  /** Activities that did not fit under `maxBytes`; the data already spooled is untouched. */
  dropped: [event: { readonly count: number; readonly totalBytes: number; readonly maxBytes: number }];
  replayed: [event: { readonly count: number; readonly segment: string }];
  corruptRecordSkipped: [event: { readonly segment: string; readonly count: number }];
  /** A segment of a dead process was taken over for replay. */
  claimed: [event: { readonly segment: string; readonly from: string }];
  /** Activities the destination refused as bad data, kept in `rejected.ndjson` instead of replayed forever. */
  rejected: [event: { readonly count: number; readonly error: unknown }];
}
