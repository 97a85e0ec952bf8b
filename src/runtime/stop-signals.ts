/** Exit code when a second SIGINT/SIGTERM cuts a graceful shutdown short (128 + SIGINT's 2). */
export const EXIT_CODE_SECOND_SIGNAL = 130;

/** A long-running process's request to stop: the first SIGINT/SIGTERM, or what the process itself asks. */
export interface StopRequest {
  /** Resolves with what asked the process to stop: a signal's name, or the reason given to `stop()`. */
  readonly reason: Promise<string>;
  /** Asks to stop for `reason`; only the first request counts. */
  stop(reason: string): void;
  /** Stops listening for signals (Node's default handling returns). */
  dispose(): void;
}

export interface StopSignalOptions {
  /** Called on the first signal, after it became the stop reason: start finishing the work in hand. */
  readonly onFirstSignal?: (signal: NodeJS.Signals) => void;
}

/**
 * Listens for SIGINT/SIGTERM from now on, so a signal at any point ends in a graceful shutdown
 * rather than Node's default kill. The first signal asks the process to stop; a second one while
 * it shuts down exits at once with {@link EXIT_CODE_SECOND_SIGNAL}.
 *
 * @example
 * const stop = watchStopSignals({ onFirstSignal: () => worker.stop('signal') });
 * try { await worker.done; } finally { stop.dispose(); }
 */
export function watchStopSignals(options: StopSignalOptions = {}): StopRequest {
  let resolveReason: (reason: string) => void = () => undefined;
  const reason = new Promise<string>((resolve) => {
    resolveReason = resolve;
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      resolveReason(signal);
      options.onFirstSignal?.(signal);
      return;
    }
    process.stderr.write(`activity-log: ${signal} again: exiting now\n`);
    process.exit(EXIT_CODE_SECOND_SIGNAL);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    reason,
    stop: (why) => resolveReason(why),
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
