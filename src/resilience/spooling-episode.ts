/**
 * One episode of spooling: it begins when activities first go to the spool instead of the
 * destination, counts those replayed from the spool since, and ends when the spool has been
 * replayed empty. A `ResilientSink` reports `spoolingStarted` and `spoolingStopped` from it.
 *
 * @example
 * const episode = new SpoolingEpisode();
 * if (episode.begin()) report('spoolingStarted');
 * episode.countReplayed(500);
 * const replayed = episode.end(); // 500; null when no episode was going on
 */
export class SpoolingEpisode {
  /** Activities replayed since the episode began; null between episodes. */
  #replayed: number | null = null;

  /** Begins an episode unless one is going on; true when this began one. */
  begin(): boolean {
    if (this.#replayed !== null) return false;
    this.#replayed = 0;
    return true;
  }

  /** Counts activities replayed during the episode going on, if any. */
  countReplayed(count: number): void {
    if (this.#replayed !== null) this.#replayed += count;
  }

  /** Ends the episode going on and returns how many activities were replayed in it; null if none was. */
  end(): number | null {
    const replayed = this.#replayed;
    this.#replayed = null;
    return replayed;
  }
}
