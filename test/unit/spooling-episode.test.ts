import { describe, expect, it } from 'vitest';
import { SpoolingEpisode } from '../../src/resilience/spooling-episode.js';

describe('SpoolingEpisode', () => {
  it('begins once: a second begin() while it goes on says it began nothing', () => {
    const episode = new SpoolingEpisode();
    expect(episode.begin()).toBe(true);
    expect(episode.begin()).toBe(false);
  });

  it('counts the activities replayed since it began and returns them when it ends', () => {
    const episode = new SpoolingEpisode();
    episode.begin();
    episode.countReplayed(500);
    episode.countReplayed(20);
    expect(episode.end()).toBe(520);
  });

  it('ends with null when no episode was going on, and counts nothing replayed between episodes', () => {
    const episode = new SpoolingEpisode();
    episode.countReplayed(7);
    expect(episode.end()).toBeNull();
    episode.begin();
    expect(episode.end()).toBe(0);
    expect(episode.end()).toBeNull();
  });

  it('starts the count again from zero in the next episode', () => {
    const episode = new SpoolingEpisode();
    episode.begin();
    episode.countReplayed(3);
    episode.end();
    expect(episode.begin()).toBe(true);
    episode.countReplayed(2);
    expect(episode.end()).toBe(2);
  });
});
