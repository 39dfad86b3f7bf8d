/**
 * Faults across a fleet (docs/hw-sim.md §5): one DeviceFaults per pack, a seeded random schedule,
 * the record file and the counts a fault harness compares the gateway's view against.
 *
 * Schedule: `--faults kind=rate,...` gives each kind a rate in faults per pack per (wall) minute.
 * Every (pack, kind) pair where the kind exists on the pack's transport runs an independent Poisson
 * process: exponential waits with mean 60 000 / rate ms, drawn from a stream seeded by
 * "<seed>/faults/<label>/<kind>", and each fault forks its own parameters from that stream at the
 * moment it fires. So the sequence of faults per pack and kind, and everything each one does, is a
 * function of --seed alone, whatever the other packs do; only wall-clock interleaving varies.
 *
 * Records: every injection, scheduled or manual, appends one JSON line to `<dir>/faults.jsonl`
 * (FaultRecord: at, wallMs, label, kind, applied, count, detail) — the list of forged, replayed and
 * rolled-back frames (which the ground truth deliberately omits) and of every break in the wire.
 */
import { setMaxListeners } from 'node:events';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { SimError } from './errors.js';
import { DeviceFaults, FAULT_KINDS, FAULT_TRANSPORTS, type Fault, type FaultKind, type FaultRecord } from './faults.js';
import type { SimDevice } from './fleet.js';
import { Random } from './random.js';
import { realTimer, type LinkTimer } from './serial-link.js';

/** Faults per pack per minute, by kind. */
export type FaultRates = Partial<Record<FaultKind, number>>;

/** Highest accepted rate: one fault every 100 ms per pack and kind. */
export const MAX_FAULT_RATE = 600;

/**
 * Parses a `--faults` spec: comma-separated `kind=rate`, rate a plain decimal number of faults per
 * pack per minute from 0 to 600 (0 disables a kind). Throws SimError FAULT_SPEC naming the bad
 * entry: an empty entry, no `=`, an unknown kind, a rate that is not such a number, a kind twice.
 */
export function parseFaultSpec(spec: string): FaultRates {
  const rates: FaultRates = {};
  const bad = (why: string): never => {
    throw new SimError('FAULT_SPEC', `hw-sim: --faults: ${why}`);
  };
  if (spec.trim() === '') bad('empty spec; expected kind=rate,... e.g. unplug=0.5,garbage=2');
  for (const [i, raw] of spec.split(',').entries()) {
    const entry = raw.trim();
    if (entry === '') bad(`entry ${i + 1} is empty; expected kind=rate`);
    const eq = entry.indexOf('=');
    if (eq < 0) bad(`"${entry}" has no rate; expected kind=rate (faults per pack per minute), e.g. ${entry}=0.5`);
    const kind = entry.slice(0, eq).trim();
    const value = entry.slice(eq + 1).trim();
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) bad(`unknown fault kind "${kind}"; known kinds: ${FAULT_KINDS.join(', ')}`);
    const k = kind as FaultKind;
    if (k in rates) bad(`${k} is given twice`);
    const rate = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || !(rate <= MAX_FAULT_RATE)) {
      bad(`rate of ${k} must be a number from 0 to ${MAX_FAULT_RATE} (faults per pack per minute), got "${value}"`);
    }
    rates[k] = rate;
  }
  return rates;
}

/**
 * The schedule of one kind on one pack: the wait (ms) before each fault — exponential with mean
 * 60 000 / rate, so faults form a Poisson process — and the stream that fault draws its parameters
 * from. A pure function of its arguments: the same seed gives the same faults.
 */
export function* faultArrivals(seed: number, label: string, kind: FaultKind, ratePerMinute: number): Generator<{ waitMs: number; random: Random }> {
  const stream = Random.fromSeed(`${seed}/faults/${label}/${kind}`);
  const meanMs = 60_000 / ratePerMinute;
  for (;;) {
    const waitMs = -Math.log(1 - stream.next()) * meanMs; // 1 − u ∈ (0, 1]: never log(0)
    yield { waitMs, random: stream.fork(kind) };
  }
}

export interface FaultStats {
  /** Applied faults, all packs and kinds. */
  total: number;
  byKind: Partial<Record<FaultKind, number>>;
  /** Applied faults per pack label and kind. */
  byDevice: Record<string, Partial<Record<FaultKind, number>>>;
  /** Injections that did nothing (link down, not provisioned, ...), by kind. */
  skipped: Partial<Record<FaultKind, number>>;
  /** Frame faults waiting for the next frame. */
  pending: number;
  /** Lasting faults whose undo failed (socat would not restart, ...). */
  restoreFailures: number;
  /** Scheduled injections that threw, and the last message (should stay 0: it is a bug). */
  scheduleErrors: number;
  lastError?: string;
}

