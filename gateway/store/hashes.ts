/**
 * Where the Merkle tree's stored hashes live on disk (docs/protocol.md §7.3, Go tlog's layout).
 * Segment k holds entries [k·2^b, (k+1)·2^b) and, in `k.hashes`, exactly the stored hashes written
 * while those entries were appended: stored indexes [storedHashIndex(0, k·2^b), storedHashIndex(0,
 * (k+1)·2^b)), 32 bytes each at (index − base) × 32. Every hash of the segment's complete subtree is
 * in that range, and so are the 1 + trailingOnes(k) hashes at level ≥ b whose subtree ends in it
 * (they are the file's last hashes). Proofs and tree hashes of sizes at or beyond a pruned
 * boundary P (a multiple of 2^b) only read hashes at level ≥ b inside [0, P) — the tiles left of
 * P are aligned subtrees of at least 2^b entries — so pruning a segment keeps just those few hashes
 * (`pruned.hashes`). StoreHashReader serves protocol's treeHash/proveRecord/proveTree from these files;
 * FrontierReader lets the writer compute new hashes from the right edge of the tree in memory.
 */
import { HASH_SIZE, storedHashCount, type HashReader } from '../../protocol/index.js';
import { GatewayError, invariant } from '../errors.js';
import { segmentFileName } from './format.js';
import { copyOut, type FdCache } from './files.js';
import { join } from 'node:path';

/** Index arithmetic of segments of 2^bits entries. All exact on safe integers (no 32-bit operators). */
export class SegmentLayout {
  readonly perSegment: number;

  constructor(readonly bits: number) {
    this.perSegment = 2 ** bits;
  }

  segmentOf(index: number): number {
    return Math.floor(index / this.perSegment);
  }

  start(k: number): number {
    return k * this.perSegment;
  }

  readonly #bases = new Map<number, number>();

  /** Stored index of the first hash of segment k (= storedHashCount of the entries before it). */
  hashBase(k: number): number {
    let b = this.#bases.get(k);
    if (b === undefined) {
      if (this.#bases.size >= 4096) this.#bases.clear(); // a memo, bounded: it only saves a loop of ~50 steps
      b = storedHashCount(k * this.perSegment);
      this.#bases.set(k, b);
    }
    return b;
  }

  /**
   * Number of stored hashes a full segment k holds: 2^(b+1) − 1 for its own subtree plus one per
   * higher subtree its last entry completes (1 + trailing ones of k of them at level ≥ b).
   */
  hashCount(k: number): number {
    return this.hashBase(k + 1) - this.hashBase(k);
  }

  /** Segment whose hashes file holds stored index i. */
  segmentOfHash(i: number): number {
    // hashBase(k) = 2k·2^b − popcount(k), so i / 2^(b+1) is off by at most one.
    let k = Math.floor(i / (2 * this.perSegment));
    while (this.hashBase(k + 1) <= i) k++;
    while (k > 0 && this.hashBase(k) > i) k--;
    return k;
  }

  /** Stored indexes of segment k's hashes at level ≥ b: what pruning the segment must keep. */
  topHashIndexes(k: number): number[] {
    const end = this.hashBase(k + 1);
    const n = this.hashCount(k) - (2 * this.perSegment - 2); // the segment root and the ones above it
    return Array.from({ length: n }, (_, j) => end - n + j);
  }
}

/** Hashes per cached page: 4 KiB, one pread, and the unit of the reader's LRU. */
const PAGE_HASHES = 128;
const PAGE_BYTES = PAGE_HASHES * HASH_SIZE;

/**
 * HashReader over the segment files and the kept hashes of pruned segments. Serves only hashes
 * of the durable tree (`limit()` = storedHashCount(durable size)); anything else is STORE_RANGE,
 * a hash missing from a pruned segment is STORE_RANGE, a hashes file shorter than the durable
 * tree is STORE_CORRUPT. Reads go by 4 KiB pages through a small LRU: a proof's low-level siblings
 * sit next to each other (one page), and the high-level ones are shared by every proof. Only pages
 * wholly inside the durable tree are cached — bytes past it may belong to a commit in flight
 * that is rolled back — and durable hashes never change, so the cache needs no invalidation
 * (pruned segments are answered from `pruned` before the cache is consulted).
 */
export class StoreHashReader implements HashReader {
  /** Page key → slot in the slab; Map order is the LRU order. */
  readonly #slots = new Map<string, number>();
  readonly #slab: Uint8Array;
  readonly #free: number[] = [];
  #nextSlot = 0;
  readonly #scratch: Uint8Array = new Uint8Array(PAGE_BYTES);
  readonly #paths = new Map<number, string>();

  constructor(
    private readonly dir: string,
    private readonly layout: SegmentLayout,
    private readonly fds: FdCache,
    private readonly pruned: ReadonlyMap<number, Uint8Array>,
    private readonly limit: () => number,
    private readonly firstSegment: () => number,
    private readonly cachePages = 2048,
  ) {
    // One slab for all cached pages: a fresh 4 KiB typed array per read costs more than the pread.
    this.#slab = new Uint8Array(cachePages * PAGE_BYTES);
  }

