/**
 * Current profiles of the battery model (docs/hw-sim.md "Profiles"): the charger or load attached to
 * a simulated pack. Each profile is a small state machine asked once per model step for the current
 * of the next `dt` seconds (A, positive = charging) and answers `null` once it has finished; a
 * charger reads the pack through `ProfileContext` the way a real one reads the BMS's charge and
 * discharge current limits. Profiles are described by plain-JSON specs (so a CLI flag or a state file
 * can name one), compose (sequence, repeat, daily schedule), and save their state as plain JSON so a
 * restored pack continues exactly where it stopped. Randomness (the drive cycle) comes from a seeded
 * generator held in the profile's state; nothing here reads a clock.
 */
import { SimError } from './errors.js';
import { Random } from './random.js';

/** What a profile may observe of the pack: its ratings and the BMS's current limits. */
export interface ProfileContext {
  readonly cells: number;
  readonly ratedCapacityAh: number;
  /** Default per-cell CC-CV target and discharge cutoff of the chemistry (V). */
  readonly chargeVoltage: number;
  readonly cutoffVoltage: number;
  /** Largest charge current (A, ≥ 0) that keeps every cell at or below `cellVoltage` over the next `dt` s. */
  maxChargeCurrent(cellVoltage: number, dt: number): number;
  /** Largest discharge current (A, ≥ 0, a magnitude) that keeps every cell at or above `cellVoltage`. */
  maxDischargeCurrent(cellVoltage: number, dt: number): number;
}

/** Plain-JSON description of a profile. Rates are C-rates (multiples of the rated capacity per hour). */
export type ProfileSpec =
  | { kind: 'cccv'; cRate?: number; voltage?: number; cutoffC?: number; maxSeconds?: number }
  | { kind: 'discharge'; cRate?: number; cutoffVoltage?: number; maxSeconds?: number }
  | { kind: 'rest'; seconds: number }
  | { kind: 'constant'; cRate: number; seconds: number }
  | { kind: 'drive'; seconds: number; seed: number | string; cruiseC?: number; peakC?: number; regenC?: number; cutoffVoltage?: number }
  | { kind: 'formation'; cycles?: number; cRate?: number; restSeconds?: number }
  | { kind: 'sequence'; items: ProfileSpec[] }
  | { kind: 'repeat'; times: number; item: ProfileSpec }
  | { kind: 'daily'; days: number; entries: { at: number; item: ProfileSpec }[] };

export type ProfileKind = ProfileSpec['kind'];

export interface Profile {
  readonly spec: ProfileSpec;
  /** Current (A, + = charge) for the next `dt` s, or null once finished (and ever after). */
  next(ctx: ProfileContext, dt: number): number | null;
  /** The profile's progress as plain JSON, for `restoreProfile`. */
  save(): ProfileState;
  /** Resumes from a `save()` of a profile of the same spec. Throws SimError PROFILE_SPEC. */
  load(state: unknown): void;
}

export interface ProfileState {
  [key: string]: number | boolean | number[] | ProfileState | null;
}
export interface ProfileSnapshot {
  spec: ProfileSpec;
  state: ProfileState;
}

const MAX_SECONDS = 1e10;
const MAX_ITEMS = 1000;
const MAX_DEPTH = 8;
const MAX_NODES = 10_000;

function bad(what: string, got: unknown): never {
  const shown = got === undefined ? 'undefined' : JSON.stringify(got);
  throw new SimError('PROFILE_SPEC', `hw-sim: profile ${what}, got ${shown}`);
}
function num(what: string, v: unknown, lo: number, hi: number, fallback?: number): number {
  const x = v === undefined ? fallback : v;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < lo || x > hi) bad(`${what} must be a number in ${lo}..${hi}`, v);
  return x;
}
function field(state: unknown, key: string): unknown {
  if (typeof state !== 'object' || state === null) bad('state must be an object', state);
  return (state as Record<string, unknown>)[key];
}
const sNum = (state: unknown, key: string, lo = 0, hi = MAX_SECONDS): number => num(`state.${key}`, field(state, key), lo, hi);
function sBool(state: unknown, key: string): boolean {
  const v = field(state, key);
  if (typeof v !== 'boolean') bad(`state.${key} must be a boolean`, v);
  return v;
}

