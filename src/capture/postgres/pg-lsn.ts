/** A PostgreSQL log sequence number (`16/B374D848`) as a number of bytes, to compare and subtract. */
export function lsnToBigInt(lsn: string): bigint {
  const slash = lsn.indexOf('/');
  if (slash <= 0 || !/^[0-9A-Fa-f]+\/[0-9A-Fa-f]+$/.test(lsn)) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${lsn.slice(0, slash)}`) << 32n) | BigInt(`0x${lsn.slice(slash + 1)}`);
}

/** The LSN in PostgreSQL's own form (`16/B374D848`, no leading zeros). */
export function lsnFromBigInt(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** The LSN written as PostgreSQL writes it (the decoder pads with zeros). */
export function normalizeLsn(lsn: string): string {
  return lsnFromBigInt(lsnToBigInt(lsn));
}

export function laterLsn(a: string, b: string): string {
  return lsnToBigInt(a) >= lsnToBigInt(b) ? a : b;
}
