import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from './bytes.js';
import { isProtocolError } from './errors.js';
import {
  MAX_STORED_TREE_SIZE,
  MemoryHashStore,
  emptyRoot,
  leafHash,
  nodeHash,
  proveRecord,
  proveTree,
  storedHashCount,
  storedHashIndex,
  storedHashes,
  treeHash,
  type HashReader,
} from './merkle.js';
import { consistencyProofOfLeaves, inclusionProofOfLeaves, rootOfLeaves } from './merkle-reference.js';
import { verifyConsistency, verifyInclusion } from './merkle-verify.js';
import { codeOf } from './testing.js';

interface Vector {
  name: string;
  kind: 'emptyRoot' | 'leafHash' | 'nodeHash' | 'root' | 'inclusion' | 'consistency';
  expect: string;
  [k: string]: unknown;
}
const file = JSON.parse(readFileSync(new URL('../test/vectors/merkle.json', import.meta.url), 'utf8')) as {
  treeLeaves: string[];
  vectors: Vector[];
};

const h = (x: unknown): Uint8Array => fromHex(x as string);
const hs = (x: unknown): Uint8Array[] => (x as string[]).map((s) => fromHex(s));

/** Records `i` as data, the same as a gateway would append frames. */
const record = (i: number): Uint8Array => utf8(`leaf ${i}`);

function storeOf(n: number): { store: MemoryHashStore; leaves: Uint8Array[] } {
  const store = new MemoryHashStore(4);
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    store.append(record(i));
    leaves.push(leafHash(record(i)));
  }
  return { store, leaves };
}


const flipped = (proof: Uint8Array[], k: number): Uint8Array[] =>
  proof.map((p, j) => {
    if (j !== k) return p;
    const q = Uint8Array.from(p);
    q[0] = (q[0] ?? 0) ^ 1;
    return q;
  });

describe('merkle vectors (test/vectors/merkle.json)', () => {
  const tree = new MemoryHashStore();
  for (const l of file.treeLeaves) tree.append(fromHex(l));

  for (const v of file.vectors) {
    it(`${v.name} → ${v.expect}`, () => {
      switch (v.kind) {
        case 'emptyRoot':
          expect(toHex(emptyRoot())).toBe(v.hash);
          expect(toHex(treeHash(0, tree))).toBe(v.hash);
          break;
        case 'leafHash':
          expect(toHex(leafHash(h(v.data)))).toBe(v.hash);
          break;
        case 'nodeHash':
          expect(toHex(nodeHash(h(v.left), h(v.right)))).toBe(v.hash);
          break;
        case 'root': {
          const size = v.size as number;
          expect(toHex(treeHash(size, tree))).toBe(v.root);
          expect(toHex(rootOfLeaves(file.treeLeaves.slice(0, size).map((l) => leafHash(fromHex(l)))))).toBe(v.root);
          break;
        }
        case 'inclusion': {
          const [i, t] = [v.leafIndex as number, v.treeSize as number];
          expect(codeOf(() => { verifyInclusion(i, t, h(v.leafHash), hs(v.proof), h(v.root)); })).toBe(v.expect);
          // Round trip: our prover reproduces every valid published proof.
          if (v.expect === 'ok') expect(proveRecord(t, i, tree).map(toHex)).toEqual(v.proof);
          break;
        }
        case 'consistency': {
          const [s1, s2] = [v.size1 as number, v.size2 as number];
          expect(codeOf(() => { verifyConsistency(s1, s2, hs(v.proof), h(v.root1), h(v.root2)); })).toBe(v.expect);
          if (v.expect === 'ok') expect(proveTree(s2, s1, tree).map(toHex)).toEqual(v.proof);
          break;
        }
      }
    });
  }

  it('covers every kind, and both outcomes for proofs', () => {
    const kinds = new Set(file.vectors.map((v) => `${v.kind}:${v.expect === 'ok' ? 'ok' : 'error'}`));
    for (const k of ['emptyRoot:ok', 'leafHash:ok', 'nodeHash:ok', 'root:ok', 'inclusion:ok', 'inclusion:error', 'consistency:ok', 'consistency:error']) {
      expect(kinds).toContain(k);
    }
  });
});

