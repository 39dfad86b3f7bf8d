/**
 * Serves the service engineer's web page from a fastify 5 instance: `GET /` (index.html) and
 * `GET /assets/<name>` (the esbuild bundles and stylesheet of assets.ts). Both are public — the page
 * asks for the API token itself (api.md). Hashed asset names are cached for a year (`immutable`);
 * index.html is revalidated on every load (`no-cache` + ETag), so a new deployment is picked up at
 * once. A Content-Security-Policy limits the page to its own origin: no inline script, no external
 * resource, nothing to load from the network but this server.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { buildWebAssets, type WebAsset, type WebAssets } from './assets.js';

export interface WebPageOptions {
  /** Pre-built assets (e.g. shared by several instances in one process); built at registration otherwise. */
  readonly assets?: WebAssets;
}

/** Same-origin only; `blob:` for the proof/CSV downloads, `data:` for nothing but harmless images. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function send(req: FastifyRequest, reply: FastifyReply, a: WebAsset, extra: Record<string, string> = {}): FastifyReply {
  reply
    .headers(extra)
    .header('content-type', a.contentType)
    .header('etag', a.etag)
    .header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
    .header('x-content-type-options', 'nosniff');
  const inm = req.headers['if-none-match'];
  if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === a.etag)) return reply.code(304).send();
  return reply.send(a.body);
}

/**
 * Registers `GET /` and `GET /assets/:name` on `app` and returns the assets it serves. Builds the
 * assets first unless `opts.assets` is given (≈0.3 s; throws if the page sources do not bundle —
 * a deployment bug, so the service should not start).
 */
export async function registerWebPage(app: FastifyInstance, opts: WebPageOptions = {}): Promise<WebAssets> {
  const assets = opts.assets ?? (await buildWebAssets());
  app.get('/', (req, reply) =>
    send(req, reply, assets.index, { 'content-security-policy': CONTENT_SECURITY_POLICY, 'referrer-policy': 'no-referrer' }),
  );
  app.get<{ Params: { name: string } }>('/assets/:name', (req, reply) => {
    const a = assets.files.get(req.params.name);
    if (a === undefined) {
      return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `ledger: no asset ${JSON.stringify(req.params.name)}` } });
    }
    return send(req, reply, a);
  });
  return assets;
}
