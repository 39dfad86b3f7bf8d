import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { MemoryHashStore, leafHash, proveRecord, proveTree, treeHash } from './merkle.js';
import { rootFromInclusionProof, verifyConsistency, verifyInclusion } from './merkle-verify.js';

function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof ProtocolError) return e.code;
    throw e; // anything else fails the property
  }
}

const N = 200;
const store = new MemoryHashStore();
for (let i = 0; i < N; i++) store.append(utf8(`r${i}`));
const roots = Array.from({ length: N + 1 }, (_, t) => treeHash(t, store));

const hash = fc.uint8Array({ minLength: 32, maxLength: 32 });
const anyBytes = fc.uint8Array({ maxLength: 40 });
const anyNumber = fc.oneof(
  fc.integer({ min: -5, max: 300 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 53, Number.NaN, Infinity, -0, 0.5, 2 ** 52),
  fc.double(),
);

describe('verifyInclusion', () => {
  describe('when fed arbitrary coordinates, hashes and proofs', () => {
    it('returns or throws MERKLE_INDEX / MERKLE_PROOF, nothing else', () => {
      fc.assert(
        fc.property(anyNumber, anyNumber, anyBytes, fc.array(anyBytes, { maxLength: 70 }), anyBytes, (i, t, l, p, r) => {
          expect(['ok', 'MERKLE_INDEX', 'MERKLE_PROOF']).toContain(outcome(() => { verifyInclusion(i, t, l, p, r); }));
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe('when a valid proof is mutated', () => {
    it('throws MERKLE_PROOF or MERKLE_INDEX', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: N }), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(7), (t, a, at, byte, how) => {
          const i = a % t;
          const proof = proveRecord(t, i, store);
          const leaf = leafHash(utf8(`r${i}`));
          const m: Uint8Array[] = proof.map((x) => Uint8Array.from(x));
          const k = m.length === 0 ? 0 : at % m.length;
          let ii = i;
          let root = roots[t]!;
          switch (how) {
            case 0: if (m.length === 0) return; m[k]![byte % 32] = (m[k]![byte % 32] ?? 0) ^ (1 + (byte % 255)); break;
            case 1: m.push(roots[t]!); break;
            case 2: if (m.length === 0) return; m.splice(k, 1); break;
            case 3: if (m.length < 2) return; m.reverse(); break;
            case 4: if (t < 2) return; root = roots[t - 1 - (byte % (t - 1))]!; break;
            case 5: ii = i + 1 + (byte % 3); break;
            case 6: m.unshift(leaf); break;
            default: m.splice(k, 0, roots[1]!); break;
          }
          expect(['MERKLE_PROOF', 'MERKLE_INDEX']).toContain(outcome(() => { verifyInclusion(ii, t, leaf, m, root); }));
        }),
        { numRuns: 1500 },
      );
    });
  });

  describe('when the root is wrong', () => {
    it('throws MERKLE_PROOF', () => {
      const p = proveRecord(100, 37, store);
      expect(outcome(() => { verifyInclusion(37, 100, leafHash(utf8('r37')), p, roots[99]!); })).toBe('MERKLE_PROOF');
    });
  });

  it('rootFromInclusionProof gives the root for a valid proof', () => {
    const p = proveRecord(100, 99, store);
    expect(rootFromInclusionProof(99, 100, leafHash(utf8('r99')), p)).toEqual(roots[100]);
  });
});

describe('verifyConsistency', () => {
  describe('when fed arbitrary sizes, roots and proofs', () => {
    it('returns or throws MERKLE_INDEX / MERKLE_PROOF, nothing else', () => {
      fc.assert(
        fc.property(anyNumber, anyNumber, fc.array(fc.oneof(hash, anyBytes), { maxLength: 70 }), fc.oneof(hash, anyBytes), fc.oneof(hash, anyBytes), (a, b, p, r1, r2) => {
          expect(['ok', 'MERKLE_INDEX', 'MERKLE_PROOF']).toContain(outcome(() => { verifyConsistency(a, b, p, r1, r2); }));
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe('when a valid proof is checked against the roots of other sizes', () => {
    it('throws MERKLE_PROOF unless the roots are the ones it was made for', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: N }), fc.nat(), fc.integer({ min: 0, max: N }), fc.integer({ min: 0, max: N }), (t, a, r1, r2) => {
          const m = 1 + (a % t);
          const proof = proveTree(t, m, store);
          const got = outcome(() => { verifyConsistency(m, t, proof, roots[r1]!, roots[r2]!); });
          // Between equal sizes the proof is empty and only root equality is checked.
          const valid = m === t ? r1 === r2 : r1 === m && r2 === t;
          expect(got).toBe(valid ? 'ok' : 'MERKLE_PROOF');
        }),
        { numRuns: 1500 },
      );
    });
  });

  describe('when size1 > size2', () => {
    it('throws MERKLE_INDEX', () => {
      expect(outcome(() => { verifyConsistency(9, 8, [], roots[9]!, roots[8]!); })).toBe('MERKLE_INDEX');
    });
  });

  describe('when the proof is not an array', () => {
    it('throws MERKLE_PROOF', () => {
      expect(outcome(() => { verifyConsistency(3, 8, 'x' as unknown as Uint8Array[], roots[3]!, roots[8]!); })).toBe('MERKLE_PROOF');
    });
  });
});
