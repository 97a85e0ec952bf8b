import { describe, expect, it } from 'vitest';
import { DEFAULT_ERASABLE_FIELDS } from '../../src/config/default-erasable-fields.js';
import type { Activity } from '../../src/core/activity.js';
import {
  activityLeafHash,
  checkErasableFields,
  fieldCommitments,
  generateSalt,
} from '../../src/integrity/activity-leaf.js';
import { merkleRoot } from '../../src/integrity/merkle-tree.js';
import { nextSeal, type Seal } from '../../src/integrity/seal-hash.js';
import {
  type ChainReport,
  type SealGroup,
  type StoredSealedRow,
  verifyChain,
} from '../../src/integrity/verify-chain.js';
import { returnsInsertedRows, skipsLockedRows } from '../../src/store/mysql/mysql-dialect.js';
import { builtActivities } from '../helpers/activity-factory.js';

const ERASABLE = checkErasableFields(DEFAULT_ERASABLE_FIELDS);
const SEALED_AT = new Date('2025-11-28T09:30:00.123Z');

interface Chain {
  seals: Seal[];
  rows: StoredSealedRow[][];
}

/** `sizes.length` seals over fresh activities, `sizes[i]` rows each, as a store would write them. */
function chain(sizes: readonly number[]): Chain {
  const seals: Seal[] = [];
  const rows: StoredSealedRow[][] = [];
  let offset = 0;
  for (const size of sizes) {
    const activities = builtActivities(size, offset).sort((a, b) => (a.id < b.id ? -1 : 1));
    offset += size;
    const stored = activities.map((activity) => ({
      id: activity.id,
      activity,
      salt: generateSalt().toString('hex'),
      commitments: null,
    }));
    const leaves = stored.map((row) =>
      activityLeafHash(row.activity, { salt: Buffer.from(row.salt, 'hex'), erasableFields: ERASABLE }),
    );
    seals.push(
      nextSeal(seals.at(-1) ?? null, { root: merkleRoot(leaves), rowCount: size, sealedAt: SEALED_AT }),
    );
    rows.push(stored);
  }
  return { seals, rows };
}

async function* groupsOf(
  seals: readonly (Seal | null)[],
  rows: readonly StoredSealedRow[][],
  seqs?: number[],
) {
  for (const [index, seal] of seals.entries()) {
    const seq = seal?.seq ?? seqs![index]!;
    yield { seq, seal, rows: rows[index] ?? [] } satisfies SealGroup;
  }
}

function check(seals: readonly (Seal | null)[], rows: readonly StoredSealedRow[][], seqs?: number[]) {
  return verifyChain(groupsOf(seals, rows, seqs), {
    fromSeq: 1,
    anchor: null,
    erasableFields: ERASABLE,
    unsealedRows: 0,
  });
}

const kinds = (report: ChainReport) => report.problems.map((problem) => [problem.kind, problem.seq]);

