import { Worker } from 'node:worker_threads';
import type { ErasableField } from './activity-leaf.js';
import type { SealGroup } from './verify-chain.js';

/** What a worker thread is sent: seals' rows, each row its salt then its stored values, flat. */
export interface RootTask {
  readonly id: number;
  readonly seals: readonly { readonly rows: number; readonly erasableFields: readonly string[] }[];
  readonly slots: readonly unknown[];
}

export interface RootTaskResult {
  readonly id: number;
  /** Per seal sent, the root in hex, or null when its rows' stored values make none. */
  readonly roots: readonly (string | null)[];
}

/**
 * The Merkle roots seals' rows make from their stored values, computed on worker threads, so the
 * thread that reads the rows spends no time hashing them. A seal gets `undefined` (left to the
 * caller) when a row cannot be sent as stored values (erased, or read without them), when its
 * row count is not its seal's, and when a worker fails: a root from here only ever spares the
 * caller work it would do the same.
 *
 * @example
 * const pool = new SealRootPool(2);
 * const roots = await pool.roots(groups, erasableFields);
 * await pool.close();
 */
export class SealRootPool {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<
    number,
    { readonly worker: Worker; readonly resolve: (roots: RootTaskResult['roots'] | null) => void }
  >();
  #nextId = 0;
  #nextWorker = 0;

  constructor(threads: number) {
    for (let index = 0; index < threads; index++) {
      const worker = new Worker(new URL('./leaf-worker.js', import.meta.url));
      worker.on('message', (result: RootTaskResult) => {
        const pending = this.#pending.get(result.id);
        this.#pending.delete(result.id);
        pending?.resolve(result.roots);
      });
      const fail = () => {
        // A worker that failed takes no more tasks; with none left, the caller makes every root.
        const at = this.#workers.indexOf(worker);
        if (at !== -1) this.#workers.splice(at, 1);
        for (const [id, pending] of this.#pending) {
          if (pending.worker !== worker) continue;
          this.#pending.delete(id);
          pending.resolve(null);
        }
      };
      worker.on('error', fail);
      worker.on('exit', fail);
      this.#workers.push(worker);
    }
  }

  /** Per group, its rows' root from their stored values, null when they make none, undefined when not computed here. */
  async roots(
    groups: readonly SealGroup[],
    erasableFields: readonly ErasableField[],
  ): Promise<(Buffer | null | undefined)[]> {
    const seals: { rows: number; erasableFields: readonly string[] }[] = [];
    const sent: number[] = [];
    const slots: unknown[] = [];
    for (const [index, group] of groups.entries()) {
      if (group.seal === null || group.rows.length !== group.seal.row_count) continue;
      if (
        !group.rows.every((row) => row.values !== undefined && row.salt !== null && row.commitments === null)
      ) {
        continue;
      }
      for (const row of group.rows) slots.push(row.salt, ...row.values!);
      seals.push({ rows: group.rows.length, erasableFields: group.erasableFields ?? erasableFields });
      sent.push(index);
    }
    const results: (Buffer | null | undefined)[] = new Array(groups.length).fill(undefined);
    if (seals.length === 0 || this.#workers.length === 0) return results;
    const id = this.#nextId++;
    const worker = this.#workers[this.#nextWorker++ % this.#workers.length]!;
    const roots = await new Promise<RootTaskResult['roots'] | null>((resolve) => {
      this.#pending.set(id, { worker, resolve });
      worker.postMessage({ id, seals, slots } satisfies RootTask);
    });
    if (roots === null) return results;
    for (const [position, index] of sent.entries()) {
      const root = roots[position];
      results[index] = root === null || root === undefined ? null : Buffer.from(root, 'hex');
    }
    return results;
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((worker) => worker.terminate()));
    this.#workers.length = 0;
  }
}
