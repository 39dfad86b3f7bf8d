import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isGatewayError } from '../errors.js';
import { OpsServer } from './http.js';
import { GatewayMetrics } from './metrics.js';
import { parsePrometheus, sampleSnapshot } from './ops-testkit.js';
import type { StatusSnapshot } from './snapshot.js';
import { checkSnapshot, fetchStatus } from './status-client.js';

const servers: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function start(snapshot: () => StatusSnapshot | Promise<StatusSnapshot> = sampleSnapshot): Promise<OpsServer> {
  const s = await OpsServer.start({ listen: { host: '127.0.0.1', port: 0 }, snapshot, metrics: new GatewayMetrics({ processMetrics: false }) });
  servers.push(s);
  return s;
}

describe('OpsServer', () => {
  describe('GET /healthz', () => {
    it('when the store is writable and the pipeline runs › 200 {"status":"ok"}', async () => {
      const s = await start();
      const res = await fetch(`${s.url}/healthz`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({ status: 'ok' });
    });

    it('when the store refuses appends › 503 with the reason', async () => {
      const base = sampleSnapshot();
      const s = await start(() => ({ ...base, store: { ...base.store, writable: false, lastError: 'gateway: store: quota exceeded' } }));
      const res = await fetch(`${s.url}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: 'unavailable', reasons: ['store not writable: gateway: store: quota exceeded'] });
    });

    it('when the pipeline is not running › 503 naming it', async () => {
      const base = sampleSnapshot();
      const s = await start(() => ({ ...base, ingest: { ...base.ingest, running: false } }));
      const res = await fetch(`${s.url}/healthz`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { reasons: string[] }).reasons).toEqual(['ingest pipeline not running']);
    });

    it('HEAD answers the status without a body', async () => {
      const s = await start();
      const res = await fetch(`${s.url}/healthz`, { method: 'HEAD' });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('');
    });
  });

  describe('GET /metrics', () => {
    it('answers Prometheus text with the values of a fresh snapshot per request', async () => {
      let stored = 100;
      const base = sampleSnapshot();
      const s = await start(() => ({ ...base, ingest: { ...base.ingest, stored: stored++ } }));
      const res = await fetch(`${s.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(parsePrometheus(await res.text()).get('packchain_gateway_frames_stored_total')).toBe(100);
      const again = parsePrometheus(await (await fetch(`${s.url}/metrics`)).text());
      expect(again.get('packchain_gateway_frames_stored_total')).toBe(101);
    });
  });

  describe('GET /status', () => {
    it('answers the snapshot as JSON, which the status client reads back', async () => {
      const s = await start();
      expect(await fetchStatus(s.url)).toEqual(sampleSnapshot());
    });
  });

  describe('other requests', () => {
    it('unknown path › 404 listing the routes; POST › 405 with Allow', async () => {
      const s = await start();
      const a = await fetch(`${s.url}/nope`);
      expect(a.status).toBe(404);
      expect(((await a.json()) as { routes: string[] }).routes).toEqual(['/healthz', '/metrics', '/status']);
      const b = await fetch(`${s.url}/status`, { method: 'POST' });
      expect(b.status).toBe(405);
      expect(b.headers.get('allow')).toBe('GET, HEAD');
    });

    it('when the snapshot provider throws › 500, counted, and the server keeps serving', async () => {
      let fail = true;
      const s = await start(() => {
        if (fail) throw new Error('boom');
        return sampleSnapshot();
      });
      const res = await fetch(`${s.url}/metrics`);
      expect(res.status).toBe(500);
      expect(((await res.json()) as { detail: string }).detail).toBe('boom');
      fail = false;
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      expect(s.stats).toEqual({ requests: 2, errors: 1 });
    });
  });

  describe('start', () => {
    it('when the port is taken › throws OPS_LISTEN naming the address', async () => {
      const blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
      servers.push({ close: () => new Promise<void>((r) => blocker.close(() => { r(); })) });
      const port = (blocker.address() as { port: number }).port;
      await expect(OpsServer.start({ listen: { host: '127.0.0.1', port }, snapshot: sampleSnapshot, metrics: new GatewayMetrics({ processMetrics: false }) })).rejects.toSatisfy(
        (e) => isGatewayError(e, 'OPS_LISTEN') && (e as Error).message.includes(`127.0.0.1:${port}: EADDRINUSE`),
      );
    });

    it('close() stops listening; a client then gets OPS_STATUS', async () => {
      const s = await start();
      const url = s.url;
      await s.close();
      await s.close(); // idempotent
      await expect(fetchStatus(url, 2000)).rejects.toSatisfy((e) => isGatewayError(e, 'OPS_STATUS') && (e as Error).message.includes('ECONNREFUSED'));
    });
  });
});

describe('checkSnapshot', () => {
  it.each([
    ['not an object', [1, 2]],
    ['no gateway', { ...sampleSnapshot(), gateway: undefined }],
    ['a bad store', { ...sampleSnapshot(), store: { size: 'many' } }],
    ['bad transports', { ...sampleSnapshot(), transports: [{ kind: 'serial' }] }],
  ])('when the answer is %s › throws OPS_STATUS', (_what, v) => {
    expect(() => checkSnapshot(v)).toThrow(/^gateway: status: /);
  });

  it('when another HTTP server answers › OPS_STATUS, not a crash', async () => {
    const s = await OpsServer.start({ listen: { host: '127.0.0.1', port: 0 }, snapshot: () => ({ hello: 'world' }) as unknown as StatusSnapshot, metrics: new GatewayMetrics({ processMetrics: false }) });
    servers.push(s);
    await expect(fetchStatus(s.url)).rejects.toSatisfy((e) => isGatewayError(e, 'OPS_STATUS') && (e as Error).message.includes('no valid gateway.name'));
  });
});
