/**
 * The segment layout of stored hashes, checked against protocol's storedHashIndex: each segment's
 * hashes file holds exactly the hashes written while its entries were appended, and once segments
 * below a boundary are pruned, tree hashes and proofs at or beyond the boundary need only the kept
 * level ≥ b hashes (the property that makes pruning safe). Exhaustive over small trees.
 */
import { describe, expect, it } from 'vitest';
import { MemoryHashStore, leafHash, proveRecord, proveTree, storedHashIndex, storedHashesForLeafHash, treeHash, type HashReader } from '../../protocol/index.js';
import { FrontierReader, SegmentLayout } from './hashes.js';

describe('SegmentLayout', () => {
  for (const bits of [2, 3, 5]) {
    const L = new SegmentLayout(bits);
    it(`(2^${bits}) puts every stored hash in the segment of the last entry it covers`, () => {
      for (let k = 0; k < 40; k++) {
        expect(L.hashBase(k)).toBe(storedHashIndex(0, k * L.perSegment));
        expect(L.hashBase(k + 1) - L.hashBase(k)).toBe(L.hashCount(k));
        for (let i = L.hashBase(k); i < L.hashBase(k + 1); i++) expect(L.segmentOfHash(i)).toBe(k);
      }
      for (let level = 0; level <= bits + 4; level++) {
        for (let n = 0; n * 2 ** level < 40 * L.perSegment; n++) {
          const lastEntry = (n + 1) * 2 ** level - 1;
          expect(L.segmentOfHash(storedHashIndex(level, n))).toBe(L.segmentOf(lastEntry));
        }
      }
    });

    it(`(2^${bits}) lists as top hashes exactly the segment's hashes at level ≥ ${bits}`, () => {
      for (let k = 0; k < 40; k++) {
        const want: number[] = [];
        for (let level = bits; level <= bits + 6; level++) {
          for (let n = 0; n * 2 ** level < 41 * L.perSegment; n++) {
            const i = storedHashIndex(level, n);
            if (L.segmentOfHash(i) === k) want.push(i);
          }
        }
        expect(L.topHashIndexes(k)).toEqual(want.sort((a, b) => a - b));
      }
    });
  }
});

/** A reader over a full store that refuses hashes of pruned segments other than their top hashes. */
function prunedReader(full: MemoryHashStore, layout: SegmentLayout, prunedSegments: number): HashReader & { refused: number } {
  const kept = new Set<number>();
  for (let k = 0; k < prunedSegments; k++) for (const i of layout.topHashIndexes(k)) kept.add(i);
  const r = {
    refused: 0,
    readHashes(indexes: readonly number[]): Uint8Array[] {
      for (const i of indexes) {
        if (layout.segmentOfHash(i) < prunedSegments && !kept.has(i)) {
          r.refused++;
          throw new Error(`hash ${i} of a pruned segment`);
        }
      }
      return full.readHashes(indexes);
    },
  };
  return r;
}

describe('pruning keeps what proofs need', () => {
  it('tree hashes, inclusion and consistency proofs at or beyond the boundary read only kept hashes', () => {
    const layout = new SegmentLayout(3);
    const full = new MemoryHashStore();
    for (let i = 0; i < 72; i++) full.append(Uint8Array.of(i));
    for (let pruned = 1; pruned <= 8; pruned++) {
      const boundary = pruned * layout.perSegment;
      const reader = prunedReader(full, layout, pruned);
      for (let t = boundary; t <= 72; t++) {
        expect(treeHash(t, reader)).toEqual(treeHash(t, full));
        for (let i = boundary; i < t; i++) expect(proveRecord(t, i, reader)).toEqual(proveRecord(t, i, full));
        for (let m = boundary; m <= t; m++) expect(proveTree(t, m, reader)).toEqual(proveTree(t, m, full));
      }
      expect(reader.refused).toBe(0);
      // The check can fail: below the boundary the pruned hashes are really needed.
      if (boundary > 1) expect(() => proveRecord(72, boundary - 1, reader)).toThrow(/pruned segment/);
    }
  });
});

describe('FrontierReader', () => {
  it('computes the same stored hashes as the reference store from the right edge alone', () => {
    const ref = new MemoryHashStore();
    let misses = 0;
    const frontier = new FrontierReader({
      readHashes: (ix) => {
        misses += ix.length;
        return ref.readHashes(ix);
      },
    });
    for (let n = 0; n < 1000; n++) {
      const data = Uint8Array.of(n & 0xff, n >> 8);
      const hs = storedHashesForLeafHash(n, leafHash(data), frontier);
      hs.forEach((h, level) => {
        frontier.set(level, storedHashIndex(0, n) + level, h);
      });
      const before = ref.hashCount;
      ref.append(data);
      expect(hs).toEqual(ref.readHashes(hs.map((_, j) => before + j)));
    }
    expect(misses).toBe(0);
  });

  it('falls through to storage after clear()', () => {
    const ref = new MemoryHashStore();
    for (let n = 0; n < 8; n++) ref.append(Uint8Array.of(n));
    let misses = 0;
    const frontier = new FrontierReader({
      readHashes: (ix) => {
        misses += ix.length;
        return ref.readHashes(ix);
      },
    });
    frontier.set(0, 11, new Uint8Array(32));
    frontier.clear();
    expect(frontier.readHashes([11, 13])).toEqual(ref.readHashes([11, 13]));
    expect(misses).toBe(2);
  });
});
