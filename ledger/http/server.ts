/**
 * The ledger's HTTP service on fastify 5 (issue 7; docs/ledger.md "API"): the gateway sync routes
 * (gateway-routes.ts), the service engineer's API under /api/v1 with Bearer tokens (api-routes.ts),
 * the web page when asked (ledger/web/plugin.ts), GET /healthz (200 while the storage answers, 503
 * otherwise) and GET /metrics (Prometheus text, metrics.ts). Errors of every route have one shape,
 * `{"error": {"code", "message"}}` with the status of errors.ts's table. The request log is one
 * pino JSON line per request with method, route pattern, status, duration and who asked (gateway
 * origin or token name) — never the Authorization header, a token or a body. The server is
 * stateless: everything lives in the Ledger's storage, so several processes may serve one
 * PostgreSQL database behind a load balancer.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { registerWebPage, type WebPageOptions } from '../web/plugin.js';
import { registerApiRoutes } from './api-routes.js';
import { errorReply } from './errors.js';
import { principals, registerGatewayRoutes } from './gateway-routes.js';
import { LedgerMetrics } from './metrics.js';
import type { LedgerService } from './service.js';

export interface LedgerServerOptions {
  readonly ledger: LedgerService;
  readonly logger: Logger;
  /** Default: a fresh LedgerMetrics bound to ledger.stats(). */
  readonly metrics?: LedgerMetrics;
  /** The trust bundle text for GET /api/v1/trust (current after a reload). */
  readonly trustBundle: () => string;
  /** Serve the web page at / (ledger/web/plugin.ts); false: API only. Default: serve it. */
  readonly webPage?: WebPageOptions | false;
  /** ms since the epoch (default Date.now). */
  readonly now?: () => number;
  /** Idle keep-alive and request timeouts (default 30 s / 120 s). */
  readonly keepAliveTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
}

const START = new WeakMap<FastifyRequest, bigint>();

/**
 * Builds the fastify instance with every route registered (not listening: call `listen`).
 * Throws what the web page's asset build throws (a deployment bug).
 */
export async function createLedgerServer(o: LedgerServerOptions): Promise<FastifyInstance> {
  const metrics = o.metrics ?? new LedgerMetrics();
  metrics.bindStats(() => o.ledger.stats());
  const now = o.now ?? Date.now;
  const app = Fastify({
    logger: false, // no fastify logger, so no request logging of its own: the onResponse hook logs
    keepAliveTimeout: o.keepAliveTimeoutMs ?? 30_000,
    requestTimeout: o.requestTimeoutMs ?? 120_000,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: false },
  });

  app.addHook('onRequest', (req, _reply, done) => {
    START.set(req, process.hrtime.bigint());
    done();
  });
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const t0 = START.get(req);
    const seconds = t0 === undefined ? NaN : Number(process.hrtime.bigint() - t0) / 1e9;
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.request(route, req.method, reply.statusCode, seconds);
    if (route === '/metrics' || route === '/healthz') return; // scrapes and probes would drown the log
    const who = principals.get(req);
    o.logger.info(
      { method: req.method, route, status: reply.statusCode, ms: Math.round(seconds * 1e4) / 10, ...(who === undefined ? {} : { by: who }), remote: req.ip },
      `ledger: ${req.method} ${route} ${reply.statusCode}`,
    );
  });

  app.setErrorHandler((e: FastifyError, req, reply) => {
    const r = errorReply(e);
    if (r.internal) o.logger.error({ err: e, method: req.method, route: req.routeOptions.url }, 'ledger: request failed (a bug or a storage failure)');
    else if (r.status >= 500) o.logger.warn({ code: r.body.error.code, method: req.method, route: req.routeOptions.url }, r.body.error.message);
    return reply.code(r.status).type('application/json; charset=utf-8').send(r.body);
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `ledger: no route ${req.method} ${req.url.split('?')[0]?.slice(0, 200) ?? ''}` } }),
  );

  app.get('/healthz', async (_req, reply) => {
    try {
      await o.ledger.gateways();
      return { status: 'ok' };
    } catch (e) {
      return reply.code(503).send({ status: 'unavailable', reasons: [`storage: ${(e as Error).message.slice(0, 200)}`] });
    }
  });
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));

  registerGatewayRoutes(app, o.ledger);
  await app.register((api, _opts, done) => {
    registerApiRoutes(api, o.ledger, { trustBundle: o.trustBundle, now });
    done();
  });
  if (o.webPage !== false) await registerWebPage(app, o.webPage ?? {});
  return app;
}
