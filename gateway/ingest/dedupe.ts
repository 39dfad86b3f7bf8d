/**
 * Exactly-once bookkeeping per pack (DESIGN.md decision 4, docs/gateway.md "Duplicates, gaps and
 * replays"): every verified frame is classified by its counter before it may be stored, so a resend
 * is stored once and acked again, a counter the log already holds with other bytes is refused, and
 * counters that never arrived are recorded as gaps until a resend fills them.
 *
 * Per pack serial the table keeps: the highest and lowest counter stored, a bounded sorted list of
 * gap ranges, a recent window of (counter → the frame's identity), and the frames
 * classified but not yet durable (so two copies of one frame in flight are stored once). A counter
 * outside all of these is looked up in the log through the `lookup` function the caller passes
 * (the store's per-pack counter index). A frame's identity is its signed payload — the bytes
 * themselves as a latin1 string, compared exactly with ===; no hash to compute per frame and no
 * off-heap buffer to allocate — not the COSE bytes: anyone can turn a valid ES256 signature into a second valid one (s → n − s) and
 * secure elements' high-S signatures must be accepted, so two copies that differ only in the
 * signature are the same frame — a duplicate, acked again — never a replay that would lock the
 * pack's own copy out (test/hostile.test.ts "ES256 signature malleability").
 * The state that must outlive a crash (highest, lowest, gaps,
 * counts) is small and goes into a snapshot (ingest-state.ts); the window is rebuilt on demand.
 *
 * State changes only in `commit`, which the caller invokes in log order once an append is durable,
 * so replaying the log's entries after a snapshot through `commit` rebuilds exactly the live state.
 */
import { parseSign1 } from '../../protocol/index.js';

/** A frame's identity for dedupe: its signed payload's bytes, one latin1 character per byte (see above). */
export type FrameIdentity = string;

/** The identity of signed payload bytes (frameIdentity of the frame they came from). */
export function identityOf(payload: Uint8Array): FrameIdentity {
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1');
}

/** A frame's identity for dedupe (see above). Throws COSE_* for bytes that are not a COSE_Sign1. */
export function frameIdentity(cose: Uint8Array): FrameIdentity {
  return identityOf(parseSign1(cose).payload);
}

/**
 * What a verified frame is, relative to what the log holds:
 * - `new`: counter above every stored counter of the pack (or the pack's first frame); stored. If it
 *   skips counters, `gap` is the range it opens.
 * - `gap-fill`: a counter inside a recorded gap; stored, the gap shrinks.
 * - `late`: below the lowest stored counter, or in a gap the table had to forget (and the log
 *   confirms it does not hold the counter); stored.
 * - `duplicate`: the log holds (or is about to hold) this counter with this signed payload: not
 *   stored again, acked again once `durable` resolves true, counted.
 * - `replay`: the log holds this counter with a different payload — a counter rollback, a flash image
 *   restored, a cloned key: refused (COUNTER_REPLAY), never stored, never acked.
 */
export type Classification =
  | { readonly kind: 'new'; readonly gap?: readonly [number, number] }
  | { readonly kind: 'gap-fill' | 'late' }
  /** `durable` is true when the stored copy is already durable, else settles when its append does. */
  | { readonly kind: 'duplicate'; readonly durable: true | Promise<boolean> }
  | { readonly kind: 'replay' };

/** Returns the identity (frameIdentity) of the frame the log stores for (serial, counter), or undefined. */
export type CounterLookup = (serial: string, counter: number) => Promise<FrameIdentity | undefined>;

export interface PackCounts {
  /** Frames stored (new + gap-fill + late). */
  frames: number;
  duplicates: number;
  replays: number;
  gapsOpened: number;
  gapFills: number;
  late: number;
  /** Gap ranges dropped because the pack had more than maxGaps open. */
  gapsForgotten: number;
}

export interface PackSnapshot {
  readonly highest: number;
  readonly lowest: number;
  readonly gaps: readonly (readonly [number, number])[];
  readonly counts: PackCounts;
}

export interface DedupeOptions {
  /** Recent (counter → identity) entries kept per pack (default 128). */
  readonly window?: number;
  /** Open gap ranges kept per pack (default 64); beyond, the lowest is forgotten and counted. */
  readonly maxGaps?: number;
  readonly lookup: CounterLookup;
}

/** A counter reserved by classify and not yet committed; copies arriving meanwhile wait on it. */
interface Pending {
  readonly identity: FrameIdentity;
  waiters: ((durable: boolean) => void)[] | undefined;
}

function settle(p: Pending | undefined, durable: boolean): void {
  if (p?.waiters === undefined) return;
  for (const w of p.waiters) w(durable);
}