/** Elapsed-time bookkeeping shared by the leaf profiles. */
abstract class Leaf implements Profile {
  protected elapsed = 0;
  protected ended = false;
  abstract readonly spec: ProfileSpec;
  protected abstract current(ctx: ProfileContext, dt: number): number | null;
  next(ctx: ProfileContext, dt: number): number | null {
    if (this.ended) return null;
    const i = this.current(ctx, dt);
    if (i === null) {
      this.ended = true;
      return null;
    }
    this.elapsed += dt;
    return i;
  }
  save(): ProfileState {
    return { elapsed: this.elapsed, ended: this.ended };
  }
  load(state: unknown): void {
    this.elapsed = sNum(state, 'elapsed');
    this.ended = sBool(state, 'ended');
  }
}

/** Constant current (cRate) until the highest cell reaches `voltage`, then constant voltage until the current tapers below cutoffC. */
export class CcCvCharge extends Leaf {
  readonly spec: ProfileSpec & { kind: 'cccv' };
  constructor(p: { cRate?: number; voltage?: number; cutoffC?: number; maxSeconds?: number } = {}) {
    super();
    this.spec = {
      kind: 'cccv', cRate: num('cccv.cRate', p.cRate, 1e-4, 100, 0.5), cutoffC: num('cccv.cutoffC', p.cutoffC, 1e-5, 10, 0.05),
      maxSeconds: num('cccv.maxSeconds', p.maxSeconds, 1, MAX_SECONDS, 86_400),
    };
    if (p.voltage !== undefined) this.spec.voltage = num('cccv.voltage', p.voltage, 0.5, 6);
  }
  protected current(ctx: ProfileContext, dt: number): number | null {
    const { cRate = 0.5, cutoffC = 0.05, maxSeconds = 86_400, voltage = ctx.chargeVoltage } = this.spec;
    if (this.elapsed >= maxSeconds) return null;
    const cc = cRate * ctx.ratedCapacityAh;
    const limit = ctx.maxChargeCurrent(voltage, dt);
    if (limit >= cc) return cc;
    return limit < cutoffC * ctx.ratedCapacityAh ? null : limit;
  }
}

/** Constant-current discharge until the lowest cell reaches the cutoff (the last step is shortened in current to land on it). */
export class CcDischarge extends Leaf {
  readonly spec: ProfileSpec & { kind: 'discharge' };
  private last = false; // the previous step landed on the cutoff
  constructor(p: { cRate?: number; cutoffVoltage?: number; maxSeconds?: number } = {}) {
    super();
    this.spec = { kind: 'discharge', cRate: num('discharge.cRate', p.cRate, 1e-4, 100, 0.5), maxSeconds: num('discharge.maxSeconds', p.maxSeconds, 1, MAX_SECONDS, 86_400) };
    if (p.cutoffVoltage !== undefined) this.spec.cutoffVoltage = num('discharge.cutoffVoltage', p.cutoffVoltage, 0, 6);
  }
  protected current(ctx: ProfileContext, dt: number): number | null {
    const { cRate = 0.5, maxSeconds = 86_400, cutoffVoltage = ctx.cutoffVoltage } = this.spec;
    if (this.last || this.elapsed >= maxSeconds) return null;
    const cc = cRate * ctx.ratedCapacityAh;
    const limit = ctx.maxDischargeCurrent(cutoffVoltage, dt);
    if (limit >= cc) return -cc;
    if (limit < 1e-6 * ctx.ratedCapacityAh) return null;
    this.last = true;
    return -limit;
  }
  override save(): ProfileState {
    return { ...super.save(), last: this.last };
  }
  override load(state: unknown): void {
    super.load(state);
    this.last = sBool(state, 'last');
  }
}

/** Zero current for `seconds`. */
export class Rest extends Leaf {
  readonly spec: ProfileSpec & { kind: 'rest' };
  constructor(p: { seconds: number }) {
    super();
    this.spec = { kind: 'rest', seconds: num('rest.seconds', p.seconds, 0, MAX_SECONDS) };
  }
  protected current(): number | null {
    return this.elapsed >= this.spec.seconds ? null : 0;
  }
}

