import { createServer, type Server, Socket } from 'node:net';

/** How the proxy treats traffic. */
export type FaultMode = 'pass' | 'refuse' | 'blackhole';

interface Link {
  readonly client: Socket;
  readonly upstream: Socket | null;
  /** Swallows every byte from now on, whatever the mode (see `blackhole({ sticky: true })`). */
  dead: boolean;
}

/**
 * A TCP proxy for fault injection in front of a real service (MariaDB, Redis). Point the client
 * at `127.0.0.1:proxy.port` and switch modes while it runs:
 *
 * - `pass()`: forwards both ways (after `latencyMs`, if set);
 * - `refuse()`: closes the listening socket, so connects fail with ECONNREFUSED, and resets the
 *   open connections — the server is down;
 * - `blackhole()`: accepts connections and swallows every byte both ways, on new and open
 *   connections alike — the server hangs ("operation timed out");
 * - `blackhole({ sticky: true })`: the same, but the connections open now never carry data
 *   again, even after `pass()` — a dead server behind a load balancer, whose connections stay
 *   open and silent while only new connections reach the server that replaced it;
 * - `cutConnections()`: resets every open connection once, leaving the mode as it is.
 *
 * @example
 * const proxy = await FaultProxy.start({ host: '127.0.0.1', port: 3306 });
 * const url = `mysql://root@127.0.0.1:${proxy.port}/test`;
 * await proxy.refuse(); … await proxy.pass();
 * await proxy.close();
 */
export class FaultProxy {
  readonly port: number;
  /** Added before every forwarded chunk, in both directions. */
  latencyMs = 0;
  readonly #target: { readonly host: string; readonly port: number };
  readonly #links = new Set<Link>();
  #server: Server | null;
  #mode: FaultMode = 'pass';

  private constructor(server: Server, port: number, target: { host: string; port: number }) {
    this.#server = server;
    this.port = port;
    this.#target = target;
  }

  /** Listens on an ephemeral loopback port, forwarding to `target`. */
  static async start(target: { readonly host: string; readonly port: number }): Promise<FaultProxy> {
    const server = createServer();
    const port = await listen(server, 0);
    const proxy = new FaultProxy(server, port, target);
    server.on('connection', (socket) => proxy.#accept(socket));
    return proxy;
  }

  get mode(): FaultMode {
    return this.#mode;
  }

  /** Connections currently open through the proxy. */
  get connections(): number {
    return this.#links.size;
  }

  /** The local ports of the connections to the service: how the service sees them (`host:port`). */
  get upstreamPorts(): number[] {
    return [...this.#links].flatMap((link) =>
      link.upstream?.localPort === undefined ? [] : [link.upstream.localPort],
    );
  }

  async pass(): Promise<void> {
    this.#mode = 'pass';
    await this.#listen();
  }

  async refuse(): Promise<void> {
    this.#mode = 'refuse';
    const server = this.#server;
    this.#server = null;
    this.cutConnections();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async blackhole(options: { readonly sticky?: boolean } = {}): Promise<void> {
    this.#mode = 'blackhole';
    if (options.sticky === true) for (const link of this.#links) link.dead = true;
    await this.#listen();
  }

  cutConnections(): void {
    for (const link of this.#links) {
      link.client.resetAndDestroy();
      link.upstream?.destroy();
    }
    this.#links.clear();
  }

  async close(): Promise<void> {
    await this.refuse();
  }

  async #listen(): Promise<void> {
    if (this.#server !== null) return;
    const server = createServer();
    server.on('connection', (socket) => this.#accept(socket));
    await listen(server, this.port);
    this.#server = server;
  }

  #accept(client: Socket): void {
    client.on('error', () => undefined);
    if (this.#mode !== 'pass') {
      // Accept and never answer: the client waits for a handshake that does not come.
      const link: Link = { client, upstream: null, dead: true };
      this.#links.add(link);
      client.on('data', () => undefined);
      client.on('close', () => this.#links.delete(link));
      return;
    }
    const upstream = new Socket();
    const link: Link = { client, upstream, dead: false };
    this.#links.add(link);
    const drop = () => {
      this.#links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', drop);
    client.on('error', drop);
    upstream.on('close', drop);
    client.on('close', drop);
    upstream.connect(this.#target.port, this.#target.host);
    client.on('data', (chunk) => this.#forward(link, upstream, chunk));
    upstream.on('data', (chunk) => this.#forward(link, client, chunk));
  }

  #forward(link: Link, to: Socket, chunk: Buffer): void {
    if (this.#mode === 'blackhole' || link.dead) return;
    if (this.latencyMs <= 0) {
      to.write(chunk);
      return;
    }
    setTimeout(() => {
      if (this.#mode !== 'blackhole' && !link.dead && !to.destroyed) to.write(chunk);
    }, this.latencyMs);
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}
