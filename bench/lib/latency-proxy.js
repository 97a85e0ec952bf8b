// A TCP proxy that puts a service "one network hop away": every chunk is held for a fixed delay in
// each direction (in order, one timer per direction of a connection), and a route can be cut —
// its open connections swallowed and new ones accepted but never answered (`blackhole`, a hung
// server: the incident's "operation timed out"), or its port closed (`refuse`, a server that is
// down) — and later restored, when the connections of the outage are reset. The ideas are those
// of test/helpers/fault-proxy.ts, in plain JS for the benchmarks.
//
// Run as a child process of its own (`fork('bench/lib/latency-proxy.js')`), so the delays do not
// depend on how busy the load generator's event loop is: it answers `{ type: 'ready', ports }`
// after `{ type: 'start', latencyMs, routes: { name: { host, port } } }`, and `{ type: 'done' }`
// after `{ type: 'cut', route, mode }` / `{ type: 'restore', route }` / `{ type: 'close' }`.
import { createServer, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Forwards chunks to `to` `latencyMs` after they arrived, in arrival order. */
function delayedPipe(to, latencyMs) {
  const queue = [];
  let timer = null;
  const drain = () => {
    timer = null;
    const now = performance.now();
    while (queue.length > 0 && queue[0].due <= now + 0.05) {
      const { chunk } = queue.shift();
      if (!to.destroyed) to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(drain, Math.max(0, queue[0].due - now));
  };
  return {
    push(chunk) {
      if (latencyMs <= 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      queue.push({ chunk, due: performance.now() + latencyMs });
      if (timer === null) timer = setTimeout(drain, latencyMs);
    },
    stop() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      queue.length = 0;
    },
  };
}

/** One listening port forwarding to `target`, with `latencyMs` each way; `cut()` and `restore()`. */
export async function startRoute(target, latencyMs) {
  const links = new Set();
  let mode = 'pass';
  let server = null;
  let port = 0;

  const accept = (client) => {
    client.on('error', () => undefined);
    if (mode !== 'pass') {
      const link = { client, upstream: null, dead: true, pipes: [] };
      links.add(link);
      client.on('data', () => undefined);
      client.on('close', () => links.delete(link));
      return;
    }
    const upstream = new Socket();
    const link = { client, upstream, dead: false, pipes: [] };
    links.add(link);
    const toUpstream = delayedPipe(upstream, latencyMs);
    const toClient = delayedPipe(client, latencyMs);
    link.pipes.push(toUpstream, toClient);
    const drop = () => {
      links.delete(link);
      toUpstream.stop();
      toClient.stop();
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', drop).on('close', drop);
    client.on('close', drop);
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    upstream.connect(target.port, target.host);
    client.on('data', (chunk) => !link.dead && toUpstream.push(chunk));
    upstream.on('data', (chunk) => !link.dead && toClient.push(chunk));
  };

  const listen = () =>
    new Promise((resolve, reject) => {
      server = createServer(accept);
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = server.address().port;
        resolve();
      });
    });
  await listen();

  return {
    get port() {
      return port;
    },
    /** The service stops answering: `blackhole` (hangs) or `refuse` (down). */
    async cut(how = 'blackhole') {
      mode = how;
      for (const link of links) {
        link.dead = true;
        for (const pipe of link.pipes) pipe.stop();
        if (how === 'refuse') {
          link.client.resetAndDestroy();
          link.upstream?.destroy();
        }
      }
      if (how === 'refuse' && server !== null) {
        const closing = server;
        server = null;
        await new Promise((resolve) => closing.close(resolve));
      }
    },
    /** The service is back; the connections of the outage are reset, as a client would find them. */
    async restore() {
      mode = 'pass';
      for (const link of links) {
        if (!link.dead) continue;
        links.delete(link);
        link.client.resetAndDestroy();
        link.upstream?.destroy();
      }
      if (server === null) await listen();
    },
    async close() {
      for (const link of links) {
        for (const pipe of link.pipes) pipe.stop();
        link.client.destroy();
        link.upstream?.destroy();
      }
      links.clear();
      if (server !== null) await new Promise((resolve) => server.close(resolve));
      server = null;
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const routes = new Map();
  process.on('message', async (message) => {
    try {
      if (message.type === 'start') {
        const ports = {};
        for (const [name, target] of Object.entries(message.routes)) {
          const route = await startRoute(target, message.latencyMs);
          routes.set(name, route);
          ports[name] = route.port;
        }
        process.send({ type: 'ready', ports });
      } else if (message.type === 'cut') {
        await routes.get(message.route).cut(message.mode);
        process.send({ type: 'done' });
      } else if (message.type === 'restore') {
        await routes.get(message.route).restore();
        process.send({ type: 'done' });
      } else if (message.type === 'close') {
        for (const route of routes.values()) await route.close();
        process.send({ type: 'done' });
        process.disconnect();
      }
    } catch (error) {
      process.send({ type: 'error', message: error.message });
    }
  });
}