/** A fixed current (signed C-rate, + = charge) for `seconds`, with no protection at all: abuse and alarm tests. */
export class ConstantCurrent extends Leaf {
  readonly spec: ProfileSpec & { kind: 'constant' };
  constructor(p: { cRate: number; seconds: number }) {
    super();
    this.spec = { kind: 'constant', cRate: num('constant.cRate', p.cRate, -100, 100), seconds: num('constant.seconds', p.seconds, 0, MAX_SECONDS) };
  }
  protected current(ctx: ProfileContext): number | null {
    return this.elapsed >= this.spec.seconds ? null : this.spec.cRate * ctx.ratedCapacityAh;
  }
}

/**
 * A drive-cycle-like load: seeded random segments of idle (20 %), cruise (40 %, cruiseC ± 30 %),
 * acceleration (20 %, 50–100 % of peakC) and regenerative braking (20 %, 50–100 % of regenC as charge),
 * each 5–60 s (idle 5–30 s), for `seconds` or until the pack reaches the cutoff.
 */
export class DriveCycle extends Leaf {
  readonly spec: ProfileSpec & { kind: 'drive' };
  private rng: Random;
  private segLeft = 0;
  private segC = 0;
  constructor(p: { seconds: number; seed: number | string; cruiseC?: number; peakC?: number; regenC?: number; cutoffVoltage?: number }) {
    super();
    if (!(typeof p.seed === 'string' && p.seed.length <= 256) && !(typeof p.seed === 'number' && Number.isSafeInteger(p.seed))) bad('drive.seed must be a safe integer or a text', p.seed);
    this.spec = {
      kind: 'drive', seconds: num('drive.seconds', p.seconds, 0, MAX_SECONDS), seed: p.seed, cruiseC: num('drive.cruiseC', p.cruiseC, 0, 100, 0.3),
      peakC: num('drive.peakC', p.peakC, 0, 100, 1.5), regenC: num('drive.regenC', p.regenC, 0, 100, 0.3),
    };
    if (p.cutoffVoltage !== undefined) this.spec.cutoffVoltage = num('drive.cutoffVoltage', p.cutoffVoltage, 0, 6);
    this.rng = Random.fromSeed(p.seed);
  }
  private newSegment(): void {
    const { cruiseC = 0.3, peakC = 1.5, regenC = 0.3 } = this.spec;
    const u = this.rng.next();
    if (u < 0.2) [this.segC, this.segLeft] = [0, this.rng.uniform(5, 30)];
    else if (u < 0.6) [this.segC, this.segLeft] = [-cruiseC * this.rng.uniform(0.7, 1.3), this.rng.uniform(5, 60)];
    else if (u < 0.8) [this.segC, this.segLeft] = [-peakC * this.rng.uniform(0.5, 1), this.rng.uniform(5, 60)];
    else [this.segC, this.segLeft] = [regenC * this.rng.uniform(0.5, 1), this.rng.uniform(5, 60)];
  }
  protected current(ctx: ProfileContext, dt: number): number | null {
    if (this.elapsed >= this.spec.seconds) return null;
    if (this.segLeft <= 0) this.newSegment();
    this.segLeft -= dt;
    const want = this.segC * ctx.ratedCapacityAh;
    if (want >= 0) return Math.min(want, ctx.maxChargeCurrent(ctx.chargeVoltage, dt));
    const limit = ctx.maxDischargeCurrent(this.spec.cutoffVoltage ?? ctx.cutoffVoltage, dt);
    if (limit < 1e-6 * ctx.ratedCapacityAh) return null; // empty: the drive ends early
    return -Math.min(-want, limit);
  }
  override save(): ProfileState {
    return { ...super.save(), segLeft: this.segLeft, segC: this.segC, rng: this.rng.state() };
  }
  override load(state: unknown): void {
    super.load(state);
    this.segLeft = sNum(state, 'segLeft', -MAX_SECONDS);
    this.segC = sNum(state, 'segC', -100, 100);
    try {
      this.rng = Random.fromState(field(state, 'rng'));
    } catch (e) {
      bad('state.rng must be a generator state', (e as Error).message);
    }
  }
}

