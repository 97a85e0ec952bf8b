import { parentPort } from 'node:worker_threads';
import type { ErasableField } from './activity-leaf.js';
import type { RootTask, RootTaskResult } from './seal-root-pool.js';
import { STORED_ROW_SLOTS, type StoredSealedRow, storedValuesRoot } from './verify-chain.js';

/**
 * A worker thread of {@link SealRootPool}: for each seal of a task, the Merkle root its rows'
 * stored values make, in hex, or null when they cannot make one.
 */
parentPort?.on('message', (task: RootTask) => {
  const roots: (string | null)[] = [];
  let offset = 0;
  for (const seal of task.seals) {
    const rows: StoredSealedRow[] = new Array(seal.rows);
    for (let index = 0; index < seal.rows; index++, offset += STORED_ROW_SLOTS) {
      rows[index] = {
        id: '',
        activity: null,
        salt: task.slots[offset] as string,
        commitments: null,
        values: task.slots.slice(offset + 1, offset + STORED_ROW_SLOTS),
      };
    }
    const root = storedValuesRoot(rows, seal.erasableFields as readonly ErasableField[]);
    roots.push(root === null ? null : root.toString('hex'));
  }
  parentPort!.postMessage({ id: task.id, roots } satisfies RootTaskResult);
});
