/**
 * The verification stage of the ingest pipeline (docs/gateway.md "Pipeline"): a bounded queue of
 * frames in front of a pool of worker threads that verify COSE_Sign1 signatures with node:crypto
 * (verify-frame.ts). When the load is light the frames are verified inline on the main thread —
 * a worker round trip costs more than one verification — and when the queue is deep they go to the
 * workers in batches, so verification spreads over every core. When every worker already holds all
 * the batches it may, the main thread verifies a few frames itself per turn (`helpBatch`) rather
 * than wait: a frame verified there costs less CPU than one sent to a worker (no copy into a batch,
 * no reply to take apart), and the main thread's idle time becomes verification. Results are
 * delivered strictly in submission order, so the dedupe stage sees each pack's frames in the order
 * they arrived.
 *
 * Back-pressure: the queue holds at most `maxQueued` frames; `submit` returns false beyond that and
 * the caller refuses the frame without acking it (INGEST_BUSY) — the device keeps it in its resend
 * ring — rather than letting memory grow with what devices send.
 *
 * Workers run `verify-worker.js` next to this file when it exists (compiled output in dist/);
 * otherwise (tests and `tsx` in development) `verify-worker.ts` through tsx's loader, registered
 * inside the worker by a small eval'd bootstrap (Node 20 ignores `--import` in a worker's execArgv
 * for the worker's own entry).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DeviceKey, DeviceKeyWire } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { NO_LEAF, verifyFrame, verifyFrameAndLeaf, type BatchReply, type BatchRequest, type FrameVerdict, type LeafFields } from './verify-frame.js';

/** A frame to verify and the device it claims to come from (its verified certificate). */
export interface VerifyJob {
  readonly cose: Uint8Array;
  readonly key: DeviceKey;
  /** SHA-256 of the device certificate: the workers' key cache id, and the leaf's certSha256. */
  readonly certSha256: Uint8Array;
  /** When given, a genuine frame's verdict carries its encoded log leaf and leaf hash (verifyFrameAndLeaf). */
  readonly leaf?: LeafFields;
}

export interface VerifyPoolOptions {
  /** Worker threads (default: available parallelism); 0 verifies everything inline. */
  readonly workers?: number;
  /** Frames per worker batch, at most (default 256). */
  readonly batchMax?: number;
  /** With every worker idle, a queue of at most this many frames is verified inline (default 8: bench/gateway-ingest.ts measures the crossover). */
  readonly inlineBelow?: number;
  /**
   * With every worker holding all the batches it may, the main thread verifies up to this many
   * queued frames itself per turn of the event loop (default 32: ≈ 3.5 ms of Ed25519 verification
   * on the 2-core x86 machine the benchmarks run on, more on a slower core; 0: never).
   * bench/gateway-ingest.ts measures it.
   */
  readonly helpBatch?: number;
  /** Frames queued or in flight, at most (default 8192). */
  readonly maxQueued?: number;
  /** Imported keys cached per worker (default 4096). */
  readonly keyCacheSize?: number;
}

export interface VerifyPoolStats {
  readonly workers: number;
  readonly queued: number;
  readonly inline: number;
  readonly offloaded: number;
  readonly batches: number;
  readonly refused: number;
  readonly workerFailures: number;
}

interface Item {
  readonly job: VerifyJob;
  readonly done: (v: FrameVerdict) => void;
  verdict: FrameVerdict | undefined;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  /** Batches posted and not yet answered, oldest first (a worker answers in order). */
  batches: { id: number; items: Item[] }[];
}

/**
 * Batches a worker may hold at once: two, so it starts the next batch while the main thread is still
 * taking in the reply to the previous one (no idle gap per round trip).
 */
const BATCHES_PER_WORKER = 2;

