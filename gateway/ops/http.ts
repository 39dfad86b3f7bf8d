/**
 * The gateway's operations endpoint on node:http — three read-only routes do not need a framework:
 * GET /healthz (200 {"status":"ok"} while frames can be stored and acknowledged, else 503 with the
 * reasons: for systemd, a load balancer or a watchdog script), GET /metrics (Prometheus text from
 * GatewayMetrics) and GET /status (the StatusSnapshot as JSON, read by `packchain gateway status`).
 * Every request takes one fresh snapshot from the daemon's provider. There is no authentication:
 * the default listen address is loopback (config.ts warns otherwise). A provider or render that
 * throws answers 500 and is counted; it never takes the process down. Slow or idle clients are cut
 * off by header and request timeouts, so the endpoint cannot be held open by a stuck scraper.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Logger } from './logger.js';
import type { GatewayMetrics } from './metrics.js';
import { healthOf, type StatusSnapshot } from './snapshot.js';

export interface OpsServerOptions {
  readonly listen: ListenAddress;
  /** Assembles the current snapshot (assemble.ts); called once per request. */
  readonly snapshot: () => StatusSnapshot | Promise<StatusSnapshot>;
  readonly metrics: GatewayMetrics;
  readonly logger?: Logger;
}

export interface OpsServerStats {
  readonly requests: number;
  /** Requests answered 500 (the snapshot provider or metrics rendering threw). */
  readonly errors: number;
}

const TIMEOUT_MS = 10_000;
const JSON_TYPE = 'application/json; charset=utf-8';

export class OpsServer {
  private requests = 0;
  private errors = 0;

  private constructor(
    private readonly server: Server,
    private readonly o: OpsServerOptions,
  ) {}

  /**
   * Listens on `o.listen`. Throws GatewayError OPS_LISTEN when the address is in use, not
   * permitted or not local to this machine.
   */
  static async start(o: OpsServerOptions): Promise<OpsServer> {
    const server = createServer();
    const ops = new OpsServer(server, o);
    server.headersTimeout = TIMEOUT_MS;
    server.requestTimeout = TIMEOUT_MS;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void ops.handle(req, res);
    });
    server.on('clientError', (_e, socket) => {
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        reject(new GatewayError('OPS_LISTEN', `gateway: http: cannot listen on ${o.listen.host}:${o.listen.port}: ${e.code ?? e.message}; expected a free local address (http.listen)`, { cause: e }));
      };
      server.once('error', onError);
      server.listen(o.listen.port, o.listen.host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (e) => {
      o.logger?.error({ err: e }, 'gateway: http: server error');
    });
    return ops;
  }

  /** The bound address (the real port when the config asked for port 0). */
  get address(): ListenAddress {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Base URL, e.g. http://127.0.0.1:9464 */
  get url(): string {
    const { host, port } = this.address;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  get stats(): OpsServerStats {
    return { requests: this.requests, errors: this.errors };
  }

  /** Stops listening and closes open connections. Idempotent. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    const path = (req.url ?? '/').split('?')[0];
    const route = path === '/healthz' || path === '/metrics' || path === '/status' ? path : undefined;
    if (route === undefined) {
      send(res, 404, JSON_TYPE, `${JSON.stringify({ error: 'not found', routes: ['/healthz', '/metrics', '/status'] })}\n`, req.method === 'HEAD');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, JSON_TYPE, `${JSON.stringify({ error: 'method not allowed' })}\n`, false);
      return;
    }
    const head = req.method === 'HEAD';
    try {
      const snapshot = await this.o.snapshot();
      if (route === '/healthz') {
        const h = healthOf(snapshot);
        send(res, h.ok ? 200 : 503, JSON_TYPE, `${JSON.stringify(h.ok ? { status: 'ok' } : { status: 'unavailable', reasons: h.reasons })}\n`, head);
      } else if (route === '/metrics') {
        send(res, 200, this.o.metrics.contentType, await this.o.metrics.render(snapshot), head);
      } else {
        send(res, 200, JSON_TYPE, `${JSON.stringify(snapshot)}\n`, head);
      }
    } catch (e) {
      this.errors++;
      this.o.logger?.error({ err: e, route }, 'gateway: http: request failed');
      send(res, 500, JSON_TYPE, `${JSON.stringify({ error: 'internal error', detail: e instanceof Error ? e.message : String(e) })}\n`, head);
    }
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(head ? undefined : body);
}
