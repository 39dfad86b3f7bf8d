/**
 * The client side of GET /status (http.ts), for `packchain gateway status`: fetches a running
 * gateway's StatusSnapshot with a deadline and checks its shape before anything prints it — the
 * answer comes over the network, possibly from another program on that port or another version
 * of the gateway, so a wrong shape is a clear OPS_STATUS error, never a TypeError deep in a table.
 */
import { GatewayError } from '../errors.js';
import type { StatusSnapshot } from './snapshot.js';

/** A real answer is a few KiB per device; this bounds what a wrong server can make us hold. */
const MAX_STATUS_BYTES = 16 << 20;

const fail = (why: string, cause?: unknown): GatewayError => new GatewayError('OPS_STATUS', `gateway: status: ${why}`, cause === undefined ? undefined : { cause });

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Throws OPS_STATUS naming the first part of `v` that is not a StatusSnapshot. */
export function checkSnapshot(v: unknown): StatusSnapshot {
  if (!isObj(v)) throw fail('expected a JSON object from /status');
  const need: [string, (x: Record<string, unknown>) => boolean][] = [
    ['gateway.name', (x) => isObj(x.gateway) && typeof x.gateway.name === 'string' && typeof x.gateway.now === 'number' && typeof x.gateway.startedAt === 'number'],
    ['store', (x) => isObj(x.store) && typeof x.store.size === 'number' && typeof x.store.usageBytes === 'number' && typeof x.store.writable === 'boolean'],
    ['transports', (x) => Array.isArray(x.transports) && x.transports.every((t) => isObj(t) && typeof t.kind === 'string' && Array.isArray(t.endpoints))],
    ['ingest', (x) => isObj(x.ingest) && typeof x.ingest.running === 'boolean' && Array.isArray(x.ingest.devices) && isObj(x.ingest.quarantine)],
    ['sync', (x) => isObj(x.sync) && typeof x.sync.lagEntries === 'number'],
    ['mqtt', (x) => isObj(x.mqtt) && typeof x.mqtt.enabled === 'boolean'],
  ];
  for (const [what, ok] of need) if (!ok(v)) throw fail(`the answer has no valid ${what}; expected a packchain gateway's /status (another program on that port, or another version?)`);
  return v as unknown as StatusSnapshot;
}

/**
 * GET `<baseUrl>/status`. Throws OPS_STATUS when the URL is invalid, the gateway does not answer
 * within `timeoutMs`, answers with an HTTP error, or with something that is not a StatusSnapshot.
 */
export async function fetchStatus(baseUrl: string, timeoutMs = 5000): Promise<StatusSnapshot> {
  let url: URL;
  try {
    url = new URL('/status', baseUrl);
  } catch (e) {
    throw fail(`${JSON.stringify(baseUrl)} is not a URL; expected e.g. http://127.0.0.1:9464`, e);
  }
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { Accept: 'application/json' } });
  } catch (e) {
    const c = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = (e as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (c?.code ?? c?.message ?? (e as Error).message);
    throw fail(`no answer from ${url.href} (${why}); is the gateway running, and is http.listen this address?`, e);
  }
  if (!res.ok) throw fail(`${url.href} answered HTTP ${res.status}; expected 200`);
  const len = Number(res.headers.get('content-length') ?? '0');
  if (len > MAX_STATUS_BYTES) throw fail(`${url.href} answered ${len} bytes; expected at most ${MAX_STATUS_BYTES}`);
  let body: unknown;
  try {
    const text = await res.text();
    if (text.length > MAX_STATUS_BYTES) throw fail(`${url.href} answered more than ${MAX_STATUS_BYTES} bytes`);
    body = JSON.parse(text);
  } catch (e) {
    if (e instanceof GatewayError) throw e;
    throw fail(`${url.href} did not answer JSON`, e);
  }
  return checkSnapshot(body);
}