export interface FleetFaultsOptions {
  /** faults.jsonl goes here. */
  readonly dir: string;
  readonly seed: number;
  readonly rates?: FaultRates;
  /** Device time for records. */
  readonly clock: () => number;
  readonly wallClock?: () => number;
  readonly timer?: LinkTimer;
}

export class FleetFaults {
  private readonly devices = new Map<string, DeviceFaults>();
  private readonly timer: LinkTimer;
  private readonly abort = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly inflight = new Set<Promise<unknown>>();
  private stopped = false;
  /** Scheduled injections that threw (a bug in hw-sim: a fleet keeps running, the stats show it). */
  private scheduleErrors = 0;
  private lastScheduleError: string | undefined;

  constructor(private readonly opts: FleetFaultsOptions) {
    this.timer = opts.timer ?? realTimer();
    // Every (pack, kind) schedule sleeps on this one signal: hundreds of listeners are expected.
    setMaxListeners(0, this.abort.signal);
  }

  get path(): string {
    return join(this.opts.dir, 'faults.jsonl');
  }

  /** Starts watching a pack's traffic (replay needs frames seen earlier); no faults yet. */
  attach(device: SimDevice): void {
    const label = device.endpoint.label;
    this.devices.set(
      label,
      new DeviceFaults(device, {
        random: Random.fromSeed(`${this.opts.seed}/faults/${label}/manual`),
        clock: this.opts.clock,
        ...(this.opts.wallClock ? { wallClock: this.opts.wallClock } : {}),
        timer: this.timer,
        onRecord: (rec) => {
          this.write(rec);
        },
      }),
    );
  }

  /** Starts the random schedule for every attached pack (nothing when no rates were given). */
  start(): void {
    for (const df of this.devices.values()) {
      for (const kind of FAULT_KINDS) {
        const rate = this.opts.rates?.[kind] ?? 0;
        if (rate > 0 && FAULT_TRANSPORTS[kind].includes(df.transport)) {
          this.loops.push(this.run(df, kind, faultArrivals(this.opts.seed, df.label, kind, rate)));
        }
      }
    }
  }

  /** Injects one fault into pack `label`. Rejects with FAULT_ARGUMENT for an unknown pack, and as DeviceFaults.inject. */
  inject(label: string, fault: Fault | FaultKind): Promise<FaultRecord> {
    const df = this.devices.get(label);
    if (!df) return Promise.reject(new SimError('FAULT_ARGUMENT', `hw-sim: no pack labelled "${label}" in this fleet`));
    return this.track(df.inject(fault));
  }

  /** The DeviceFaults of a pack (for settled() and counts). */
  device(label: string): DeviceFaults | undefined {
    return this.devices.get(label);
  }

  get stats(): FaultStats {
    const s: FaultStats = { total: 0, byKind: {}, byDevice: {}, skipped: {}, pending: 0, restoreFailures: 0, scheduleErrors: this.scheduleErrors };
    const lastError = this.lastScheduleError ?? [...this.devices.values()].find((d) => d.lastRestoreError !== undefined)?.lastRestoreError;
    if (lastError !== undefined) s.lastError = lastError;
    for (const df of this.devices.values()) {
      s.byDevice[df.label] = { ...df.applied };
      for (const [k, n] of Object.entries(df.applied) as [FaultKind, number][]) {
        s.byKind[k] = (s.byKind[k] ?? 0) + n;
        s.total += n;
      }
      for (const [k, n] of Object.entries(df.skipped) as [FaultKind, number][]) s.skipped[k] = (s.skipped[k] ?? 0) + n;
      s.pending += df.pendingCount;
      s.restoreFailures += df.restoreFailures;
    }
    return s;
  }

  /** Ends the schedule and every pack's injector (waiting faults are recorded as skipped). Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    await Promise.allSettled(this.loops);
    await Promise.allSettled([...this.devices.values()].map((df) => df.stop()));
    await Promise.allSettled([...this.inflight]);
  }

  private async run(df: DeviceFaults, kind: FaultKind, arrivals: Generator<{ waitMs: number; random: Random }>): Promise<void> {
    for (const { waitMs, random } of arrivals) {
      try {
        await this.timer.sleep(waitMs, this.abort.signal);
      } catch {
        return; // stopped
      }
      // Not awaited: a frame fault waits for the next frame, and the process must keep its pace.
      this.track(df.inject({ kind }, random)).catch((e: unknown) => {
        this.scheduleErrors++;
        this.lastScheduleError = e instanceof Error ? e.message : String(e);
      });
    }
  }

  /** Remembers `p` until it settles (stop() waits for it); returns `p` itself, rejections included. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = (): void => {
      this.inflight.delete(p);
    };
    void p.then(done, done);
    return p;
  }

  private write(rec: FaultRecord): void {
    appendFileSync(this.path, `${JSON.stringify(rec)}\n`);
  }
}