/** Runs `items` one after another; an item that finishes at once is skipped within the same step. */
export class Sequence implements Profile {
  readonly spec: ProfileSpec & { kind: 'sequence' | 'formation' };
  private readonly items: readonly ProfileSpec[];
  private index = 0;
  private child: Profile | null = null;
  constructor(items: readonly ProfileSpec[], spec?: ProfileSpec & { kind: 'formation' }) {
    const list: unknown = items; // Array.isArray on a readonly array would widen it to any[]
    if (!Array.isArray(list) || list.length > MAX_ITEMS) bad(`sequence.items must be an array of at most ${MAX_ITEMS} specs`, items);
    items.forEach((s) => createProfile(s)); // validate every item now, not hours into the run
    this.items = items;
    this.spec = spec ?? { kind: 'sequence', items: [...items] };
  }
  next(ctx: ProfileContext, dt: number): number | null {
    while (this.index < this.items.length) {
      this.child ??= createProfile(this.items[this.index] as ProfileSpec);
      const i = this.child.next(ctx, dt);
      if (i !== null) return i;
      this.index++;
      this.child = null;
    }
    return null;
  }
  save(): ProfileState {
    return { index: this.index, child: this.child?.save() ?? null };
  }
  load(state: unknown): void {
    this.index = sNum(state, 'index', 0, this.items.length);
    const c = field(state, 'child');
    this.child = null;
    if (c !== null && this.index < this.items.length) {
      this.child = createProfile(this.items[this.index] as ProfileSpec);
      this.child.load(c);
    }
  }
}

/** `cycles` slow formation cycles: CC-CV charge, rest, CC discharge, rest, at a low C-rate. */
export function formation(p: { cycles?: number; cRate?: number; restSeconds?: number } = {}): Profile {
  const cycles = num('formation.cycles', p.cycles, 1, 100, 2);
  const cRate = num('formation.cRate', p.cRate, 1e-3, 10, 0.1);
  const restSeconds = num('formation.restSeconds', p.restSeconds, 0, MAX_SECONDS, 1800);
  const one: ProfileSpec[] = [
    { kind: 'cccv', cRate, cutoffC: Math.min(0.02, cRate / 2), maxSeconds: 2 * 3600 / cRate },
    { kind: 'rest', seconds: restSeconds },
    { kind: 'discharge', cRate, maxSeconds: 2 * 3600 / cRate },
    { kind: 'rest', seconds: restSeconds },
  ];
  return new Sequence(Array.from({ length: cycles }, () => one).flat(), { kind: 'formation', cycles, cRate, restSeconds });
}

/** Runs `item` `times` times, each time from a fresh start. */
export class Repeat implements Profile {
  readonly spec: ProfileSpec & { kind: 'repeat' };
  private iteration = 0;
  private child: Profile | null = null;
  constructor(p: { times: number; item: ProfileSpec }) {
    const times = num('repeat.times', p.times, 0, 1e6);
    if (!Number.isInteger(times)) bad('repeat.times must be an integer', times);
    createProfile(p.item);
    this.spec = { kind: 'repeat', times, item: p.item };
  }
  next(ctx: ProfileContext, dt: number): number | null {
    while (this.iteration < this.spec.times) {
      this.child ??= createProfile(this.spec.item);
      const i = this.child.next(ctx, dt);
      if (i !== null) return i;
      this.iteration++;
      this.child = null;
    }
    return null;
  }
  save(): ProfileState {
    return { iteration: this.iteration, child: this.child?.save() ?? null };
  }
  load(state: unknown): void {
    this.iteration = sNum(state, 'iteration', 0, this.spec.times);
    const c = field(state, 'child');
    this.child = null;
    if (c !== null && this.iteration < this.spec.times) {
      this.child = createProfile(this.spec.item);
      this.child.load(c);
    }
  }
}

const DAY = 86_400;

/**
 * A daily schedule for `days` days: entry k starts its item (fresh) at second `at` of every day and
 * runs it until it finishes or the next entry's start, whichever is first; between them the pack rests.
 * The last entry of a day runs on past midnight until the first entry of the next day (overnight charging).
 */
