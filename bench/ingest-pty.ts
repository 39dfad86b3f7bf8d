/**
 * Ingest over real serial lines (issue 6 item 8, "from 20 ptys"): 20 socat pty pairs (hw-sim/pty.ts,
 * as the tests use), the gateway's real SerialTransport (serialport 13, LineInput, rate caps raised
 * for the run) feeding the real pipeline (session, verification on worker threads over all cores,
 * dedupe, fsynced LogStore, acks back down the lines). The devices are a child process that, per
 * port, answers the gateway's `Q hello` with the pack's `H` hello and then writes pre-signed frame
 * lines as fast as the gateway acknowledges them (a window of unacknowledged frames per pack, as a
 * BMU's resend ring allows). Frames per second are counted from the first frame line written to the
 * last ack read, and reported as a ratio to raw crypto.verify × cores measured just before and after
 * (the same bracketing as bench/gateway-ingest.ts). The device process, the gateway and the 20 socat
 * relays share the machine's cores, as they would not on a real gateway; their CPU is reported too.
 *
 *   node --import tsx bench/ingest-pty.ts            (the figures, alone)
 *   node --import tsx bench/ingest-pty.ts device <dir> <packs> <window>   (the child; internal)
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SerialPort } from 'serialport';
import { encodeLine, gatewayOrigin, LineDecoder } from '../protocol/index.js';
import { createPtyPair, type PtyPair } from '../hw-sim/index.js';
import { IngestPipeline, LogStore, SerialTransport, logPort } from '../gateway/index.js';
import { fixture, median, parallelRawRate, rawVerifyRate, type Fixture } from './gateway-ingest.js';
import { nodeArgsFor, type Result } from './harness.js';

const here = fileURLToPath(import.meta.url);

interface DeviceReport {
  readonly frames: number;
  readonly ms: number;
  readonly cpuMs: number;
}

/** utime + stime of a process in ms, from /proc (100 Hz ticks). */
async function cpuMsOf(pid: number): Promise<number> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(stat[11]) + Number(stat[12])) * 10;
}

/** One run: fresh store and pipeline, 20 fresh pty pairs, every frame stored and acked. */
async function ptyRun(fx: Fixture, workers: number, window: number): Promise<{ rate: number; gatewayCpu: number; deviceCpu: number; socatCpu: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-ingest-pty-'));
  const pairs: PtyPair[] = [];
  let store: LogStore | undefined;
  let pipeline: IngestPipeline | undefined;
  let transport: SerialTransport | undefined;
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
    store = await LogStore.open({ dir: join(dir, 'log'), origin: gatewayOrigin('bench') });
    pipeline = await IngestPipeline.open({ log: logPort(store), trust: fx.trust, stateDir: dir, verify: { workers } });
    transport = new SerialTransport({
      ports: pairs.map((p) => p.hostPath),
      pollMs: 200,
      // The defaults (200 lines/s, 64 KiB/s per port) protect a real gateway from a flooding device;
      // here each line carries as much as it can.
      rate: { messagesPerSecond: 1_000_000, bytesPerSecond: 100_000_000 },
    });
    await transport.start(pipeline.events);
    const cpu0 = process.cpuUsage();
    const socat0 = await Promise.all(pairs.map((p) => (p.pid === undefined ? Promise.resolve(0) : cpuMsOf(p.pid))));
    const child = spawn(process.execPath, [...nodeArgsFor(here), 'device', dir, String(fx.packs.length), String(window)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const used = process.cpuUsage(cpu0);
    const socat1 = await Promise.all(pairs.map((p) => (p.pid === undefined ? Promise.resolve(0) : cpuMsOf(p.pid))));
    if (code !== 0) throw new Error(`bench: pty device process exited with ${code}`);
    const report = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as DeviceReport;
    if (store.size !== total || report.frames !== total) throw new Error(`bench: ${store.size} entries stored and ${report.frames} acked, expected ${total}`);
    const socatMs = socat1.reduce((s, t, i) => s + t - (socat0[i] ?? 0), 0);
    return { rate: total / (report.ms / 1000), gatewayCpu: (used.user + used.system) / 1000 / total, deviceCpu: report.cpuMs / total, socatCpu: socatMs / total };
  } finally {
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
export async function ptyIngestBenchmarks(opts: { packs?: number; perPack?: number; window?: number } = {}): Promise<Result[]> {
  const cores = availableParallelism();
  const fx = await fixture(opts.packs ?? 20, opts.perPack ?? 1000);
  const total = fx.frames.reduce((s, f) => s + f.length, 0);
  const window = opts.window ?? 256;
  const rates: number[] = [];
  const vsCores: number[] = [];
  const vsParallel: number[] = [];
  const cpu: { gateway: number[]; device: number[]; socat: number[] } = { gateway: [], device: [], socat: [] };
  let raw = rawVerifyRate(fx);
  let parallel = await parallelRawRate(cores, 1000);
  for (let r = 0; r < 3; r++) {
    const run = await ptyRun(fx, cores, window);
    const rawAfter = rawVerifyRate(fx);
    const parallelAfter = await parallelRawRate(cores, 1000);
    rates.push(run.rate);
    vsCores.push(run.rate / (((raw + rawAfter) / 2) * cores));
    vsParallel.push(run.rate / ((parallel + parallelAfter) / 2));
    cpu.gateway.push(run.gatewayCpu);
    cpu.device.push(run.deviceCpu);
    cpu.socat.push(run.socatCpu);
    raw = rawAfter;
    parallel = parallelAfter;
  }
  const us = (ms: number[]): string => `${(median(ms) * 1000).toFixed(0)} µs`;
  return [
    {
      name: `ingest from ${fx.packs.length} ptys: SerialTransport + verify (${cores} workers) + dedupe + LogStore append + ack`,
      opsPerSec: median(rates),
      note:
        `${total} frames, window ${window} per pack; ${median(vsCores).toFixed(3)} of raw × ${cores} cores, ${median(vsParallel).toFixed(3)} of parallel raw; ` +
        `CPU per frame: gateway ${us(cpu.gateway)}, device process ${us(cpu.device)}, socat ${us(cpu.socat)}`,
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
  const cpu0 = process.cpuUsage();
  let start: bigint | undefined;
  let framesAcked = 0;
  let totalFrames = 0;
  const ports: SerialPort[] = [];
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
      const port = new SerialPort({ path: join(dir, `pack-${i}.dev`), baudRate: 115_200 });
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
  const used = process.cpuUsage(cpu0);
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
  const report: DeviceReport = { frames: framesAcked, ms, cpuMs: (used.user + used.system) / 1000 };
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