describe('storedHashIndex', () => {
  it('lays hashes out in append order (Crosby–Wallach §3.3), as tlog does', () => {
    // Record 0: (0,0). Record 1: (0,1),(1,0). Record 2: (0,2). Record 3: (0,3),(1,1),(2,0).
    const order = [[0, 0], [0, 1], [1, 0], [0, 2], [0, 3], [1, 1], [2, 0], [0, 4]];
    expect(order.map(([l, n]) => storedHashIndex(l ?? 0, n ?? 0))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('is a bijection onto 0..count-1 for the first 1000 records', () => {
    const seen = new Set<number>();
    for (let level = 0; level < 11; level++) {
      for (let n = 0; (n + 1) * 2 ** level <= 1000; n++) seen.add(storedHashIndex(level, n));
    }
    expect(seen.size).toBe(storedHashCount(1000));
    expect(Math.max(...seen)).toBe(storedHashCount(1000) - 1);
  });

  describe('when the subtree lies beyond 2^52 records', () => {
    it('throws MERKLE_INDEX', () => {
      expect(codeOf(() => storedHashIndex(0, MAX_STORED_TREE_SIZE))).toBe('MERKLE_INDEX');
      expect(codeOf(() => storedHashIndex(52, 1))).toBe('MERKLE_INDEX');
      expect(codeOf(() => storedHashIndex(53, 0))).toBe('MERKLE_INDEX');
      expect(codeOf(() => storedHashIndex(0, -1))).toBe('MERKLE_INDEX');
      expect(codeOf(() => storedHashIndex(1.5, 0))).toBe('MERKLE_INDEX');
    });
  });

  it('stays exact at the 2^52-record limit', () => {
    expect(storedHashIndex(52, 0)).toBe(2 ** 53 - 2);
    expect(storedHashCount(MAX_STORED_TREE_SIZE)).toBe(Number.MAX_SAFE_INTEGER);
    expect(codeOf(() => storedHashCount(MAX_STORED_TREE_SIZE + 1))).toBe('MERKLE_INDEX');
  });
});

describe('MemoryHashStore', () => {
  it('stores storedHashCount(n) hashes after n appends, and returns copies', () => {
    const store = new MemoryHashStore(1);
    for (let n = 1; n <= 300; n++) {
      expect(store.append(record(n - 1))).toBe(n - 1);
      expect(store.hashCount).toBe(storedHashCount(n));
    }
    const [a] = store.readHashes([0]);
    a![0] = (a![0] ?? 0) ^ 0xff;
    expect(toHex(store.readHashes([0])[0]!)).toBe(toHex(leafHash(record(0))));
  });

  describe('when an index is not stored', () => {
    it('throws MERKLE_INDEX', () => {
      const { store } = storeOf(3);
      expect(codeOf(() => store.readHashes([store.hashCount]))).toBe('MERKLE_INDEX');
      expect(codeOf(() => store.readHashes([-1]))).toBe('MERKLE_INDEX');
      expect(codeOf(() => treeHash(4, store))).toBe('MERKLE_INDEX');
      expect(codeOf(() => proveRecord(4, 0, store))).toBe('MERKLE_INDEX');
    });
  });

  describe('when a leaf hash is not 32 bytes', () => {
    it('throws MERKLE_PROOF', () => {
      expect(codeOf(() => new MemoryHashStore().appendLeafHash(new Uint8Array(31)))).toBe('MERKLE_PROOF');
    });
  });
});

describe('stored-hash API against the RFC 9162 reference definitions', () => {
  const N = 70;
  const { store, leaves } = storeOf(N);
  const roots = Array.from({ length: N + 1 }, (_, t) => rootOfLeaves(leaves.slice(0, t)));

  it(`treeHash equals MTH for every size 0..${N}`, () => {
    for (let t = 0; t <= N; t++) expect(toHex(treeHash(t, store))).toBe(toHex(roots[t]!));
  });

  it(`proveRecord equals PATH and verifies, and every one-bit corruption fails, for all index pairs up to ${N}`, () => {
    for (let t = 1; t <= N; t++) {
      for (let i = 0; i < t; i++) {
        const proof = proveRecord(t, i, store);
        expect(proof.map(toHex)).toEqual(inclusionProofOfLeaves(i, leaves.slice(0, t)).map(toHex));
        verifyInclusion(i, t, leaves[i]!, proof, roots[t]!);
        for (let k = 0; k < proof.length; k++) {
          expect(codeOf(() => { verifyInclusion(i, t, leaves[i]!, flipped(proof, k), roots[t]!); })).toBe('MERKLE_PROOF');
        }
        if (t > 1) expect(codeOf(() => { verifyInclusion(i, t, leaves[(i + 1) % t]!, proof, roots[t]!); })).toBe('MERKLE_PROOF');
      }
    }
  });

  it(`proveTree equals PROOF and verifies, and every one-bit corruption fails, for all size pairs up to ${N}`, () => {
    for (let t = 1; t <= N; t++) {
      for (let m = 0; m <= t; m++) {
        const proof = proveTree(t, m, store);
        expect(proof.map(toHex)).toEqual(consistencyProofOfLeaves(m, leaves.slice(0, t)).map(toHex));
        verifyConsistency(m, t, proof, roots[m]!, roots[t]!);
        for (let k = 0; k < proof.length; k++) {
          expect(codeOf(() => { verifyConsistency(m, t, flipped(proof, k), roots[m]!, roots[t]!); })).toBe('MERKLE_PROOF');
        }
        if (m > 0 && m < t) expect(codeOf(() => { verifyConsistency(m, t, proof, roots[m - 1]!, roots[t]!); })).toBe('MERKLE_PROOF');
      }
    }
  });

  it('agrees with the reference for random larger trees', () => {
    const big = storeOf(3000);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), fc.nat(), fc.nat(), (t, a, b) => {
        const i = a % t;
        const m = b % (t + 1);
        const prefix = big.leaves.slice(0, t);
        const root = treeHash(t, big.store);
        expect(toHex(root)).toBe(toHex(rootOfLeaves(prefix)));
        const ip = proveRecord(t, i, big.store);
        expect(ip.map(toHex)).toEqual(inclusionProofOfLeaves(i, prefix).map(toHex));
        verifyInclusion(i, t, prefix[i]!, ip, root);
        const cp = proveTree(t, m, big.store);
        expect(cp.map(toHex)).toEqual(consistencyProofOfLeaves(m, prefix).map(toHex));
        verifyConsistency(m, t, cp, treeHash(m, big.store), root);
      }),
      { numRuns: 150 },
    );
  });
});

