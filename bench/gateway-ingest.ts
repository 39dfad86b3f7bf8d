/**
 * Ingest benchmarks (issue 6 item 8): frames per second from an in-memory source through the whole
 * ingest path — session gate, COSE verification on worker threads over all cores, dedupe, durable
 * group-committed append to a real LogStore on disk, acks — reported as a ratio to raw
 * crypto.verify × cores measured in the same run (target ≥ 0.85), and to raw verify measured on the
 * same number of worker threads at once. Each run is timed after a warm-up (the first quarter of its
 * frames), so the figure is the gateway's steady state; the whole run's rate from a cold start is
 * printed beside it. Also the inline/worker crossover of the verification pool:
 * throughput at small queue depths verified inline versus on workers, which sets the pool's
 * `inlineBelow` default. Frames are signed once with node:crypto outside the timed runs.
 *
 * Run alone: node --import tsx bench/gateway-ingest.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Session } from 'node:inspector/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { gatewayOrigin, parseSign1, verifySignature, type Message, type TrustStore, type VerifiedDevice } from '../protocol/index.js';
import { TestFactory, type TestPack } from '../gateway/ingest/ingest-testkit.js';
import { type DeviceChannel, IngestPipeline, logPort, LogStore, VerifyPool } from '../gateway/index.js';
import { measure, splitThreadCpu, startProfiler, stopProfiler, threadCpuMs, type Result } from './harness.js';

/** BENCH_HOLD=n: the pipeline's holdInputAt (frames in flight at which input is held back) instead of its default, to compare. */
export const holdInputAt = (): { holdInputAt?: number } => (process.env['BENCH_HOLD'] === undefined ? {} : { holdInputAt: Number(process.env['BENCH_HOLD']) });

/** BENCH_PROFILE=path: a main-thread CPU profile of each ingest run's timed part, written to path-ingest-<n>.cpuprofile. */
const PROFILE = process.env['BENCH_PROFILE'];
let profiles = 0;

export interface Fixture {
  readonly trust: TrustStore;
  readonly packs: readonly TestPack[];
  /** frames[p][i]: pack p's i-th frame. */
  readonly frames: readonly (readonly Uint8Array[])[];
}

export async function fixture(packCount: number, perPack: number): Promise<Fixture> {
  const factory = await TestFactory.create('Bench');
  const trust = await factory.trust();
  const packs: TestPack[] = [];
  for (let p = 0; p < packCount; p++) packs.push(await factory.pack(`BENCH-${String(p).padStart(4, '0')}`));
  const frames = packs.map((pack) => Array.from({ length: perPack }, (_, i) => pack.frame(i)));
  return { trust, packs, frames };
}

/** Raw crypto.verify of the fixture's Sig_structures on this thread, key objects cached. */
export function rawVerifyRate(fx: Fixture): number {
  const pack = fx.packs[0];
  const cose = fx.frames[0]?.[0];
  if (!pack || !cose) throw new Error('empty fixture');
  const device = fx.trust.verifyChain(pack.chain, new Date());
  const parsed = parseSign1(cose);
  return measure(() => {
    if (!verifySignature(device.publicKey, parsed.toBeSigned, parsed.signature)) throw new Error('raw verify failed');
  });
}

/** Raw verifications per CPU-second (process CPU time: unaffected by other processes sharing the cores). */
export function rawVerifyPerCpuSecond(fx: Fixture, n = 4000): number {
  const pack = fx.packs[0];
  const cose = fx.frames[0]?.[0];
  if (!pack || !cose) throw new Error('empty fixture');
  const device = fx.trust.verifyChain(pack.chain, new Date());
  const parsed = parseSign1(cose);
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) if (!verifySignature(device.publicKey, parsed.toBeSigned, parsed.signature)) throw new Error('raw verify failed');
  const used = process.cpuUsage(cpu);
  return n / ((used.user + used.system) / 1e6);
}