const NEW: Classification = Object.freeze({ kind: 'new' });
const GAP_FILL: Classification = Object.freeze({ kind: 'gap-fill' });
const LATE: Classification = Object.freeze({ kind: 'late' });
const REPLAY: Classification = Object.freeze({ kind: 'replay' });
const DUPLICATE_DURABLE: Classification = Object.freeze({ kind: 'duplicate', durable: true });

/** Bounded map of the most recently committed counters, evicted in commit order. */
class RecentWindow {
  private readonly map = new Map<number, FrameIdentity>();
  constructor(private readonly size: number) {}
  get(counter: number): FrameIdentity | undefined {
    return this.map.get(counter);
  }
  put(counter: number, identity: FrameIdentity): void {
    this.map.delete(counter);
    this.map.set(counter, identity);
    if (this.map.size > this.size) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
  }
}

/** Sorted, disjoint, inclusive counter ranges, at most `max` of them. */
export class GapSet {
  private ranges: [number, number][] = [];
  forgotten = 0;
  constructor(private readonly max: number) {}

  get list(): readonly (readonly [number, number])[] {
    return this.ranges;
  }

  /** Missing counters over all ranges. */
  get missing(): number {
    return this.ranges.reduce((n, [lo, hi]) => n + hi - lo + 1, 0);
  }

  has(c: number): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.ranges[mid];
      if (r === undefined) return false;
      if (c < r[0]) hi = mid - 1;
      else if (c > r[1]) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** Adds a range above every existing one (gaps open only above the highest counter). */
  addTop(lo: number, hi: number): void {
    this.ranges.push([lo, hi]);
    this.trim();
  }

  /** Removes one counter (a gap fill), splitting its range if needed. */
  remove(c: number): void {
    const i = this.ranges.findIndex(([lo, hi]) => c >= lo && c <= hi);
    const r = this.ranges[i];
    if (r === undefined) return;
    const [lo, hi] = r;
    const parts: [number, number][] = [];
    if (lo < c) parts.push([lo, c - 1]);
    if (c < hi) parts.push([c + 1, hi]);
    this.ranges.splice(i, 1, ...parts);
    this.trim();
  }

  restore(ranges: readonly (readonly [number, number])[]): void {
    this.ranges = ranges.map(([lo, hi]) => [lo, hi]);
    this.trim();
  }

  private trim(): void {
    while (this.ranges.length > this.max) {
      this.ranges.shift();
      this.forgotten++;
    }
  }
}

class PackState {
  highest = -1;
  lowest = -1;
  readonly gaps: GapSet;
  readonly window: RecentWindow;
  readonly pending = new Map<number, Pending>();
  readonly counts: PackCounts = { frames: 0, duplicates: 0, replays: 0, gapsOpened: 0, gapFills: 0, late: 0, gapsForgotten: 0 };
  /** Serialises classification per pack across the asynchronous log lookups. */
  tail: Promise<unknown> = Promise.resolve();
  /** Classifications of this pack waiting behind a lookup: while > 0, none may run synchronously. */
  waiting = 0;

  constructor(windowSize: number, maxGaps: number) {
    this.window = new RecentWindow(windowSize);
    this.gaps = new GapSet(maxGaps);
  }
}

export class DedupeTable {
  private readonly packs = new Map<string, PackState>();
  private readonly windowSize: number;
  private readonly maxGaps: number;
  private readonly lookup: CounterLookup;

  /** Throws RangeError for a window or gap cap outside 1..1,000,000 (a configuration bug). */
  constructor(opts: DedupeOptions) {
    this.windowSize = opts.window ?? 128;
    this.maxGaps = opts.maxGaps ?? 64;
    for (const [name, v] of [['window', this.windowSize], ['maxGaps', this.maxGaps]] as const) {
      if (!Number.isSafeInteger(v) || v < 1 || v > 1_000_000) throw new RangeError(`gateway: dedupe ${name} must be 1..1000000, got ${v}`);
    }
    this.lookup = opts.lookup;
  }

  private pack(serial: string): PackState {
    let p = this.packs.get(serial);
    if (p === undefined) {
      p = new PackState(this.windowSize, this.maxGaps);
      this.packs.set(serial, p);
    }
    return p;
  }

  /**
   * Classifies a verified frame and, for `new`, `gap-fill` and `late`, reserves its counter: the
   * caller must then call `commit` (append durable) or `abort` (append failed) exactly once.
   * Classifications of one pack take effect in call order, so two copies of a frame are never both
   * reserved. Answers synchronously when memory decides (the common case) and with a promise when
   * the log must be asked (or an earlier frame of the pack is still waiting for it). The promise
   * rejects only if the lookup rejects (the caller treats that as a store fault).
   */
  classify(serial: string, counter: number, identity: FrameIdentity): Classification | Promise<Classification> {
    const p = this.pack(serial);
    if (p.waiting === 0) {
      const known = this.known(p, counter, identity);
      if (known !== undefined) return this.reserve(p, counter, identity, known);
    }
    p.waiting++;
    const run = p.tail.then(() => this.classifyLater(p, serial, counter, identity));
    p.tail = run.then(
      () => {
        p.waiting--;
      },
      () => {
        p.waiting--;
      },
    );
    return run;
  }

