/**
 * The firmware's resend buffer in memory (DESIGN.md decision 4): signed frames that no host has
 * acknowledged yet, in counter order, at most `capacity` of them. A full ring drops its oldest
 * frame to make room (the DESIGN "OverwriteOldestData" choice: the newest state of health matters
 * most) and reports what it dropped so the caller can count it. Acks free frames by inclusive
 * counter ranges and are idempotent: counters the ring no longer holds are ignored (docs/protocol.md
 * §4.3). Durability is flash.ts's job (journal.ts records); this class is pure bookkeeping, so the
 * same code replays the journal at boot and runs live, and both apply capacity the same way.
 *
 * Counters only grow, so insertion order is counter order: a Map keeps the live entries, and a
 * sorted array of counters (with lazily pruned dead slots) gives binary search for "first unacked
 * frame after the resend cursor" and for large ack ranges without walking every counter in them.
 */
import type { AckRange } from '../protocol/index.js';

export interface RingEntry {
  readonly counter: number;
  /** The COSE_Sign1 bytes exactly as signed and sent. */
  readonly cose: Uint8Array;
  /** Device time (ms) when the frame was produced. */
  readonly producedAt: number;
}

export class FrameRing {
  private readonly live = new Map<number, RingEntry>();
  /** Counters in ascending order from `head`; some may be freed already (not in `live`). */
  private order: number[] = [];
  private head = 0;
  private liveBytes = 0;
  private lastAdded = -1;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new Error(`ring capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.live.size;
  }

  /** Total COSE bytes held (for journal compaction decisions). */
  get bytes(): number {
    return this.liveBytes;
  }

  /** The highest counter ever added, or -1. */
  get lastCounter(): number {
    return this.lastAdded;
  }

  has(counter: number): boolean {
    return this.live.has(counter);
  }

  get(counter: number): RingEntry | undefined {
    return this.live.get(counter);
  }

  /**
   * Adds a frame; returns the entries dropped to stay within capacity (oldest first). Counters
   * must strictly increase: a repeat would mean a counter was reused, a firmware bug (throws).
   */
  add(entry: RingEntry): RingEntry[] {
    if (!(entry.counter > this.lastAdded)) {
      throw new Error(`ring: counter ${entry.counter} is not above the last one (${this.lastAdded}): a counter was reused`);
    }
    this.lastAdded = entry.counter;
    const dropped: RingEntry[] = [];
    while (this.live.size >= this.capacity) {
      const oldest = this.oldest();
      if (!oldest) break;
      this.remove(oldest.counter);
      dropped.push(oldest);
    }
    this.live.set(entry.counter, entry);
    this.order.push(entry.counter);
    this.liveBytes += entry.cose.length;
    this.prune();
    return dropped;
  }

  /** Frees the counters in `ranges` that the ring holds; returns them ascending. */
  free(ranges: readonly AckRange[]): number[] {
    const freed: number[] = [];
    for (const [lo, hi] of ranges) {
      if (hi - lo + 1 <= this.live.size) {
        for (let c = lo; c <= hi; c++) if (this.remove(c)) freed.push(c);
      } else {
        // A wide range (e.g. [0, 2^53 − 1]): walk only the live entries inside it.
        for (let i = this.search(lo); i < this.order.length; i++) {
          const c = this.order[i] ?? Infinity;
          if (c > hi) break;
          if (this.remove(c)) freed.push(c);
        }
      }
    }
    this.prune();
    return freed.sort((a, b) => a - b);
  }

  /** The oldest live entry. */
  oldest(): RingEntry | undefined {
    for (let i = this.head; i < this.order.length; i++) {
      const e = this.live.get(this.order[i] ?? -1);
      if (e) {
        this.head = i; // everything before i is dead
        return e;
      }
    }
    return undefined;
  }

  /** The live entry with the smallest counter greater than `cursor`. */
  firstAfter(cursor: number): RingEntry | undefined {
    for (let i = this.search(cursor + 1); i < this.order.length; i++) {
      const e = this.live.get(this.order[i] ?? -1);
      if (e) return e;
    }
    return undefined;
  }

  /** Live entries with counter < `limit`, ascending. */
  *below(limit: number): Generator<RingEntry> {
    for (let i = this.head; i < this.order.length; i++) {
      const c = this.order[i] ?? Infinity;
      if (c >= limit) return;
      const e = this.live.get(c);
      if (e) yield e;
    }
  }

  /** Every live entry, ascending by counter. */
  entries(): IterableIterator<RingEntry> {
    return this.live.values();
  }

  /** Frees everything; returns what was held, ascending. */
  clear(): RingEntry[] {
    const all = [...this.live.values()];
    this.live.clear();
    this.order = [];
    this.head = 0;
    this.liveBytes = 0;
    return all;
  }

  private remove(counter: number): boolean {
    const e = this.live.get(counter);
    if (!e) return false;
    this.live.delete(counter);
    this.liveBytes -= e.cose.length;
    return true;
  }

  /** Index in `order` of the first counter ≥ c (binary search from `head`). */
  private search(c: number): number {
    let lo = this.head;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.order[mid] ?? Infinity) < c) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drops dead slots once they outnumber the live ones, so memory stays O(capacity). */
  private prune(): void {
    if (this.order.length <= 2 * this.live.size + 1024) return;
    this.order = this.order.slice(this.head).filter((c) => this.live.has(c));
    this.head = 0;
  }
}
