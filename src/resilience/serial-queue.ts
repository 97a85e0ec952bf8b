/**
 * Runs asynchronous operations one after another, in the order they were queued, without one
 * failure blocking the next: the caller of each operation sees its own outcome.
 *
 * @example
 * const writes = new SerialQueue();
 * await writes.run(() => appendToFile(records));
 */
export class SerialQueue {
  #tail: Promise<void> = Promise.resolve();

  /** Runs `operation` after every operation queued before it. */
  run(operation: () => Promise<void>): Promise<void> {
    const result = this.#tail.then(operation);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Settles once every operation queued so far has finished; never rejects. */
  idle(): Promise<void> {
    return this.#tail;
  }
}