describe('verifyChain', () => {
  it('finds an untouched chain intact and reports its head', async () => {
    const { seals, rows } = chain([3, 1, 4]);
    const report = await check(seals, rows);
    expect(report).toMatchObject({ intact: true, seals: 3, rows: 8, problems: [], moreProblems: 0 });
    expect(report.head).toEqual({ seq: 3, hash: seals[2]!.hash.toString('hex'), totalRows: 8 });
  });

  it('names a changed row of a seal of one row, and only the seal of a larger one', async () => {
    const { seals, rows } = chain([1, 3]);
    const changed = (row: StoredSealedRow): StoredSealedRow => ({
      ...row,
      activity: { ...(row.activity as Activity), description: 'changed' },
    });
    rows[0]![0] = changed(rows[0]![0]!);
    rows[1]![1] = changed(rows[1]![1]!);
    const report = await check(seals, rows);
    expect(kinds(report)).toEqual([
      ['row-altered', 1],
      ['row-altered', 2],
    ]);
    expect(report.problems[0]!.ids).toEqual([rows[0]![0]!.id]);
    expect(report.problems[1]!.message).toMatch(/^a row of seal 2 does not match its seal/);
  });

  it('names the field whose stored commitment no longer matches its value', async () => {
    const { seals, rows } = chain([2]);
    const row = rows[0]![1]!;
    const salt = Buffer.from(row.salt!, 'hex');
    const commitments = fieldCommitments(row.activity!, salt, ERASABLE);
    rows[0]![1] = {
      ...row,
      commitments: JSON.stringify(commitments),
      activity: { ...(row.activity as Activity), ipAddress: '198.51.100.7' },
    };
    const report = await check(seals, rows);
    expect(report.problems).toEqual([
      expect.objectContaining({ kind: 'row-altered', seq: 1, ids: [row.id], fields: ['ip_address'] }),
    ]);
  });

  it('counts rows missing from a seal and names the one row too many', async () => {
    const { seals, rows } = chain([4, 4]);
    rows[0]!.splice(2, 1);
    const forged = { ...rows[1]![0]!, id: '01ffffff-0000-7000-8000-000000000000' };
    rows[1]!.push(forged);
    const report = await check(seals, rows);
    expect(kinds(report)).toEqual([
      ['rows-missing', 1],
      ['rows-extra', 2],
    ]);
    expect(report.problems[0]!.message).toBe('seal 1: 1 row of 4 missing (deleted)');
    expect(report.problems[1]!.ids).toEqual([forged.id]);
  });

  it('reports rows that claim a seal that does not exist', async () => {
    const { seals, rows } = chain([2]);
    const report = await check([...seals, null], [...rows, [rows[0]![0]!]], [1, 5]);
    expect(kinds(report)).toEqual([['rows-without-seal', 5]]);
  });

  it('reports a gap, an altered seal, broken links and a wrong genesis link', async () => {
    const { seals, rows } = chain([1, 1, 1, 1, 1, 1]);
    const altered = { ...seals[3]!, row_count: 2 };
    const relinked = nextSeal(
      { ...seals[4]!, hash: Buffer.alloc(32, 9) },
      {
        root: seals[5]!.root,
        rowCount: 1,
        sealedAt: SEALED_AT,
      },
    );
    const report = await check(
      [seals[0]!, seals[2]!, altered, seals[4]!, relinked],
      [rows[0]!, rows[2]!, rows[3]!, rows[4]!, rows[5]!],
    );
    expect(kinds(report)).toEqual([
      ['seal-missing', 2],
      ['seal-altered', 4],
      // Seal 5 chains to what seal 4's fields were, not to what they say now.
      ['link-broken', 5],
      ['link-broken', 6],
    ]);
    const notGenesis = nextSeal(
      { ...seals[0]!, seq: 0 },
      { root: seals[0]!.root, rowCount: 1, sealedAt: SEALED_AT },
    );
    expect(kinds(await check([notGenesis], [rows[0]!]))).toEqual([['link-broken', 1]]);
  });

  it('checks from a later seal against the seal before it, and asks the head check', async () => {
    const { seals, rows } = chain([1, 2, 3]);
    const heads: unknown[] = [];
    const report = await verifyChain(groupsOf(seals.slice(1), rows.slice(1)), {
      fromSeq: 2,
      anchor: seals[0]!,
      erasableFields: ERASABLE,
      unsealedRows: 7,
      checkHead: (head) => {
        heads.push(head);
        return [{ kind: 'head-behind', seq: 4, message: 'the head is behind checkpoint seq 4' }];
      },
    });
    expect(heads).toEqual([{ seq: 3, hash: seals[2]!.hash.toString('hex'), totalRows: null }]);
    expect(report).toMatchObject({ intact: false, seals: 2, rows: 5, unsealedRows: 7 });
    expect(kinds(report)).toEqual([['head-behind', 4]]);
  });

  it('lists the first problems and counts the rest', async () => {
    const { seals, rows } = chain(Array(30).fill(1));
    const report = await verifyChain(
      groupsOf(
        seals,
        rows.map(() => []),
      ),
      { fromSeq: 1, anchor: null, erasableFields: ERASABLE, unsealedRows: 0, maxProblems: 5 },
    );
    expect(report.problems).toHaveLength(5);
    expect(report.moreProblems).toBe(25);
  });
});

