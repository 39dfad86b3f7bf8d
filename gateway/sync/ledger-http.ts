/**
 * The gateway's side of the sync wire (docs/protocol.md §10): two signed HTTP requests to the
 * upstream ledger, GET /v1/gateway/state and POST /v1/gateway/upload (body application/cbor),
 * each carrying `Authorization: Packchain-Gateway key=… ts=… nonce=… sig=…` made by protocol
 * signSyncRequest with the gateway's log key and a fresh random nonce, so a captured request cannot
 * be replayed. The answer is hostile like any network input: its body is read up to a cap before
 * parsing, JSON is checked by protocol parseSyncState / parseUploadResult, and every failure is a
 * GatewayError with a Sync code (SYNC_UNREACHABLE, SYNC_TIMEOUT, SYNC_REFUSED with the ledger's
 * error code, SYNC_ANSWER) — never an exception of fetch or JSON leaking out. Node's built-in
 * fetch (undici) is the HTTP client: nothing to add for HTTP/1.1 with keep-alive and TLS.
 */
import { randomBytes } from 'node:crypto';
import { parseSyncState, parseUploadResult, signSyncRequest, SYNC_NONCE_BYTES, type NoteSigner, type SyncState, type UploadResult } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';

/** The largest answer read (an upload result lists at most 100 rejects; a state is < 2 KiB). */
export const MAX_ANSWER_BYTES = 1 << 20;

export const STATE_PATH = '/v1/gateway/state';
export const UPLOAD_PATH = '/v1/gateway/upload';

/** An error answer of the ledger: HTTP status and its `{"error": {code, message}}` (when it sent one). */
export interface LedgerRefusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  /** The state the ledger attached to a 409 (UPLOAD_GAP, CHECKPOINT_STALE), when valid. */
  readonly state?: SyncState;
}

const REFUSAL = Symbol('refusal');

/** A SYNC_REFUSED GatewayError carrying the ledger's answer (read it back with refusalOf). */
function refused(r: LedgerRefusal): GatewayError {
  const e = new GatewayError('SYNC_REFUSED', `gateway: sync: the ledger refused the request: ${r.status} ${r.code}: ${r.message.slice(0, 300)}`);
  Object.defineProperty(e, REFUSAL, { value: r });
  return e;
}

/** The ledger's answer inside a SYNC_REFUSED error, else undefined. */
export function refusalOf(e: unknown): LedgerRefusal | undefined {
  return e instanceof GatewayError && e.code === 'SYNC_REFUSED' ? ((e as unknown as Record<symbol, LedgerRefusal | undefined>)[REFUSAL]) : undefined;
}

export interface LedgerHttpOptions {
  /** Base URL of the ledger (config upstream.url); its path is prefixed to the routes. */
  readonly url: string;
  readonly signer: NoteSigner;
  readonly timeoutMs: number;
  /** ms since the epoch, for the signed timestamp. */
  readonly now: () => number;
  /** Nonce source (default node:crypto randomBytes). */
  readonly nonce?: () => Uint8Array;
}

/** Traffic counters (cumulative). */
export interface LedgerHttpStats {
  requests: number;
  bytesSent: number;
  bytesReceived: number;
  /** Answers that failed to parse or check (SYNC_ANSWER). */
  parseErrors: number;
}

const CODE_RE = /^[A-Z][A-Z0-9_]{0,63}$/;
// eslint-disable-next-line no-control-regex -- the ledger's text reaches logs and a terminal: strip control characters
const clean = (s: string): string => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, 500);

export class LedgerHttp {
  readonly stats: LedgerHttpStats = { requests: 0, bytesSent: 0, bytesReceived: 0, parseErrors: 0 };
  readonly #base: URL;

