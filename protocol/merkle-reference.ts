/**
 * Reference definitions of RFC 9162 over a whole list of leaf hashes, transcribed literally from
 * the RFC's recursive definitions: MTH (§2.1.1), PATH (§2.1.3.1) and PROOF/SUBPROOF (§2.1.4.1).
 * They are O(n) per call and exist to cross-check the incremental stored-hash API (merkle.ts) and
 * the verifiers (merkle-verify.ts), and as executable documentation for independent implementers.
 * Inputs are leaf hashes, so MTH of a one-element list is that element. Throws MERKLE_INDEX for
 * an index or size outside the list.
 */
import { ProtocolError } from './errors.js';
import { emptyRoot, nodeHash } from './merkle.js';

/** The split point k: the largest power of two strictly less than n (n > 1). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH(D[n]) for D given by its leaf hashes: SHA-256() for n = 0 (§2.1.1). */
export function rootOfLeaves(leafHashes: readonly Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return emptyRoot();
  return mth(leafHashes, 0, leafHashes.length);
}

function mth(d: readonly Uint8Array[], lo: number, hi: number): Uint8Array {
  if (hi - lo === 1) return d[lo] as Uint8Array;
  const k = split(hi - lo);
  return nodeHash(mth(d, lo, lo + k), mth(d, lo + k, hi));
}

/** PATH(m, D[n]) (§2.1.3.1): the inclusion proof of leaf m, leaf-side first. */
export function inclusionProofOfLeaves(m: number, leafHashes: readonly Uint8Array[]): Uint8Array[] {
  if (!Number.isSafeInteger(m) || m < 0 || m >= leafHashes.length) {
    throw new ProtocolError('MERKLE_INDEX', `merkle: leaf index ${String(m)} outside a list of ${leafHashes.length}`);
  }
  return path(m, leafHashes, 0, leafHashes.length);
}

function path(m: number, d: readonly Uint8Array[], lo: number, hi: number): Uint8Array[] {
  const n = hi - lo;
  if (n === 1) return [];
  const k = split(n);
  // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k,
  //               = PATH(m − k, D[k:n]) : MTH(D[0:k]) for m ≥ k.
  if (m < k) return [...path(m, d, lo, lo + k), mth(d, lo + k, hi)];
  return [...path(m - k, d, lo + k, hi), mth(d, lo, lo + k)];
}

/**
 * PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (§2.1.4.1): the consistency proof from the tree of the
 * first m leaves. The RFC defines it for 0 < m < n; here m = 0 and m = n give the empty proof.
 */
export function consistencyProofOfLeaves(m: number, leafHashes: readonly Uint8Array[]): Uint8Array[] {
  if (!Number.isSafeInteger(m) || m < 0 || m > leafHashes.length) {
    throw new ProtocolError('MERKLE_INDEX', `merkle: old size ${String(m)} outside a list of ${leafHashes.length}`);
  }
  if (m === 0 || m === leafHashes.length) return [];
  return subproof(m, leafHashes, 0, leafHashes.length, true);
}

function subproof(m: number, d: readonly Uint8Array[], lo: number, hi: number, b: boolean): Uint8Array[] {
  const n = hi - lo;
  // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}.
  if (m === n) return b ? [] : [mth(d, lo, hi)];
  const k = split(n);
  // m ≤ k: SUBPROOF(m, D[0:k], b) : MTH(D[k:n]); m > k: SUBPROOF(m − k, D[k:n], false) : MTH(D[0:k]).
  if (m <= k) return [...subproof(m, d, lo, lo + k, b), mth(d, lo + k, hi)];
  return [...subproof(m - k, d, lo + k, hi, false), mth(d, lo, lo + k)];
}
