/**
 * Frame-signature verification for uploads (docs/ledger.md "Verification and witnessing"): a small
 * batch is verified inline on the main thread (a worker round trip costs more than a few
 * verifications); a large one is cut into sub-batches spread over worker threads so a backlog
 * catch-up uses every core. Verdicts come back in the order of the request, merged into one
 * BatchReply.
 *
 * Workers run `verify-worker.js` next to this file when it exists (compiled output in dist/);
 * otherwise (tests, tsx in development) `verify-worker.ts` through tsx's ESM loader registered by a
 * small eval'd bootstrap inside the worker (Node 20 ignores `--import` in a worker's execArgv).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { LedgerError } from './errors.js';
import { DeviceKeyCache, type DeviceKeyWire } from '../protocol/index.js';
import { FIELD_COUNT, verifyBatch, type BatchReply, type BatchRequest } from './verify-frame.js';

/** One frame to verify: its COSE bytes and the index of its device key in the request's key list. */
export interface VerifyRequest {
  readonly keys: readonly DeviceKeyWire[];
  readonly frames: readonly Uint8Array[];
  readonly keyOf: readonly number[];
}

interface Slot {
  readonly worker: Worker;
  busy: number;
  readonly waiting: Map<number, { resolve: (r: BatchReply) => void; reject: (e: Error) => void }>;
}

function workerEntry(): { js: URL } | { ts: URL; tsxApi: string } {
  const js = new URL('./verify-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { js };
  const ts = new URL('./verify-worker.ts', import.meta.url);
  const cjs = createRequire(import.meta.url).resolve('tsx/esm/api');
  const mjs = cjs.replace(/\.cjs$/, '.mjs');
  return { ts, tsxApi: existsSync(mjs) ? pathToFileURL(mjs).href : 'tsx/esm/api' };
}

export class VerifyPool {
  private readonly slots: Slot[] = [];
  private readonly inlineCache = new DeviceKeyCache(4096);
  private nextId = 1;
  private closed = false;

  private constructor(
    private readonly inlineBelow: number,
    private readonly batchMax: number,
  ) {}

  /** Starts `threads` workers (default: available cores) and waits until they are ready. Throws STORAGE_CONFIG for a bad count. */
  static async start(threads = availableParallelism(), opts: { inlineBelow?: number; batchMax?: number } = {}): Promise<VerifyPool> {
    if (!Number.isSafeInteger(threads) || threads < 0 || threads > 256) {
      throw new LedgerError('STORAGE_CONFIG', `ledger: verifyThreads must be an integer in 0..256, got ${threads}`);
    }
    const pool = new VerifyPool(opts.inlineBelow ?? 64, opts.batchMax ?? 512);
    try {
      await Promise.all(Array.from({ length: threads }, () => pool.spawn()));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  get threads(): number {
    return this.slots.length;
  }

  private spawn(): Promise<void> {
    const entry = workerEntry();
    const worker =
      'js' in entry
        ? new Worker(entry.js)
        : new Worker(`import(${JSON.stringify(entry.tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry.ts.href)}); });`, { eval: true });
    worker.unref();
    const slot: Slot = { worker, busy: 0, waiting: new Map() };
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      worker.on('message', (m: BatchReply | 'ready') => {
        if (m === 'ready') {
          ready = true;
          this.slots.push(slot);
          resolve();
          return;
        }
        const w = slot.waiting.get(m.id);
        if (w === undefined) return;
        slot.waiting.delete(m.id);
        slot.busy--;
        w.resolve(m);
      });
      const fail = (why: string): void => {
        if (!ready) reject(new LedgerError('STORAGE_CONFIG', `ledger: verification worker failed to start: ${why}`));
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots.splice(i, 1);
        for (const w of slot.waiting.values()) w.reject(new Error(`ledger: verification worker ${why}`));
        slot.waiting.clear();
        if (ready && !this.closed) this.spawn().catch(() => undefined);
      };
      worker.on('error', (e) => {
        fail(e.message);
      });
      worker.on('exit', (code) => {
        if (!this.closed) fail(`exited with code ${code}`);
      });
    });
  }

  /** Verifies every frame; resolves with the verdicts in request order. Never rejects for bad frames. */
  async verify(req: VerifyRequest): Promise<BatchReply> {
    const n = req.frames.length;
    if (n === 0 || this.slots.length === 0 || n < this.inlineBelow || this.closed) return verifyBatch(this.pack(req, 0, n), this.inlineCache);
    const per = Math.min(this.batchMax, Math.ceil(n / this.slots.length));
    const parts: Promise<BatchReply>[] = [];
    const starts: number[] = [];
    for (let lo = 0; lo < n; lo += per) {
      starts.push(lo);
      parts.push(this.post(this.pack(req, lo, Math.min(n, lo + per))));
    }
    let replies: BatchReply[];
    try {
      replies = await Promise.all(parts);
    } catch {
      // A worker died mid-batch (it is respawned): verify this request on the main thread instead.
      return verifyBatch(this.pack(req, 0, n), this.inlineCache);
    }
    const ok = new Uint8Array(n);
    const values = new Float64Array(n * FIELD_COUNT);
    const hashes = new Uint8Array(n * 32);
    const errors: [number, string, string][] = [];
    replies.forEach((r, k) => {
      const lo = starts[k] ?? 0;
      ok.set(r.ok, lo);
      values.set(r.values, lo * FIELD_COUNT);
      hashes.set(r.hashes, lo * 32);
      for (const [i, code, msg] of r.errors) errors.push([i + lo, code, msg]);
    });
    return { id: 0, ok, values, hashes, errors };
  }

  /** Frames [lo, hi) of `req` as one batch with only the keys they use. */
  private pack(req: VerifyRequest, lo: number, hi: number): BatchRequest {
    let bytes = 0;
    for (let i = lo; i < hi; i++) bytes += req.frames[i]?.length ?? 0;
    const data = new Uint8Array(bytes);
    const ends = new Uint32Array(hi - lo);
    const keyOf = new Uint32Array(hi - lo);
    const keys: DeviceKeyWire[] = [];
    const remap = new Map<number, number>();
    let at = 0;
    for (let i = lo; i < hi; i++) {
      const f = req.frames[i] ?? new Uint8Array(0);
      data.set(f, at);
      at += f.length;
      ends[i - lo] = at;
      const k = req.keyOf[i] ?? 0;
      let j = remap.get(k);
      if (j === undefined) {
        j = keys.length;
        remap.set(k, j);
        const w = req.keys[k];
        if (w !== undefined) keys.push(w);
      }
      keyOf[i - lo] = j;
    }
    return { id: this.nextId++, keys, data, ends, keyOf };
  }

  private post(batch: BatchRequest): Promise<BatchReply> {
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    return new Promise<BatchReply>((resolve, reject) => {
      slot.waiting.set(batch.id, { resolve, reject });
      slot.worker.postMessage(batch, [batch.data.buffer as ArrayBuffer, batch.ends.buffer as ArrayBuffer, batch.keyOf.buffer as ArrayBuffer]);
    });
  }

  /** Stops the workers. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const s of slots) for (const w of s.waiting.values()) w.reject(new Error('ledger: verify pool closed'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
