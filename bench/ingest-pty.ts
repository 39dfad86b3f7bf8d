/**
 * Ingest over real serial lines (issue 6 item 8, "from 20 ptys"): 20 socat pty pairs (hw-sim/pty.ts,
 * as the tests use), the gateway's real SerialTransport (serialport 13, LineInput, rate caps raised
 * for the run) feeding the real pipeline (session, verification on worker threads over all cores,
 * dedupe, fsynced LogStore, acks back down the lines). The devices are a child process that, per
 * port, answers the gateway's `Q hello` with the pack's `H` hello and then writes pre-signed frame
 * lines as fast as the gateway acknowledges them (a window of unacknowledged frames per pack, as a
 * BMU's resend ring allows). As in bench/gateway-ingest.ts, frames per second and CPU per frame are
 * timed in steady state, after a warm-up (the first 20 k of 80 k frames), and reported as a ratio to
 * raw crypto.verify × cores measured just before and after the run. The device process, the gateway
 * and the 20 socat relays share the machine's cores, as they would not on a real gateway, so the
 * gateway's own CPU per frame is also given as a ratio to raw verify per CPU-second.
 *
 *   node --import tsx bench/ingest-pty.ts            (the figures, alone)
 *   node --import tsx bench/ingest-pty.ts device <dir> <packs> <window>   (the child; internal)
 */
import { spawn } from 'node:child_process';
import type { Session } from 'node:inspector/promises';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SerialPortStream } from '@serialport/stream';
import { encodeLine, gatewayOrigin, LineDecoder } from '../protocol/index.js';
import { createPtyPair, type PtyPair } from '../hw-sim/index.js';
import { EventLoopLinuxBinding, IngestPipeline, LogStore, SerialTransport, logPort } from '../gateway/index.js';
import { fixture, holdInputAt, median, parallelRawRate, rawVerifyPerCpuSecond, rawVerifyRate, type Fixture, type ThreadCpu } from './gateway-ingest.js';
import { nodeArgsFor, processCpuMs, splitThreadCpu, startProfiler, stopProfiler, threadCpuMs, type Result } from './harness.js';

const here = fileURLToPath(import.meta.url);
/** BENCH_PROFILE=path: a main-thread CPU profile of each run's timed part, written to path-pty-<run>.cpuprofile. */
const PROFILE = process.env['BENCH_PROFILE'];

interface DeviceReport {
  readonly frames: number;
  readonly ms: number;
}

/** What the clocks say at one moment of a run: entries stored, wall, this process (whole and per thread), the socat relays, the device child. */
interface Snapshot {
  readonly size: number;
  readonly at: bigint;
  readonly cpu: NodeJS.CpuUsage;
  readonly threads: Map<string, [string, number]>;
  readonly socatMs: number;
  readonly deviceMs: number;
}

function snapshot(size: number, pairs: readonly PtyPair[], device: number | undefined): Snapshot {
  const cpuMs = (pid: number | undefined): number => (pid === undefined ? 0 : (processCpuMs(pid) ?? 0));
  return {
    size,
    at: process.hrtime.bigint(),
    cpu: process.cpuUsage(),
    threads: threadCpuMs(),
    socatMs: pairs.reduce((s, p) => s + cpuMs(p.pid), 0),
    deviceMs: cpuMs(device),
  };
}

/** What one pty run measured, over the frames after the warm-up (rate, CPU per frame) and over all of them (coldRate). */
interface PtyRun {
  readonly rate: number;
  readonly coldRate: number;
  readonly gatewayCpu: number;
  readonly deviceCpu: number;
  readonly socatCpu: number;
  readonly threads: ThreadCpu;
}

/**
 * One run: fresh store and pipeline, 20 fresh pty pairs, every frame stored and acked. Timed, like
 * the in-memory run, from the moment `warmup` frames are stored to the last one (a fresh pipeline's
 * worker isolates spend their first thousands of frames in V8's optimising compiler, on V8's
 * threads; a gateway runs for months): the store's size is sampled every 5 ms.
 */