  constructor(private readonly o: LedgerHttpOptions) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch (e) {
      throw new GatewayError('SYNC_CONFIG', `gateway: sync: upstream.url ${JSON.stringify(o.url)} is not a URL`, { cause: e });
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') {
      throw new GatewayError('SYNC_CONFIG', 'gateway: sync: upstream.url: expected http(s)://host[:port][/path] without credentials, query or fragment');
    }
    this.#base = new URL(u.href.endsWith('/') ? u.href.slice(0, -1) : u.href);
  }

  /** GET /v1/gateway/state. Throws SYNC_UNREACHABLE, SYNC_TIMEOUT, SYNC_REFUSED, SYNC_ANSWER. */
  async state(signal?: AbortSignal): Promise<SyncState> {
    const v = await this.#request('GET', STATE_PATH, new Uint8Array(0), signal);
    return this.#parse(() => parseSyncState(v), 'state');
  }

  /** POST /v1/gateway/upload with a CBOR body (protocol encodeUploadRequest). Throws as state(). */
  async upload(body: Uint8Array, signal?: AbortSignal): Promise<UploadResult> {
    const v = await this.#request('POST', UPLOAD_PATH, body, signal);
    return this.#parse(() => parseUploadResult(v), 'upload result');
  }

  #parse<T>(f: () => T, what: string): T {
    try {
      return f();
    } catch (e) {
      this.stats.parseErrors++;
      throw new GatewayError('SYNC_ANSWER', `gateway: sync: the ledger's ${what} is malformed: ${clean((e as Error).message)}`, { cause: e });
    }
  }

  async #request(method: 'GET' | 'POST', route: string, body: Uint8Array, outer?: AbortSignal): Promise<unknown> {
    const path = `${this.#base.pathname === '/' ? '' : this.#base.pathname}${route}`;
    const url = `${this.#base.origin}${path}`;
    const nonce = this.o.nonce?.() ?? new Uint8Array(randomBytes(SYNC_NONCE_BYTES));
    const authorization = signSyncRequest({ method, path, timestamp: this.o.now(), nonce, body }, this.o.signer);
    const timeout = AbortSignal.timeout(this.o.timeoutMs);
    const signal = outer === undefined ? timeout : AbortSignal.any([timeout, outer]);
    this.stats.requests++;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization, accept: 'application/json', ...(method === 'POST' ? { 'content-type': 'application/cbor' } : {}) },
        ...(method === 'POST' ? { body } : {}),
        signal,
        redirect: 'error',
      });
      this.stats.bytesSent += body.length;
      text = await readCapped(res, MAX_ANSWER_BYTES);
      this.stats.bytesReceived += Buffer.byteLength(text);
    } catch (e) {
      if (timeout.aborted) throw new GatewayError('SYNC_TIMEOUT', `gateway: sync: ${method} ${path}: no answer within ${this.o.timeoutMs} ms (upstream.timeoutMs)`, { cause: e });
      if (e instanceof GatewayError) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (e as Error).message;
      throw new GatewayError('SYNC_UNREACHABLE', `gateway: sync: ${method} ${url}: ${clean(why)}`, { cause: e });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      if (res.ok) {
        this.stats.parseErrors++;
        throw new GatewayError('SYNC_ANSWER', `gateway: sync: ${method} ${path}: answer ${res.status} is not JSON`, { cause: e });
      }
      json = undefined;
    }
    if (!res.ok) throw refused(this.#refusal(res.status, json));
    return json;
  }

  #refusal(status: number, json: unknown): LedgerRefusal {
    const err = isRecord(json) && isRecord(json['error']) ? json['error'] : undefined;
    const code = typeof err?.['code'] === 'string' && CODE_RE.test(err['code']) ? err['code'] : `HTTP_${status}`;
    const message = typeof err?.['message'] === 'string' ? clean(err['message']) : '(no error body)';
    let state: SyncState | undefined;
    if (isRecord(json) && json['state'] !== undefined) {
      try {
        state = parseSyncState(json['state']);
      } catch {
        this.stats.parseErrors++;
      }
    }
    return { status, code, message, ...(state === undefined ? {} : { state }) };
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads a response body as UTF-8 text, at most `cap` bytes (SYNC_ANSWER beyond; the rest is not read). */
async function readCapped(res: Response, cap: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > cap) {
    await res.body?.cancel();
    throw new GatewayError('SYNC_ANSWER', `gateway: sync: answer of ${declared} bytes exceeds the ${cap}-byte cap`);
  }
  if (res.body === null) return '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > cap) {
      await reader.cancel();
      throw new GatewayError('SYNC_ANSWER', `gateway: sync: answer exceeds the ${cap}-byte cap`);
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString('utf8');
}