describe('HashReader use', () => {
  /** Wraps a store and records every readHashes call. */
  function spy(store: MemoryHashStore): { reader: HashReader; calls: number[][] } {
    const calls: number[][] = [];
    return {
      calls,
      reader: {
        readHashes(ix) {
          calls.push([...ix]);
          return store.readHashes(ix);
        },
      },
    };
  }

  it('asks once per operation, in increasing index order, for O(log n) hashes', () => {
    const { store } = storeOf(1023);
    const { reader, calls } = spy(store);
    treeHash(999, reader);
    proveRecord(1000, 517, reader);
    proveTree(1000, 333, reader);
    storedHashes(1000, record(1000), reader);
    expect(calls.length).toBe(3); // storedHashes(1000) completes no subtree: reads nothing
    storedHashes(1023, record(1023), reader);
    expect(calls.length).toBe(4);
    for (const c of calls) {
      expect(c.length).toBeLessThanOrEqual(2 * 10 + 1);
      for (let k = 1; k < c.length; k++) expect(c[k]).toBeGreaterThan(c[k - 1]!);
    }
  });

  describe('when a reader breaks its contract', () => {
    it('fails an invariant (a bug, not a ProtocolError)', () => {
      const { store } = storeOf(8);
      const short: HashReader = { readHashes: (ix) => store.readHashes(ix).slice(1) };
      const bad = (() => {
        try {
          proveRecord(8, 3, short);
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      expect(bad).toBeInstanceOf(Error);
      expect(isProtocolError(bad)).toBe(false);
    });
  });
});

describe('proveRecord / proveTree arguments', () => {
  const { store } = storeOf(8);
  it('throws MERKLE_INDEX for an index not below the size', () => {
    expect(codeOf(() => proveRecord(8, 8, store))).toBe('MERKLE_INDEX');
    expect(codeOf(() => proveRecord(0, 0, store))).toBe('MERKLE_INDEX');
  });
  it('throws MERKLE_INDEX for an old size above the new size', () => {
    expect(codeOf(() => proveTree(4, 5, store))).toBe('MERKLE_INDEX');
  });
  it('throws MERKLE_INDEX for sizes that are not safe integers or beyond 2^52', () => {
    expect(codeOf(() => proveRecord(2.5, 1, store))).toBe('MERKLE_INDEX');
    expect(codeOf(() => proveRecord(MAX_STORED_TREE_SIZE + 1, 0, store))).toBe('MERKLE_INDEX');
    expect(codeOf(() => treeHash(Number.NaN, store))).toBe('MERKLE_INDEX');
    expect(codeOf(() => storedHashes(MAX_STORED_TREE_SIZE, record(0), store))).toBe('MERKLE_INDEX');
  });
  it('gives the empty proof from the empty tree and between equal sizes', () => {
    expect(proveTree(8, 0, store)).toEqual([]);
    expect(proveTree(8, 8, store)).toEqual([]);
  });
});

describe('reference functions', () => {
  it('throw MERKLE_INDEX outside the list', () => {
    const leaves = [leafHash(record(0))];
    expect(codeOf(() => inclusionProofOfLeaves(1, leaves))).toBe('MERKLE_INDEX');
    expect(codeOf(() => consistencyProofOfLeaves(2, leaves))).toBe('MERKLE_INDEX');
  });
});