export class DailySchedule implements Profile {
  readonly spec: ProfileSpec & { kind: 'daily' };
  private elapsed = 0;
  private slot = -1; // day · entries + entry index of the running (or finished) item; −1 before the first
  private child: Profile | null = null;
  constructor(p: { days: number; entries: { at: number; item: ProfileSpec }[] }) {
    const days = num('daily.days', p.days, 0, 1e6);
    if (!Array.isArray(p.entries) || p.entries.length === 0 || p.entries.length > MAX_ITEMS) bad(`daily.entries must be 1..${MAX_ITEMS} entries`, p.entries);
    const entries = p.entries.map((e, k) => {
      const at = num(`daily.entries[${k}].at`, (e as { at?: unknown } | null)?.at, 0, DAY - 1);
      createProfile(e.item);
      return { at, item: e.item };
    });
    entries.sort((a, b) => a.at - b.at);
    this.spec = { kind: 'daily', days, entries };
  }
  private slotAt(t: number): number {
    const es = this.spec.entries;
    const day = Math.floor(t / DAY);
    const tod = t - day * DAY;
    let k = -1;
    for (let j = 0; j < es.length; j++) if ((es[j]?.at ?? DAY) <= tod) k = j;
    return k >= 0 ? day * es.length + k : day * es.length - 1;
  }
  next(ctx: ProfileContext, dt: number): number | null {
    if (this.elapsed >= this.spec.days * DAY) return null;
    const slot = this.slotAt(this.elapsed);
    if (slot !== this.slot) {
      this.slot = slot;
      const entry = this.spec.entries[slot % this.spec.entries.length];
      this.child = slot >= 0 && entry ? createProfile(entry.item) : null;
    }
    const i = this.child?.next(ctx, dt) ?? null;
    if (i === null) this.child = null;
    this.elapsed += dt;
    return i ?? 0;
  }
  save(): ProfileState {
    return { elapsed: this.elapsed, slot: this.slot, child: this.child?.save() ?? null };
  }
  load(state: unknown): void {
    this.elapsed = sNum(state, 'elapsed');
    this.slot = sNum(state, 'slot', -1, 1e12);
    const c = field(state, 'child');
    const entry = this.spec.entries[this.slot % this.spec.entries.length];
    this.child = null;
    if (c !== null && this.slot >= 0 && entry) {
      this.child = createProfile(entry.item);
      this.child.load(c);
    }
  }
}

/** Rejects spec trees deeper than MAX_DEPTH or larger than MAX_NODES before anything is built. */
function checkTree(spec: unknown, depthLeft: number, budget: { nodes: number }): void {
  if (typeof spec !== 'object' || spec === null) bad('spec must be an object', spec);
  if (depthLeft < 0) bad(`specs must nest at most ${MAX_DEPTH} deep`, (spec as { kind?: unknown }).kind);
  if (++budget.nodes > MAX_NODES) bad(`spec trees must have at most ${MAX_NODES} nodes`, budget.nodes);
  const s = spec as { items?: unknown; item?: unknown; entries?: unknown };
  if (Array.isArray(s.items)) for (const x of s.items as unknown[]) checkTree(x, depthLeft - 1, budget);
  if (s.item !== undefined) checkTree(s.item, depthLeft - 1, budget);
  if (Array.isArray(s.entries)) for (const e of s.entries as unknown[]) checkTree((e as { item?: unknown } | null)?.item, depthLeft - 1, budget);
}

/** Builds a profile from its spec. Throws SimError PROFILE_SPEC for an unknown kind or a bad parameter. */
export function createProfile(spec: ProfileSpec): Profile {
  checkTree(spec, MAX_DEPTH, { nodes: 0 });
  switch (spec.kind) {
    case 'cccv': return new CcCvCharge(spec);
    case 'discharge': return new CcDischarge(spec);
    case 'rest': return new Rest(spec);
    case 'constant': return new ConstantCurrent(spec);
    case 'drive': return new DriveCycle(spec);
    case 'formation': return formation(spec);
    case 'sequence': return new Sequence(spec.items);
    case 'repeat': return new Repeat(spec);
    case 'daily': return new DailySchedule(spec);
    default: return bad('kind must be one of cccv, discharge, rest, constant, drive, formation, sequence, repeat, daily', (spec as { kind?: unknown }).kind);
  }
}

/** Spec and progress of a profile, as plain JSON. */
export function saveProfile(p: Profile): ProfileSnapshot {
  return { spec: p.spec, state: p.save() };
}

/** Rebuilds a profile from `saveProfile`. Throws SimError PROFILE_SPEC. */
export function restoreProfile(snap: unknown): Profile {
  if (typeof snap !== 'object' || snap === null) bad('snapshot must be an object', snap);
  const { spec, state } = snap as { spec?: unknown; state?: unknown };
  const p = createProfile(spec as ProfileSpec);
  p.load(state);
  return p;
}