describe('INSERT … RETURNING by server version', () => {
  it('is there on MariaDB from 10.5 and never on MySQL', () => {
    expect(returnsInsertedRows('10.11.19-MariaDB-0+deb12u1')).toBe(true);
    expect(returnsInsertedRows('10.5.0-MariaDB')).toBe(true);
    expect(returnsInsertedRows('5.5.5-10.4.32-MariaDB')).toBe(false);
    expect(returnsInsertedRows('10.4.32-MariaDB')).toBe(false);
    expect(returnsInsertedRows('11.4.2-MariaDB')).toBe(true);
    expect(returnsInsertedRows('8.0.36')).toBe(false);
  });
});

describe('SKIP LOCKED by server version', () => {
  it('is there on MariaDB from 10.6 and MySQL from 8.0', () => {
    expect(skipsLockedRows('10.11.19-MariaDB-0+deb12u1')).toBe(true);
    expect(skipsLockedRows('10.6.0-MariaDB')).toBe(true);
    expect(skipsLockedRows('10.5.23-MariaDB')).toBe(false);
    expect(skipsLockedRows('11.4.2-MariaDB')).toBe(true);
    expect(skipsLockedRows('8.0.36')).toBe(true);
    expect(skipsLockedRows('5.7.44')).toBe(false);
    expect(skipsLockedRows('unknown')).toBe(false);
  });
});

describe('verifyChain after retention', () => {
  function afterPruning(
    full: Chain,
    prunedTo: number,
    partlyPruned: ReadonlyMap<number, number> = new Map(),
    rows: readonly StoredSealedRow[][] = full.rows.slice(prunedTo),
  ) {
    const last = full.seals[prunedTo - 1]!;
    const totalRows = full.seals.slice(0, prunedTo).reduce((sum, seal) => sum + seal.row_count, 0);
    return verifyChain(groupsOf(full.seals.slice(prunedTo), rows), {
      fromSeq: prunedTo + 1,
      anchor: null,
      pruned: { seq: last.seq, hash: last.hash, totalRows },
      partlyPruned,
      erasableFields: ERASABLE,
      unsealedRows: 0,
    });
  }

  it('checks the chain from the seal after the pruned ones, linked to the recorded hash, with totals from seal 1', async () => {
    const full = chain([3, 2, 4, 1]);
    const report = await afterPruning(full, 2);
    expect(report).toMatchObject({
      intact: true,
      fromSeq: 3,
      seals: 2,
      pruned: { toSeq: 2, rows: 5 },
      partlyPrunedSeals: 0,
    });
    expect(report.head).toMatchObject({ seq: 4, totalRows: 10 });
  });

  it('finds a seal after the pruned range rewritten, and a recorded hash that the next seal does not link to', async () => {
    const full = chain([3, 2, 4]);
    const altered = full.rows.slice(2).map((rows) => rows.map((row) => ({ ...row })));
    altered[0]![1] = { ...altered[0]![1]!, activity: { ...altered[0]![1]!.activity!, description: 'x' } };
    expect(kinds(await afterPruning(full, 2, new Map(), altered))).toEqual([['row-altered', 3]]);

    const other = chain([3, 2]);
    const wrongHash = await verifyChain(groupsOf(full.seals.slice(2), full.rows.slice(2)), {
      fromSeq: 3,
      anchor: null,
      pruned: { seq: 2, hash: other.seals[1]!.hash, totalRows: 5 },
      erasableFields: ERASABLE,
      unsealedRows: 0,
    });
    expect(kinds(wrongHash)).toEqual([['link-broken', 3]]);
  });

  it('takes a seal that lost rows with a dropped partition as partly pruned, but not one that lost more', async () => {
    const full = chain([2, 5, 3]);
    const kept = [full.rows[1]!.slice(0, 3), full.rows[2]!];
    const report = await afterPruning(full, 1, new Map([[2, 2]]), kept);
    expect(report).toMatchObject({ intact: true, partlyPrunedSeals: 1 });
    const tooFew = [full.rows[1]!.slice(0, 2), full.rows[2]!];
    expect(kinds(await afterPruning(full, 1, new Map([[2, 2]]), tooFew))).toEqual([['rows-missing', 2]]);
    const unrecorded = await afterPruning(full, 1, new Map(), kept);
    expect(kinds(unrecorded)).toEqual([['rows-missing', 2]]);
  });
});
