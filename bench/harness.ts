/**
 * Benchmark harness: every figure is reported as operations per second and as a ratio to a baseline
 * measured in the same run (raw node:crypto Ed25519 verify with a cached KeyObject), because absolute
 * rates on shared machines drift while ratios hold (NOTES.md). Each measurement is the median of 3.
 * `renderReport` turns one run's sections into docs/performance.md: the machine, and per section
 * its baseline and its table with the target each figure is held to.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Result {
  readonly name: string;
  readonly opsPerSec: number;
  readonly note?: string;
  /** The figure's target (issue text), when it has one: e.g. "≥ 0.85 of raw × cores", "< 1 s". */
  readonly target?: string;
}

/**
 * One module's benchmarks: a heading and the function that measures them, given the baseline rate
 * measured just before (bench/main.ts lists these).
 */
export interface Section {
  readonly title: string;
  readonly run: (baseline: number) => Promise<readonly Result[]> | readonly Result[];
}

/** Runs `fn` repeatedly for about `ms` milliseconds, three times; returns the median ops/s. */
export function measure(fn: () => void, ms = 400): number {
  const rates: number[] = [];
  for (let round = 0; round < 3; round++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(ms) * 1_000_000n;
    let now = start;
    while (now < deadline) {
      for (let i = 0; i < 16; i++) fn();
      n += 16;
      now = process.hrtime.bigint();
    }
    rates.push(n / (Number(now - start) / 1e9));
  }
  rates.sort((a, b) => a - b);
  return rates[1] ?? 0;
}