  readHashes(indexes: readonly number[]): Uint8Array[] {
    const max = this.limit();
    const first = this.firstSegment();
    return indexes.map((i) => {
      if (!Number.isSafeInteger(i) || i < 0 || i >= max) {
        throw new GatewayError('STORE_RANGE', `gateway: store: stored hash ${String(i)} is beyond the durable tree (${max} hashes)`);
      }
      const k = this.layout.segmentOfHash(i);
      if (k < first) {
        const h = this.pruned.get(i);
        if (!h) throw new GatewayError('STORE_RANGE', `gateway: store: stored hash ${i} was in pruned segment ${k}`);
        return h;
      }
      const base = this.layout.hashBase(k);
      const page = Math.floor((i - base) / PAGE_HASHES);
      const [buf, at] = this.#page(k, base, page, max, i);
      return copyOut(buf, at + (i - base - page * PAGE_HASHES) * HASH_SIZE, HASH_SIZE);
    });
  }

  /**
   * Page `page` of segment k's hashes file as [buffer, byte offset of the page in it]: a slab slot
   * when the page lies wholly in the durable tree (cached), else the scratch page (valid until the
   * next read).
   */
  #page(k: number, base: number, page: number, max: number, need: number): [Uint8Array, number] {
    const key = `${k}/${page}`;
    const hit = this.#slots.get(key);
    if (hit !== undefined) {
      this.#slots.delete(key);
      this.#slots.set(key, hit);
      return [this.#slab, hit * PAGE_BYTES];
    }
    let path = this.#paths.get(k);
    if (path === undefined) {
      path = join(this.dir, segmentFileName(k, 'hashes'));
      this.#paths.set(k, path);
    }
    // Pages wholly inside the durable tree go to a slab slot; the tail page to the scratch page.
    // Cacheable: every hash the page will ever hold is durable (a segment's last page may be short).
    const pageEnd = Math.min(base + (page + 1) * PAGE_HASHES, this.layout.hashBase(k + 1));
    const cacheable = pageEnd <= max;
    const want = (pageEnd - base - page * PAGE_HASHES) * HASH_SIZE;
    const slot = cacheable ? this.#takeSlot() : -1;
    const target = slot < 0 ? this.#scratch : this.#slab.subarray(slot * PAGE_BYTES, (slot + 1) * PAGE_BYTES);
    let got: number;
    try {
      got = this.fds.readInto(path, page * PAGE_BYTES, target);
      const short = cacheable ? got < want : got < (need - base - page * PAGE_HASHES + 1) * HASH_SIZE;
      if (short) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${path} ends inside the durable tree (before stored hash ${need} or its page)`);
    } catch (e) {
      if (slot >= 0) this.#free.push(slot);
      if (e instanceof GatewayError) throw e;
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && k < this.firstSegment()) {
        throw new GatewayError('STORE_RANGE', `gateway: store: segment ${k} was pruned while reading`, { cause: e });
      }
      throw new GatewayError('STORE_IO', `gateway: store: reading ${path} failed`, { cause: e });
    }
    if (slot < 0) return [this.#scratch, 0];
    this.#slots.set(key, slot);
    return [this.#slab, slot * PAGE_BYTES];
  }

  /** A free slab slot: unused, else the least recently used page's. */
  #takeSlot(): number {
    const free = this.#free.pop();
    if (free !== undefined) return free;
    if (this.#nextSlot < this.cachePages) return this.#nextSlot++;
    const [oldKey, oldSlot] = this.#slots.entries().next().value as [string, number];
    this.#slots.delete(oldKey);
    return oldSlot;
  }
}

/**
 * The right edge of the tree, for the writer: appending entry n reads the latest complete node of
 * each level below trailingOnes(n) (docs/protocol.md §7.3 "Appending"), which is always the last
 * hash created at that level. Keeping one hash per level (≤ 53) in memory saves a disk read per
 * append; misses (right after open) fall through to the durable files.
 */
export class FrontierReader implements HashReader {
  readonly #byIndex = new Map<number, Uint8Array>();
  readonly #levelIndex: number[] = [];

  constructor(private readonly base: HashReader) {}

  /** Records hash (level, ·) just created at stored index `index`. */
  set(level: number, index: number, hash: Uint8Array): void {
    const old = this.#levelIndex[level];
    if (old !== undefined) this.#byIndex.delete(old);
    this.#levelIndex[level] = index;
    this.#byIndex.set(index, hash);
  }

  /** Forgets everything (after a failed commit whose hashes never became durable). */
  clear(): void {
    this.#byIndex.clear();
    this.#levelIndex.length = 0;
  }

  readHashes(indexes: readonly number[]): Uint8Array[] {
    const misses = indexes.filter((i) => !this.#byIndex.has(i));
    const fromBase = misses.length === 0 ? [] : this.base.readHashes(misses);
    let m = 0;
    return indexes.map((i) => {
      const h = this.#byIndex.get(i) ?? fromBase[m++];
      invariant(h !== undefined, 'frontier: base reader returned too few hashes');
      return h;
    });
  }
}
