import type { Redis, RedisOptions } from 'ioredis';

/** How often each connection's silence is looked at. */
const SILENCE_CHECK_INTERVAL_MS = 250;

export interface ConnectionWatch {
  /** `redis://host:port`, for the error that closes a dead connection. */
  readonly server: string;
  /** Longest wait for Redis's first reply on a new connection (the handshake). */
  readonly firstReplyTimeoutMs: number;
  /** Longest silence while a command waits, once Redis has answered. */
  readonly silenceTimeoutMs: number;
  /** Extra silence allowed on copies of the client made for blocking commands. */
  readonly blockingWaitMs: number;
}

/**
 * Destroys each connection of `client` that Redis accepted but did not answer within
 * `firstReplyTimeoutMs` (ioredis's connect timeout ends with the TCP connection), or that has
 * received nothing for `silenceTimeoutMs` while commands wait for their replies; ioredis then
 * reconnects. Copies of the client (BullMQ makes its blocking connection with `duplicate()`) are
 * watched too, and allow `blockingWaitMs` more silence since BZPOPMIN is silent while it waits;
 * they have no command timeout, as BullMQ bounds its blocking waits itself.
 */
export function watchConnections(client: Redis, watch: ConnectionWatch): void {
  watchNode(client, watch);
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (override?: Partial<RedisOptions>): Redis => {
    const copy = duplicate({ commandTimeout: undefined, ...override });
    watchConnections(copy, {
      ...watch,
      silenceTimeoutMs: watch.silenceTimeoutMs + watch.blockingWaitMs,
      // The copy's own copies inherit its allowance; it is added once.
      blockingWaitMs: 0,
    });
    return copy;
  };
}

/**
 * Destroys each dead connection of `client` as {@link watchConnections} does, leaving its copies
 * alone: a Redis Cluster's connection to one node, whose copies are the cluster's own short-lived
 * ones (CLUSTER SLOTS).
 */
export function watchNode(client: Redis, watch: ConnectionWatch): void {
  client.on('connect', () => watchStream(client, watch));
}

function watchStream(client: Redis, watch: ConnectionWatch): void {
  const { stream } = client;
  if (stream.destroyed) return;
  const openedAt = Date.now();
  let lastDataAt: number | null = null;
  let waitingSince: number | null = null;
  const onData = () => {
    lastDataAt = Date.now();
  };
  const close = (reason: string) => {
    stop();
    stream.destroy(new Error(`${reason}; the connection was closed`));
  };
  const check = () => {
    if (stream.destroyed || client.stream !== stream) {
      stop();
      return;
    }
    const now = Date.now();
    if (lastDataAt === null) {
      if (now - openedAt >= watch.firstReplyTimeoutMs) {
        close(
          `${watch.server} accepted the connection but sent nothing within ${watch.firstReplyTimeoutMs} ms`,
        );
      }
      return;
    }
    if (client.commandQueue.length === 0) {
      waitingSince = null;
      return;
    }
    waitingSince ??= now;
    if (now - Math.max(lastDataAt, waitingSince) >= watch.silenceTimeoutMs) {
      close(`${watch.server} sent nothing for ${watch.silenceTimeoutMs} ms while a command waited`);
    }
  };
  const timer = setInterval(check, SILENCE_CHECK_INTERVAL_MS);
  timer.unref();
  function stop() {
    clearInterval(timer);
    stream.off('data', onData);
    stream.off('close', stop);
  }
  stream.on('data', onData);
  stream.once('close', stop);
}