/** Times one call of `fn` (for operations too long to repeat), median of 3, in ms. */
export function timeOnce(fn: () => void): number {
  const times: number[] = [];
  for (let round = 0; round < 3; round++) {
    const start = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[1] ?? 0;
}

/** The baseline: raw crypto.verify of a 200-byte message, Ed25519, KeyObject created once. */
export function baselineVerifyRate(): number {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const msg = Buffer.alloc(200, 7);
  const sig = sign(null, msg, privateKey);
  return measure(() => {
    if (!verify(null, msg, publicKey, sig)) throw new Error('baseline verify failed');
  });
}

function rows(baseline: number, results: readonly Result[]): string[] {
  const withTarget = results.some((r) => r.target !== undefined);
  return [
    withTarget ? '| operation | ops/s (median of 3) | ratio to baseline | note | target |' : '| operation | ops/s (median of 3) | ratio to baseline | note |',
    withTarget ? '|---|---|---|---|---|' : '|---|---|---|---|',
    ...results.map((r) => {
      const rate = r.opsPerSec >= 100 ? Math.round(r.opsPerSec).toLocaleString('en-US') : r.opsPerSec.toFixed(2);
      const cells = [r.name, rate, (r.opsPerSec / baseline).toFixed(3), r.note ?? '', ...(withTarget ? [r.target ?? ''] : [])];
      return `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
    }),
  ];
}

const baselineLine = (baseline: number): string => `baseline: raw crypto.verify Ed25519 (cached key) = ${Math.round(baseline).toLocaleString('en-US')}/s`;

export function formatTable(baseline: number, results: readonly Result[]): string {
  return [baselineLine(baseline), '', ...rows(baseline, results)].join('\n');
}

/** What the figures were measured on. */
export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly ramGiB: number;
  readonly node: string;
  readonly kernel: string;
  readonly date: string;
  /** 1-minute load average when the run started (other jobs sharing the cores skew absolute rates). */
  readonly loadAtStart: number;
}

export function describeMachine(now = new Date()): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: availableParallelism(),
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: `Linux ${release()}`,
    date: now.toISOString().replace(/\.\d+Z$/, 'Z'),
    loadAtStart: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}

/**
 * docs/performance.md for one run: how it was made, the machine, the baseline, then one table per
 * section. Every ratio in it is to the baseline measured in this same run.
 */
export function renderReport(machine: Machine, sections: readonly { title: string; baseline: number; results: readonly Result[] }[], seconds: number): string {
  return [
    '# Performance',
    '',
    `Generated by \`npm run bench\` (bench/main.ts, compiled into dist/ like the gateway and ledger it measures) on ${machine.date}; the run took ${Math.round(seconds)} s. Do not edit by hand: run`,
    'the benchmarks again. Rates are medians of three measurements (the large-store figures: one build,',
    'measured once in a fresh process), each also given as a ratio to the baseline measured in the same run',
    '(raw node:crypto Ed25519 verify, one thread, cached key; measured again before each section, since',
    'what other jobs leave of the cores changes during a run), because absolute rates on a shared machine',
    'drift while ratios hold. Targets are those of the issues; "raw × cores" is the baseline rate of one',
    'thread times the cores, what verification alone could reach. Large sizes (10 M log entries) run only',
    'with `BENCH_LARGE=1`. Analysis of the ingest and history figures: docs/gateway.md §4 and §5.10.',
    '',
    '## Machine',
    '',
    `- CPU: ${machine.cpu}, ${machine.cores} cores available to Node`,
    `- RAM: ${machine.ramGiB} GiB`,
    `- Node ${machine.node}, ${machine.kernel}`,
    `- load average when the run started: ${machine.loadAtStart} (other jobs on the same cores lower absolute rates)`,
    '',
    ...sections.flatMap((s) => [`## ${s.title}`, '', baselineLine(s.baseline), '', ...rows(s.baseline, s.results), '']),
  ].join('\n');
}

/** The repository root (where package.json is): bench/ runs from the sources (tsx) or compiled into dist/bench. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('bench: package.json not found above bench/');
    dir = up;
  }
  return dir;
}

/**
 * Node arguments that run `file` (a sibling module of the caller) in a child process: through tsx
 * for a .ts source, directly for compiled JS (`npm run bench` measures the compiled build, as the
 * gateway runs it from dist/: tsx's loader adds a hooks thread per worker that costs CPU per frame).
 */
export function nodeArgsFor(file: string): string[] {
  return file.endsWith('.ts') ? ['--import', 'tsx', file] : [file];
}

/** `name` (without extension) next to the module at `moduleUrl`, with that module's extension (.ts or .js). */
export function sibling(moduleUrl: string, name: string): string {
  const self = fileURLToPath(moduleUrl);
  return join(dirname(self), name + extname(self));
}

/** CPU ms a process has used so far (utime + stime from /proc/PID/stat, 100 Hz ticks); undefined when unreadable (gone, or no /proc). */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

/**
 * CPU ms used so far by each thread of this process (/proc/self/task; empty where there is no
 * /proc): tid → [thread name, ms]. Threads are named by Node/V8/libuv (`node` for the main and
 * worker threads, `V8 DefaultWorke` for GC helpers, `libuv-worker` for the file-system pool).
 */
export function threadCpuMs(): Map<string, [string, number]> {
  const m = new Map<string, [string, number]>();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return m;
  }
  for (const t of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      m.set(t, [name, (Number(f[11]) + Number(f[12])) * 10]); // utime + stime, 100 Hz ticks
    } catch {
      // the thread ended meanwhile
    }
  }
  return m;
}

/** CPU µs per unit of work by thread, between two threadCpuMs readings: the main thread, threads born after `before` (the verification workers), the rest (V8's GC threads, libuv's pool). */
export function splitThreadCpu(
  before: Map<string, [string, number]>,
  start: Map<string, [string, number]>,
  end: Map<string, [string, number]>,
  units: number,
): { workers: number; main: number; other: number } {
  const out = { workers: 0, main: 0, other: 0 };
  for (const [tid, [, ms]] of end) {
    const us = ((ms - (start.get(tid)?.[1] ?? 0)) * 1000) / units;
    if (tid === String(process.pid)) out.main += us;
    else if (before.has(tid)) out.other += us;
    else out.workers += us;
  }
  return out;
}

/** Starts a CPU profile of this thread (BENCH_PROFILE), sampling every 100 µs. */
export async function startProfiler(): Promise<Session> {
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 100 });
  await s.post('Profiler.start');
  return s;
}

/** Stops the profile and writes it to `file` (Chrome DevTools' .cpuprofile). */
export async function stopProfiler(s: Session, file: string): Promise<void> {
  const { profile } = await s.post('Profiler.stop');
  writeFileSync(file, JSON.stringify(profile));
  s.disconnect();
}