/** Raw crypto.verify on `n` worker threads at once (what the cores really deliver together). */
export async function parallelRawRate(n: number, ms = 1500): Promise<number> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { generateKeyPairSync, sign, verify } = require('node:crypto');
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const msg = Buffer.alloc(200, 7); const sig = sign(null, msg, privateKey);
    const end = Date.now() + workerData.ms; let n = 0;
    while (Date.now() < end) { for (let i = 0; i < 64; i++) if (!verify(null, msg, publicKey, sig)) throw new Error('x'); n += 64; }
    parentPort.postMessage(n);`;
  const counts = await Promise.all(
    Array.from({ length: n }, () => new Promise<number>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { ms } });
      w.once('message', (c: number) => {
        resolve(c);
        void w.terminate();
      });
      w.once('error', reject);
    })),
  );
  return counts.reduce((a, b) => a + b, 0) / (ms / 1000);
}

/** A channel that acks into a counter: the in-memory source's side of the link. */
function fakeChannel(id: string, onAck: (n: number) => void): DeviceChannel {
  return {
    id,
    source: id,
    kind: 'memory',
    openedAt: Date.now(),
    isOpen: true,
    send(msg: Message): Promise<void> {
      if (msg.type === 'ack') onAck(msg.ranges.reduce((s, [lo, hi]) => s + hi - lo + 1, 0));
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}

/** CPU µs per frame of one run, by thread: the verification workers, the main thread, and the rest (V8's GC threads, libuv's file-system threads). */
export interface ThreadCpu {
  readonly workers: number;
  readonly main: number;
  readonly other: number;
}

/** What one ingest run measured. */
export interface IngestRun {
  /** Frames per second (stored and acked), wall clock, after the warm-up. */
  readonly rate: number;
  /** Frames per CPU-second of the whole process (main thread, workers, V8 and fsync threads), after the warm-up. */
  readonly perCpuSecond: number;
  readonly threads: ThreadCpu;
  /** Frames per second of the whole run from the first frame fed: start-up (fresh worker isolates compiling) included. */
  readonly coldRate: number;
}

/**
 * One full ingest run on a fresh store and pipeline. The clock and CPU counters start once the
 * first `warmup` frames are acked: by then the fresh worker isolates and the main thread have
 * compiled the hot path (the first few thousand frames of a new process cost about a third more CPU
 * each, mostly V8's optimising compiler on its background threads), so the figures describe the
 * gateway's steady state, which is what an unattended gateway spends its months in. `coldRate`
 * keeps the whole run's figure, start-up included. `atEnd` runs once every frame is acked, before
 * the pipeline closes.
 */
export async function ingestRun(fx: Fixture, workers: number, warmup: number, atEnd?: () => void): Promise<IngestRun> {
  const threadsBefore = threadCpuMs(); // the verification workers are the threads started after this
  const dir = mkdtempSync(join(tmpdir(), 'bench-ingest-'));
  const store = await LogStore.open({ dir: join(dir, 'log'), origin: gatewayOrigin('bench') });
  const pipeline = await IngestPipeline.open({ log: logPort(store), trust: fx.trust, stateDir: dir, verify: { workers }, ...holdInputAt() });
  try {
    let acked = 0;
    let wake: () => void = () => undefined;
    const channels = fx.packs.map((p, i) => {
      const ch = fakeChannel(`memory:bench-${i}`, (n) => {
        acked += n;
        wake();
      });
      pipeline.events.open(ch);
      pipeline.events.message(ch, p.hello());
      return ch;
    });
    const total = fx.frames.reduce((s, f) => s + f.length, 0);
    if (warmup >= total) throw new Error(`bench: warm-up of ${warmup} frames leaves none of ${total} to time`);
    const window = 4096;
    let fed = 0;
    const next = fx.frames.map(() => 0);
    const coldStart = process.hrtime.bigint();
    let start = coldStart;
    let cpu = process.cpuUsage();
    let threadsStart = threadCpuMs();
    let timing = false;
    let timedFrom = 0;
    let profiler: Promise<Session> | undefined;
    const held = (): boolean => pipeline.events.flow?.held === true;
    // Event-driven feeding: refill the window when acks arrive (no polling loop burning the main thread).
    await new Promise<void>((resolve, reject) => {
      let scheduled = false;
      const pump = (): void => {
        scheduled = false;
        if (!timing && acked >= warmup) {
          timing = true;
          timedFrom = acked;
          start = process.hrtime.bigint();
          cpu = process.cpuUsage();
          threadsStart = threadCpuMs();
          if (PROFILE !== undefined) profiler = startProfiler();
        }
        const busy = pipeline.rejects('INGEST_BUSY');
        if (busy > 0) {
          reject(new Error(`bench: ${busy} frames refused INGEST_BUSY`));
          return;
        }
        // As a serial transport does, stop feeding while the pipeline holds input back.
        while (fed - acked < window && fed < total && !held()) {
          for (let p = 0; p < channels.length && fed - acked < window && !held(); p++) {
            const cose = fx.frames[p]?.[next[p] ?? 0];
            const ch = channels[p];
            if (!cose || !ch) continue;
            next[p] = (next[p] ?? 0) + 1;
            fed++;
            pipeline.events.message(ch, { type: 'frame', cose });
          }
        }
        if (acked >= total) resolve();
      };
      wake = () => {
        if (scheduled) return;
        scheduled = true;
        setImmediate(pump);
      };
      pipeline.events.flow?.watch((held) => {
        if (!held) wake();
      });
      pump();
    });
    const end = process.hrtime.bigint();
    const seconds = Number(end - start) / 1e9;
    const used = process.cpuUsage(cpu);
    const threadsEnd = threadCpuMs();
    if (profiler !== undefined) await stopProfiler(await profiler, `${PROFILE ?? ''}-ingest-${++profiles}.cpuprofile`);
    atEnd?.();
    if (store.size !== total) throw new Error(`bench: ${store.size} entries stored, expected ${total}`);
    const timed = total - timedFrom;
    const threads = splitThreadCpu(threadsBefore, threadsStart, threadsEnd, timed);
    return { rate: timed / seconds, perCpuSecond: timed / ((used.user + used.system) / 1e6), threads, coldRate: total / (Number(end - coldStart) / 1e9) };
  } finally {
    await pipeline.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Pool throughput when frames come `depth` at a time (wait for each group): inline vs workers. */
async function crossover(fx: Fixture, device: VerifiedDevice, depth: number, inline: boolean): Promise<number> {
  const pool = await VerifyPool.start({ workers: inline ? 0 : availableParallelism(), inlineBelow: inline ? 65_536 : 0 });
  try {
    const frames = fx.frames[0] ?? [];
    let i = 0;
    const group = (): Promise<void> =>
      new Promise((resolve) => {
        let left = depth;
        for (let k = 0; k < depth; k++) {
          const cose = frames[i++ % frames.length] ?? new Uint8Array(0);
          pool.submit({ cose, key: device, certSha256: device.certSha256 }, () => {
            if (--left === 0) resolve();
          });
        }
      });
    for (let w = 0; w < 20; w++) await group(); // warm-up: worker key caches, JIT
    const start = process.hrtime.bigint();
    let n = 0;
    while (Number(process.hrtime.bigint() - start) < 600e6) {
      await group();
      n += depth;
    }
    return n / (Number(process.hrtime.bigint() - start) / 1e9);
  } finally {
    await pool.close();
  }
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * The ingest figures for bench/main.ts. On a shared machine the cores' capacity drifts during the
 * run, so each ingest run is bracketed by raw measurements — wall-clock and per CPU-second — and the
 * ratios are the median of the per-run ratios (ingest ÷ the mean of the raw rates just before and
 * after it).
 */
export async function ingestBenchmarks(opts: { packs?: number; perPack?: number; warmup?: number } = {}): Promise<Result[]> {
  const cores = availableParallelism();
  const fx = await fixture(opts.packs ?? 20, opts.perPack ?? 4000);
  const total = fx.frames.reduce((s, f) => s + f.length, 0);
  const warmup = opts.warmup ?? Math.floor(total / 4);
  const colds: number[] = [];
  const raws: number[] = [];
  const parallels: number[] = [];
  const ingests: number[] = [];
  const vsCores: number[] = [];
  const vsParallel: number[] = [];
  const perCpu: number[] = [];
  const rawPerCpus: number[] = [];
  const perCpuRatios: number[] = [];
  const threadRuns: ThreadCpu[] = [];
  let raw = rawVerifyRate(fx);
  let parallel = await parallelRawRate(cores, 1000);
  let rawPerCpu = rawVerifyPerCpuSecond(fx);
  for (let r = 0; r < 3; r++) {
    const run = await ingestRun(fx, cores, warmup);
    const ingest = run.rate;
    colds.push(run.coldRate);
    perCpu.push(run.perCpuSecond);
    threadRuns.push(run.threads);
    const rawPerCpuAfter = rawVerifyPerCpuSecond(fx);
    rawPerCpus.push(rawPerCpuAfter);
    perCpuRatios.push(run.perCpuSecond / ((rawPerCpu + rawPerCpuAfter) / 2));
    rawPerCpu = rawPerCpuAfter;
    const rawAfter = rawVerifyRate(fx);
    const parallelAfter = await parallelRawRate(cores, 1000);
    raws.push(rawAfter);
    parallels.push(parallelAfter);
    ingests.push(ingest);
    vsCores.push(ingest / (((raw + rawAfter) / 2) * cores));
    vsParallel.push(ingest / ((parallel + parallelAfter) / 2));
    raw = rawAfter;
    parallel = parallelAfter;
  }
  const results: Result[] = [
    { name: 'raw crypto.verify Ed25519, frame Sig_structure, 1 thread', opsPerSec: median(raws) },
    { name: `raw crypto.verify on ${cores} worker threads at once`, opsPerSec: median(parallels), note: `${(median(parallels) / (median(raws) * cores)).toFixed(3)} of raw × cores` },
    {
      name: `ingest: verify (${cores} workers) + dedupe + LogStore append + ack`,
      opsPerSec: median(ingests),
      note:
        `${total - warmup} frames timed after ${warmup} of warm-up, ${fx.packs.length} packs; ${median(vsCores).toFixed(3)} of raw × ${cores} cores, ` +
        `${median(vsParallel).toFixed(3)} of parallel raw (medians of per-run ratios); whole run from a cold start: ${median(colds).toFixed(0)} frames/s`,
      target: '≥ 0.85 of raw × cores',
    },
  ];
  // CPU efficiency: what the ratio to raw × cores becomes when the cores are the ingest's alone and
  // saturated, measured without the noise of other processes sharing them.
  results.push({ name: 'raw crypto.verify per CPU-second', opsPerSec: median(rawPerCpus) });
  const by = (k: keyof ThreadCpu): string => median(threadRuns.map((t) => t[k])).toFixed(0);
  results.push({
    name: 'ingest frames per CPU-second (all threads)',
    opsPerSec: median(perCpu),
    note:
      `${median(perCpuRatios).toFixed(3)} of raw per CPU-second (median of per-run ratios); CPU µs per frame: verify workers ${by('workers')} (a raw verify: ${(1e6 / median(rawPerCpus)).toFixed(0)}), ` +
      `main thread ${by('main')}, V8 GC and libuv threads ${by('other')}`,
  });
  const inline = await ingestRun(fx, 0, warmup);
  const rawPerCpuInline = (rawPerCpu + rawVerifyPerCpuSecond(fx)) / 2;
  results.push({
    name: 'ingest frames per CPU-second, verified inline (no workers)',
    opsPerSec: inline.perCpuSecond,
    note: `${(inline.perCpuSecond / rawPerCpuInline).toFixed(3)} of raw per CPU-second; ${inline.rate.toFixed(0)} frames/s on one thread`,
  });
  const device = fx.trust.verifyChain(fx.packs[0]?.chain ?? [], new Date());
  for (const depth of [1, 4, 16, 64]) {
    const inline = await crossover(fx, device, depth, true);
    const workers = await crossover(fx, device, depth, false);
    results.push({ name: `verify pool, ${depth} frame(s) at a time, inline`, opsPerSec: inline });
    results.push({ name: `verify pool, ${depth} frame(s) at a time, ${cores} workers`, opsPerSec: workers, note: `${(workers / inline).toFixed(2)}× inline` });
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { baselineVerifyRate, formatTable } = await import('./harness.js');
  const baseline = baselineVerifyRate();
  process.stdout.write(formatTable(baseline, await ingestBenchmarks()) + '\n');
}
