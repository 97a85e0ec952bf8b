/** What only the spool speaks of; `dropped` and `rejected` are on its {@link Spool.bus}. */
export interface SpoolEvents {
  spooled: [event: { readonly count: number; readonly bytes: number }];
  replayed: [event: { readonly count: number; readonly segment: string }];
  corruptRecordSkipped: [event: { readonly segment: string; readonly count: number }];
  /** A segment of a dead process was taken over for replay. */
  claimed: [event: { readonly segment: string; readonly from: string }];
}