  private async classifyLater(p: PackState, serial: string, counter: number, identity: FrameIdentity): Promise<Classification> {
    const known = this.known(p, counter, identity);
    if (known !== undefined) return this.reserve(p, counter, identity, known);
    const found = await this.lookup(serial, counter);
    if (found === undefined) return this.reserve(p, counter, identity, LATE);
    p.window.put(counter, found);
    return this.compare(p, found, identity, undefined);
  }

  /** The classification from memory alone, or undefined when only the log can tell. */
  private known(p: PackState, counter: number, identity: FrameIdentity): Classification | undefined {
    const pending = p.pending.get(counter);
    if (pending !== undefined) return this.compare(p, pending.identity, identity, pending);
    const recent = p.window.get(counter);
    if (recent !== undefined) return this.compare(p, recent, identity, undefined);
    if (p.highest < 0) return NEW;
    if (counter > p.highest) return counter > p.highest + 1 ? { kind: 'new', gap: [p.highest + 1, counter - 1] } : NEW;
    if (p.gaps.has(counter)) return GAP_FILL;
    if (counter < p.lowest) return LATE;
    return undefined;
  }

  /** Same bytes: a duplicate, durable now or when `pending` commits; other bytes: a replay. */
  private compare(p: PackState, stored: FrameIdentity, identity: FrameIdentity, pending: Pending | undefined): Classification {
    if (stored !== identity) {
      p.counts.replays++;
      return REPLAY;
    }
    p.counts.duplicates++;
    if (pending === undefined) return DUPLICATE_DURABLE;
    return { kind: 'duplicate', durable: new Promise<boolean>((resolve) => (pending.waiters ??= []).push(resolve)) };
  }

  private reserve(p: PackState, counter: number, identity: FrameIdentity, c: Classification): Classification {
    if (c.kind === 'new' || c.kind === 'gap-fill' || c.kind === 'late') p.pending.set(counter, { identity, waiters: undefined });
    return c;
  }

  /**
   * Records a frame as durable in the log. The pipeline calls it after the append resolved, in log
   * order; recovery calls it for every entry after the snapshot. Idempotent for a counter already
   * committed with the same identity.
   */
  commit(serial: string, counter: number, identity: FrameIdentity): void {
    const p = this.pack(serial);
    const pending = p.pending.get(counter);
    p.pending.delete(counter);
    if (p.highest < 0) {
      p.highest = counter;
      p.lowest = counter;
    } else if (counter > p.highest) {
      if (counter > p.highest + 1) {
        p.gaps.addTop(p.highest + 1, counter - 1);
        p.counts.gapsOpened++;
      }
      p.highest = counter;
    } else if (p.gaps.has(counter)) {
      p.gaps.remove(counter);
      p.counts.gapFills++;
    } else if (counter < p.lowest) {
      p.lowest = counter;
      p.counts.late++;
    } else if (p.window.get(counter) !== undefined) {
      settle(pending, true);
      return; // already committed: a replayed log entry seen twice, nothing changes
    } else {
      p.counts.late++;
    }
    p.counts.frames++;
    p.counts.gapsForgotten = p.gaps.forgotten;
    p.window.put(counter, identity);
    settle(pending, true);
  }

  /** Releases a reservation whose append failed: copies waiting on it are not acked either. */
  abort(serial: string, counter: number): void {
    const p = this.packs.get(serial);
    const pending = p?.pending.get(counter);
    if (p === undefined || pending === undefined) return;
    p.pending.delete(counter);
    settle(pending, false);
  }

  /** Per-pack state for status and snapshots. */
  snapshot(serial: string): PackSnapshot | undefined {
    const p = this.packs.get(serial);
    if (p === undefined || p.highest < 0) return undefined;
    return { highest: p.highest, lowest: p.lowest, gaps: p.gaps.list.map(([lo, hi]) => [lo, hi] as const), counts: { ...p.counts } };
  }

  serials(): string[] {
    return [...this.packs.keys()];
  }

  /** Restores one pack from a snapshot (before any frame of it is classified). */
  restore(serial: string, s: PackSnapshot): void {
    const p = this.pack(serial);
    p.highest = s.highest;
    p.lowest = s.lowest;
    p.gaps.restore(s.gaps);
    p.gaps.forgotten = s.counts.gapsForgotten;
    Object.assign(p.counts, s.counts);
  }

  /** Missing counters in the open gaps of `serial`. */
  missing(serial: string): number {
    return this.packs.get(serial)?.gaps.missing ?? 0;
  }
}
