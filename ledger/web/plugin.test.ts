/**
 * registerWebPage on a real fastify server over a real socket: content types, cache headers
 * (hashed assets immutable, index.html revalidated with its ETag → 304), the Content-Security-Policy,
 * 404 for unknown assets, and that the browser bundles reference no Node builtin (the verifier is
 * protocol's, built for the browser with the crypto stand-ins).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebAssets } from './assets.js';
import { CONTENT_SECURITY_POLICY, registerWebPage } from './plugin.js';

let app: FastifyInstance;
let base: string;
let assets: WebAssets;

beforeAll(async () => {
  app = Fastify();
  assets = await registerWebPage(app);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app.close();
});

describe('registerWebPage', () => {
  it('serves index.html with no-cache, an ETag, the CSP and the hashed asset names', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    const html = await res.text();
    for (const name of Object.values(assets.names)) expect(html).toContain(`/assets/${name}`);
    const again = await fetch(`${base}/`, { headers: { 'if-none-match': res.headers.get('etag') ?? '' } });
    expect(again.status).toBe(304);
  });

  it('serves the bundles as immutable JavaScript and CSS, and 404 JSON for an unknown asset', async () => {
    const js = await fetch(`${base}/assets/${assets.names.app}`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(js.headers.get('x-content-type-options')).toBe('nosniff');
    const css = await fetch(`${base}/assets/${assets.names.style}`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const missing = await fetch(`${base}/assets/app-NOPE.js`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
  });

  it('builds a verifier bundle that carries protocol’s verifier and no Node builtin', async () => {
    const text = await (await fetch(`${base}/assets/${assets.names.verifier}`)).text();
    expect(text).toMatch(/export\s*\{[^}]*verifyProof/);
    expect(text).toContain('c2sp.org/tlog-proof@v1');
    expect(text).not.toMatch(/from\s*"node:|require\("(node:)?crypto"\)/);
    expect(assets.buildMs).toBeGreaterThan(0);
  });
});