/** Where the worker entry lives: compiled JS next to this file, else the TS source through tsx. */
function workerEntry(): { js: URL } | { ts: URL; tsxApi: string } {
  const js = new URL('./verify-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { js };
  const ts = new URL('./verify-worker.ts', import.meta.url);
  // tsx's ESM API as a file URL: the CommonJS build's register() mis-resolves its loader when called
  // from an eval'd worker, the ESM build works.
  const cjs = createRequire(import.meta.url).resolve('tsx/esm/api');
  const mjs = cjs.replace(/\.cjs$/, '.mjs');
  return { ts, tsxApi: existsSync(mjs) ? pathToFileURL(mjs).href : 'tsx/esm/api' };
}

export class VerifyPool {
  private readonly slots: Slot[] = [];
  private readonly waiting: Item[] = [];
  /** Every item not yet delivered, in submission order (head index avoids O(n) shifts). */
  private order: Item[] = [];
  private head = 0;
  private scheduled = false;
  private closed = false;
  private nextBatch = 1;
  private readonly batchMax: number;
  private readonly inlineBelow: number;
  private readonly helpBatch: number;
  private readonly maxQueued: number;
  private readonly keyCacheSize: number;
  private counts = { inline: 0, offloaded: 0, batches: 0, refused: 0, workerFailures: 0 };

  private constructor(opts: VerifyPoolOptions) {
    this.batchMax = opts.batchMax ?? 256;
    this.inlineBelow = opts.inlineBelow ?? 8;
    this.helpBatch = opts.helpBatch ?? 32;
    this.maxQueued = opts.maxQueued ?? 8192;
    this.keyCacheSize = opts.keyCacheSize ?? 4096;
  }

  /**
   * Starts the pool and waits until every worker is ready. Throws GatewayError INGEST_CONFIG for
   * options out of range, INGEST_WORKER when a worker cannot start (missing entry file, loader error).
   */
  static async start(opts: VerifyPoolOptions = {}): Promise<VerifyPool> {
    const n = opts.workers ?? availableParallelism();
    const checks: [string, number | undefined, number, number][] = [
      ['workers', n, 0, 256],
      ['batchMax', opts.batchMax, 1, 65_536],
      ['inlineBelow', opts.inlineBelow, 0, 65_536],
      ['helpBatch', opts.helpBatch, 0, 65_536],
      ['maxQueued', opts.maxQueued, 1, 10_000_000],
      ['keyCacheSize', opts.keyCacheSize, 1, 10_000_000],
    ];
    for (const [name, v, lo, hi] of checks) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < lo || v > hi)) {
        throw new GatewayError('INGEST_CONFIG', `gateway: verify pool ${name} must be an integer in ${lo}..${hi}, got ${v}`);
      }
    }
    const pool = new VerifyPool(opts);
    try {
      await Promise.all(Array.from({ length: n }, () => pool.spawn()));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  private spawn(): Promise<void> {
    const entry = workerEntry();
    const workerData = { keyCacheSize: this.keyCacheSize };
    const worker =
      'js' in entry
        ? new Worker(entry.js, { workerData })
        : new Worker(
            `import(${JSON.stringify(entry.tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry.ts.href)}); }).catch((e) => { throw e; });`,
            { eval: true, workerData },
          );
    worker.unref();
    const slot: Slot = { worker, ready: false, batches: [] };
    this.slots.push(slot);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (m: BatchReply | 'ready') => {
        if (m === 'ready') {
          slot.ready = true;
          resolve();
          this.schedule();
          return;
        }
        this.finish(slot, m);
      });
      worker.on('error', (e) => {
        if (!slot.ready) reject(new GatewayError('INGEST_WORKER', `gateway: verification worker failed to start: ${e.message}`, { cause: e }));
        this.lost(slot, e.message);
      });
      worker.on('exit', (code) => {
        if (!slot.ready) reject(new GatewayError('INGEST_WORKER', `gateway: verification worker exited with code ${code} before it was ready`));
        this.lost(slot, `exited with code ${code}`);
      });
    });
  }

  /** A worker died: its batches fail (not acked, resent by the devices) and a new worker takes its place. */
  private lost(slot: Slot, why: string): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    const wasReady = slot.ready;
    const batches = slot.batches.splice(0);
    for (const batch of batches) {
      for (const item of batch.items) item.verdict = { ok: false, code: 'WORKER_FAILED', detail: `gateway: verification worker ${why}` };
    }
    if (batches.length > 0) this.deliver();
    if (this.closed) return;
    this.counts.workerFailures++;
    // Respawn only a worker that had worked: one that never started would fail again in a loop.
    if (wasReady) this.spawn().catch(() => undefined);
    this.schedule();
  }

  get stats(): VerifyPoolStats {
    return { workers: this.slots.length, queued: this.order.length - this.head, ...this.counts };
  }

  /** Frames queued or in flight. */
  get depth(): number {
    return this.order.length - this.head;
  }

  /**
   * Queues a frame; `done` is called exactly once with its verdict, in submission order across all
   * frames. Returns false (and never calls `done`) when the queue is full or the pool is closed.
   */
  submit(job: VerifyJob, done: (v: FrameVerdict) => void): boolean {
    if (this.closed || this.depth >= this.maxQueued) {
      this.counts.refused++;
      return false;
    }
    const item: Item = { job, done, verdict: undefined };
    this.order.push(item);
    this.waiting.push(item);
    this.schedule();
    return true;
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    if (this.waiting.length === 0) return;
    const ready = this.slots.filter((s) => s.ready);
    const light = ready.every((s) => s.batches.length === 0) && this.waiting.length <= this.inlineBelow;
    if (ready.length === 0 || light) {
      // Inline: cheaper than a worker round trip for a handful of frames; bounded per turn so a deep
      // queue without workers does not block the event loop for long.
      this.inline(this.batchMax);
      return;
    }
    // Least loaded workers first; each takes an even share of the queue, up to batchMax.
    const open = ready.filter((s) => s.batches.length < BATCHES_PER_WORKER).sort((a, b) => a.batches.length - b.batches.length);
    for (let k = 0; k < open.length && this.waiting.length > 0; k++) {
      const slot = open[k];
      if (slot === undefined) break;
      const share = Math.min(this.batchMax, Math.ceil(this.waiting.length / (open.length - k)));
      this.post(slot, this.waiting.splice(0, share));
    }
    // Every worker is full and frames still wait: the main thread takes a few itself.
    if (this.waiting.length > 0 && this.helpBatch > 0) this.inline(this.helpBatch);
  }

  /** Verifies up to `max` queued frames on this thread, delivers what is ready, and comes back for the rest next turn. */
  private inline(max: number): void {
    const items = this.waiting.splice(0, max);
    for (const item of items) {
      const { job } = item;
      item.verdict = job.leaf ? verifyFrameAndLeaf(job.cose, job.key, job.certSha256, job.leaf) : verifyFrame(job.cose, job.key);
    }
    this.counts.inline += items.length;
    this.deliver();
    if (this.waiting.length > 0) this.schedule();
  }

  private post(slot: Slot, items: Item[]): void {
    const keys: DeviceKeyWire[] = [];
    const keyIndex = new Map<DeviceKey, number>();
    let bytes = 0;
    let wantLeaves = false;
    for (const it of items) {
      bytes += it.job.cose.length;
      wantLeaves ||= it.job.leaf !== undefined;
    }
    const data = new Uint8Array(bytes);
    const ends = new Uint32Array(items.length);
    const keyOf = new Uint32Array(items.length);
    const receivedAt = new Float64Array(wantLeaves ? items.length : 0);
    const sourceOf = new Uint32Array(wantLeaves ? items.length : 0);
    const sources: string[] = [];
    const sourceIndex = new Map<string, number>();
    let at = 0;
    items.forEach((it, i) => {
      data.set(it.job.cose, at);
      at += it.job.cose.length;
      ends[i] = at;
      let k = keyIndex.get(it.job.key);
      if (k === undefined) {
        k = keys.length;
        keyIndex.set(it.job.key, k);
        const { publicKey, kid, packSerial } = it.job.key;
        keys.push({ certSha256: it.job.certSha256, packSerial, alg: publicKey.alg, raw: publicKey.raw, kid });
      }
      keyOf[i] = k;
      if (!wantLeaves) return;
      const leaf = it.job.leaf;
      if (leaf === undefined) {
        sourceOf[i] = NO_LEAF;
        return;
      }
      let s = sourceIndex.get(leaf.source);
      if (s === undefined) {
        s = sources.length;
        sourceIndex.set(leaf.source, s);
        sources.push(leaf.source);
      }
      sourceOf[i] = s;
      receivedAt[i] = leaf.receivedAt;
    });
    const id = this.nextBatch++;
    slot.batches.push({ id, items });
    this.counts.offloaded += items.length;
    this.counts.batches++;
    const transfer: ArrayBuffer[] = [data.buffer, ends.buffer, keyOf.buffer];
    let req: BatchRequest = { id, keys, data, ends, keyOf };
    if (wantLeaves) {
      req = { ...req, leaves: { receivedAt, sources, sourceOf } };
      transfer.push(receivedAt.buffer, sourceOf.buffer);
    }
    slot.worker.postMessage(req, transfer);
  }

  private finish(slot: Slot, reply: BatchReply): void {
    const batch = slot.batches[0];
    if (batch?.id !== reply.id) return; // a reply for a batch already failed: ignore
    slot.batches.shift();
    const failures = new Map(reply.errors.map(([i, code, detail, counter]) => [i, { code, detail, counter }]));
    const leaves = reply.leaves;
    const ids = Buffer.from(reply.ids.buffer, reply.ids.byteOffset, reply.ids.byteLength);
    batch.items.forEach((item, i) => {
      if (reply.ok[i] === 1) {
        // The identity is kept (dedupe's window): a string, so it does not pin the reply buffer.
        const identity = ids.toString('latin1', i === 0 ? 0 : (reply.idEnds[i - 1] ?? 0), reply.idEnds[i] ?? 0);
        const counter = reply.counters[i] ?? -1;
        const time = reply.times[i] ?? 0;
        const from = i === 0 ? 0 : (leaves?.ends[i - 1] ?? 0);
        const to = leaves?.ends[i] ?? 0;
        if (leaves && item.job.leaf && to > from) {
          // Views: the leaf bytes are copied into the segment file's buffer and then dropped.
          item.verdict = { ok: true, counter, time, identity, leaf: { data: leaves.data.subarray(from + 1, to), leafHash: leaves.hashes.subarray(i * 32, i * 32 + 32) } };
        } else if (item.job.leaf) {
          item.verdict = { ok: false, code: 'VERIFY_INTERNAL', detail: 'gateway: worker reply without the leaf it was asked for' };
        } else {
          item.verdict = { ok: true, counter, time, identity };
        }
      } else {
        const f = failures.get(i);
        const { code = 'VERIFY_INTERNAL', detail = 'gateway: worker reply without a verdict', counter = -1 } = f ?? {};
        item.verdict = counter >= 0 ? { ok: false, code, detail, counter } : { ok: false, code, detail };
      }
    });
    this.deliver();
    this.schedule();
  }

  /** Hands out verdicts in submission order: an item waits for every item submitted before it. */
  private deliver(): void {
    while (this.head < this.order.length) {
      const item = this.order[this.head];
      if (item?.verdict === undefined) break;
      this.head++;
      item.done(item.verdict);
    }
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }

  /** Stops the workers. Frames still queued are delivered as INGEST_BUSY (not acked). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const item of this.order.slice(this.head)) {
      item.verdict ??= { ok: false, code: 'INGEST_BUSY', detail: 'gateway: ingest closing' };
    }
    this.waiting.length = 0;
    this.deliver();
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