async function ptyRun(fx: Fixture, workers: number, window: number, warmup: number, run = 0): Promise<PtyRun> {
  const threadsBefore = threadCpuMs(); // the verification workers are the threads started after this
  const dir = await mkdtemp(join(tmpdir(), 'bench-ingest-pty-'));
  const pairs: PtyPair[] = [];
  let store: LogStore | undefined;
  let pipeline: IngestPipeline | undefined;
  let transport: SerialTransport | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    for (let i = 0; i < fx.packs.length; i++) {
      const pack = fx.packs[i];
      if (!pack) throw new Error('bench: empty fixture');
      pairs.push(await createPtyPair({ dir, name: `pack-${i}` }));
      // The pack's hello line, then its frame lines: what the device child writes.
      const lines = [encodeLine(pack.hello(0, 0)), ...(fx.frames[i] ?? []).map((cose) => encodeLine({ type: 'frame', cose }))];
      await writeFile(join(dir, `pack-${i}.lines`), Buffer.concat(lines));
    }
    const total = fx.frames.reduce((s, f) => s + f.length, 0);
    if (warmup >= total) throw new Error(`bench: warm-up of ${warmup} frames leaves none of ${total} to time`);
    const log = await LogStore.open({ dir: join(dir, 'log'), origin: gatewayOrigin('bench') });
    store = log;
    pipeline = await IngestPipeline.open({ log: logPort(log), trust: fx.trust, stateDir: dir, verify: { workers }, ...holdInputAt() });
    transport = new SerialTransport({
      ports: pairs.map((p) => p.hostPath),
      pollMs: 200,
      // The defaults (200 lines/s, 64 KiB/s per port) protect a real gateway from a flooding device;
      // here each line carries as much as it can.
      rate: { messagesPerSecond: 1_000_000, bytesPerSecond: 100_000_000 },
    });
    await transport.start(pipeline.events);
    const child = spawn(process.execPath, [...nodeArgsFor(here), 'device', dir, String(fx.packs.length), String(window)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    let from: Snapshot | undefined;
    let to: Snapshot | undefined;
    let profiler: Promise<Session> | undefined;
    sampler = setInterval(() => {
      if (from === undefined && log.size >= warmup) {
        from = snapshot(log.size, pairs, child.pid);
        if (PROFILE !== undefined) profiler = startProfiler();
      }
      if (to === undefined && log.size >= total) {
        to = snapshot(log.size, pairs, child.pid);
        clearInterval(sampler);
      }
    }, 5);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearInterval(sampler);
    if (profiler !== undefined) await stopProfiler(await profiler, `${PROFILE ?? ''}-pty-${run}.cpuprofile`);
    if (code !== 0) throw new Error(`bench: pty device process exited with ${code}`);
    const report = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as DeviceReport;
    if (log.size !== total || report.frames !== total || from === undefined || to === undefined) {
      throw new Error(`bench: ${log.size} entries stored and ${report.frames} acked, expected ${total}`);
    }
    const timed = to.size - from.size; // frames stored between the two samples
    const cpu = (to.cpu.user + to.cpu.system - from.cpu.user - from.cpu.system) / 1000;
    return {
      rate: timed / (Number(to.at - from.at) / 1e9),
      coldRate: total / (report.ms / 1000),
      gatewayCpu: cpu / timed,
      deviceCpu: (to.deviceMs - from.deviceMs) / timed,
      socatCpu: (to.socatMs - from.socatMs) / timed,
      threads: splitThreadCpu(threadsBefore, from.threads, to.threads, timed),
    };
  } finally {
    clearInterval(sampler);
    await transport?.stop();
    await pipeline?.close();
    await store?.close();
    for (const p of pairs) await p.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The 20-pty figures for bench/main.ts: three runs of `perPack` frames per pack, each bracketed by
 * raw verify measurements; ratios are medians of the per-run ratios.
 */
export async function ptyIngestBenchmarks(opts: { packs?: number; perPack?: number; window?: number; warmup?: number } = {}): Promise<Result[]> {
  const cores = availableParallelism();
  const fx = await fixture(opts.packs ?? 20, opts.perPack ?? 4000);
  const total = fx.frames.reduce((s, f) => s + f.length, 0);
  const window = opts.window ?? 256;
  const warmup = opts.warmup ?? 20_000;
  const rates: number[] = [];
  const coldRates: number[] = [];
  const vsCores: number[] = [];
  const vsParallel: number[] = [];
  const perCpu: number[] = [];
  const ceilings: number[] = [];
  const cpu: { gateway: number[]; device: number[]; socat: number[]; workers: number[]; main: number[]; other: number[] } = { gateway: [], device: [], socat: [], workers: [], main: [], other: [] };
  let raw = rawVerifyRate(fx);
  let parallel = await parallelRawRate(cores, 1000);
  let rawCpu = rawVerifyPerCpuSecond(fx);
  for (let r = 0; r < 3; r++) {
    const run = await ptyRun(fx, cores, window, warmup, r);
    const rawAfter = rawVerifyRate(fx);
    const parallelAfter = await parallelRawRate(cores, 1000);
    const rawCpuAfter = rawVerifyPerCpuSecond(fx);
    rates.push(run.rate);
    coldRates.push(run.coldRate);
    vsCores.push(run.rate / (((raw + rawAfter) / 2) * cores));
    vsParallel.push(run.rate / ((parallel + parallelAfter) / 2));
    // The gateway alone: its frames per CPU-second (all its threads) against raw verifies per CPU-second.
    perCpu.push(1e3 / run.gatewayCpu / ((rawCpu + rawCpuAfter) / 2));
    // What the wall ratio could reach if the gateway spent exactly one raw verify per frame: the
    // device process and socat use the same cores, so raw ÷ (raw + their CPU per frame).
    const rawUs = 1e6 / ((rawCpu + rawCpuAfter) / 2);
    ceilings.push(rawUs / (rawUs + (run.deviceCpu + run.socatCpu) * 1000));
    cpu.gateway.push(run.gatewayCpu);
    cpu.device.push(run.deviceCpu);
    cpu.socat.push(run.socatCpu);
    cpu.workers.push(run.threads.workers);
    cpu.main.push(run.threads.main);
    cpu.other.push(run.threads.other);
    raw = rawAfter;
    parallel = parallelAfter;
    rawCpu = rawCpuAfter;
  }
  const us = (ms: number[]): string => `${(median(ms) * 1000).toFixed(0)} µs`;
  const tus = (u: number[]): string => `${median(u).toFixed(0)} µs`;
  return [
    {
      name: `ingest from ${fx.packs.length} ptys: SerialTransport + verify (${cores} workers) + dedupe + LogStore append + ack`,
      opsPerSec: median(rates),
      note:
        `≈ ${total - warmup} frames timed after ${warmup} of warm-up, window ${window} per pack; ${median(vsCores).toFixed(3)} of raw × ${cores} cores, ` +
        `${median(vsParallel).toFixed(3)} of parallel raw (the device process and socat on the same cores); whole run from a cold start: ${median(coldRates).toFixed(0)} frames/s. ` +
        `Gateway alone: ${median(perCpu).toFixed(3)} of raw per CPU-second; CPU per frame: gateway ${us(cpu.gateway)} (verify workers ${tus(cpu.workers)}, ` +
        `main thread ${tus(cpu.main)}, V8 GC and libuv threads ${tus(cpu.other)}), device process ${us(cpu.device)}, socat ${us(cpu.socat)}. ` +
        `Ceiling on these cores (a gateway costing one raw verify per frame and nothing else, beside the device process and socat): ${median(ceilings).toFixed(3)} of raw × ${cores} cores`,
      target: '≥ 0.85 of raw × cores',
    },
  ];
}

// ---- the device child ------------------------------------------------------------------------------

/** Offsets of the line starts in `buf` plus its length: line i is buf[at[i]..at[i+1]). */
function lineStarts(buf: Buffer): number[] {
  const at = [0];
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) at.push(i + 1);
  return at;
}

/** The devices: one serialport per pack, hello on request, then frames within the ack window. */
async function devices(dir: string, packs: number, window: number): Promise<void> {
  let start: bigint | undefined;
  let framesAcked = 0;
  let totalFrames = 0;
  const ports: SerialPortStream[] = [];
  let watchdog: NodeJS.Timeout | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    // A gateway that stops acknowledging (a refused frame is never acked) must not hang the bench.
    const stall = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        reject(new Error(`bench: no ack for 30 s (${framesAcked} of ${totalFrames} acked)`));
      }, 30_000);
    };
    stall();
    let done = 0;
    const setup = async (i: number): Promise<void> => {
      const buf = await readFile(join(dir, `pack-${i}.lines`));
      const at = lineStarts(buf);
      const n = at.length - 2; // line 0 is the hello
      totalFrames += n;
      let sent = 0;
      let acked = 0;
      let helloed = false;
      const decoder = new LineDecoder();
      // The gateway's binding: serialport's own stalls a write that waits for room whenever a read
      // re-arms its poller (serial-binding.ts), and here both directions are busy at once.
      const port = new SerialPortStream({ binding: EventLoopLinuxBinding, path: join(dir, `pack-${i}.dev`), baudRate: 115_200 });
      ports.push(port);
      const pump = (): void => {
        const upTo = Math.min(n, acked + window);
        if (upTo <= sent) return;
        port.write(buf.subarray(at[sent + 1], at[upTo + 1]));
        sent = upTo;
      };
      port.on('error', reject);
      port.on('data', (chunk: Buffer) => {
        for (const ev of decoder.push(chunk)) {
          if (ev.kind !== 'message') continue;
          const m = ev.message;
          if (m.type === 'request' && m.op === 'hello' && !helloed) {
            helloed = true;
            port.write(buf.subarray(0, at[1]));
            start ??= process.hrtime.bigint();
            pump();
          } else if (m.type === 'ack') {
            stall();
            const got = m.ranges.reduce((s, [lo, hi]) => s + hi - lo + 1, 0);
            acked += got;
            framesAcked += got;
            if (acked >= n) {
              if (++done === packs) resolve();
              continue;
            }
            pump();
          }
        }
      });
    };
    for (let i = 0; i < packs; i++) setup(i).catch(reject);
  });
  await finished;
  clearTimeout(watchdog);
  const ms = Number(process.hrtime.bigint() - (start ?? 0n)) / 1e6;
  await Promise.all(
    ports.map(
      (p) =>
        new Promise<void>((r) => {
          p.close(() => {
            r();
          });
        }),
    ),
  );
  if (framesAcked !== totalFrames) throw new Error(`bench: ${framesAcked} frames acked, expected ${totalFrames}`);
  const report: DeviceReport = { frames: framesAcked, ms };
  process.stdout.write(JSON.stringify(report) + '\n');
}

if (process.argv[1] === here) {
  const [mode, dir, packs, window] = process.argv.slice(2);
  if (mode === 'device' && dir !== undefined) {
    await devices(dir, Number(packs), Number(window));
  } else {
    const { baselineVerifyRate, formatTable } = await import('./harness.js');
    const baseline = baselineVerifyRate();
    process.stdout.write(formatTable(baseline, await ptyIngestBenchmarks()) + '\n');
  }
}
