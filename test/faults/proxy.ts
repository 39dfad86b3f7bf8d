/**
 * The upstream outage of the fault harness: a TCP relay between the gateway and the ledger that can
 * be cut. While cut, every open connection is destroyed and new ones are reset at once, so the
 * gateway sees exactly what a dead WAN link or a ledger host that is down looks like
 * (SYNC_UNREACHABLE), while the ledger process itself keeps running — nothing is restarted.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class OutageProxy {
  private down = false;
  private readonly sockets = new Set<Socket>();
  /** Connections refused while cut. */
  refused = 0;

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  /** Listens on 127.0.0.1 (a free port) and relays every connection to `target` (host:port). */
  static async start(target: { host: string; port: number }): Promise<OutageProxy> {
    const ref: { proxy?: OutageProxy } = {};
    const server = createServer((client) => {
      const p = ref.proxy;
      if (p === undefined || p.down) {
        if (p) p.refused++;
        client.resetAndDestroy();
        return;
      }
      const upstream = connect(target.port, target.host);
      p.sockets.add(client);
      p.sockets.add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        p.sockets.delete(client);
        p.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const proxy = new OutageProxy(server, `http://127.0.0.1:${port}`);
    ref.proxy = proxy;
    return proxy;
  }

  get isCut(): boolean {
    return this.down;
  }

  /** The link goes down: open connections die, new ones are reset. */
  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** The link comes back. */
  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => { resolve(); }));
  }
}
