import { ActivityLogError } from '../../core/errors.js';

/**
 * Where a transaction ends in the binary log. `file` and `offset` always (the end of its commit
 * event); `gtid` is the server's whole GTID position after it (MariaDB `domain-server-seq,…`, or a
 * MySQL GTID set) when the server keeps GTIDs and the stream was started from a known one. A
 * resume prefers `gtid`: it survives binlog purges and a move to a replica.
 */
export interface BinlogPosition {
  readonly file: string;
  readonly offset: number;
  readonly gtid?: string;
}

/** Where a reader starts: after a saved position, at the end of the binlog now, or its oldest file. */
export type BinlogStart = BinlogPosition | 'now' | 'earliest';

/** The text a position is saved as (one JSON object, readable by a person). */
export function formatBinlogPosition(position: BinlogPosition): string {
  return JSON.stringify(
    position.gtid === undefined
      ? { file: position.file, offset: position.offset }
      : { gtid: position.gtid, file: position.file, offset: position.offset },
  );
}

/** Reads a position saved by {@link formatBinlogPosition}. */
export function parseBinlogPosition(text: string): BinlogPosition {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const { file, offset, gtid } = record;
  if (
    typeof file !== 'string' ||
    file === '' ||
    typeof offset !== 'number' ||
    !Number.isSafeInteger(offset) ||
    offset < 4 ||
    (gtid !== undefined && (typeof gtid !== 'string' || !/^[0-9A-Za-z:,\- _]*$/.test(gtid)))
  ) {
    throw new ActivityLogError(
      'VALIDATION_FAILED',
      `binlog position ${JSON.stringify(text)} is not {"file": "<binlog file>", "offset": <4 or more>, "gtid"?: "<GTID position>"}`,
      { field: 'position' },
    );
  }
  return gtid === undefined ? { file, offset } : { file, offset, gtid: gtid as string };
}
