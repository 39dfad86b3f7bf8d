/**
 * Verifiers for RFC 9162 Merkle proofs, written step by step from the RFC's algorithms:
 * inclusion proofs (§2.1.3.2) and consistency proofs (§2.1.4.2). Everything here is input from
 * elsewhere (a proof bundle, an upload, a witness request) and is hostile: sizes and indexes must
 * be safe integers (≤ 2^53 − 1), every hash exactly 32 bytes, proofs at most 64 hashes long (a tree
 * of 2^53 leaves needs at most 53). Failures throw ProtocolError — MERKLE_INDEX for impossible
 * coordinates, MERKLE_PROOF for a proof that does not reproduce the roots — and never return false,
 * so a forgotten check cannot be silently ignored.
 */
import { bytesEqual } from './bytes.js';
import { ProtocolError } from './errors.js';
import { HASH_SIZE, emptyRoot, nodeHash } from './merkle.js';

/** Longest proof accepted: a tree of up to 2^53 − 1 leaves needs at most 53 hashes (+ slack). */
export const MAX_PROOF_LENGTH = 64;

function checkIndex(x: number, what: string): void {
  if (!Number.isSafeInteger(x) || x < 0) {
    throw new ProtocolError('MERKLE_INDEX', `merkle: ${what}: expected a non-negative safe integer, got ${String(x)}`);
  }
}

function checkHash(h: Uint8Array, what: string): void {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
    throw new ProtocolError('MERKLE_PROOF', `merkle: ${what}: expected a 32-byte hash`);
  }
}

function checkProof(proof: readonly Uint8Array[]): void {
  // Array.isArray narrows a readonly array to any[]; test a copy of the reference typed unknown.
  const list: unknown = proof;
  if (!Array.isArray(list)) throw new ProtocolError('MERKLE_PROOF', 'merkle: proof: expected an array of hashes');
  if (proof.length > MAX_PROOF_LENGTH) {
    throw new ProtocolError('MERKLE_PROOF', `merkle: proof: ${proof.length} hashes, at most ${MAX_PROOF_LENGTH} allowed`);
  }
  proof.forEach((h, i) => {
    checkHash(h, `proof[${i}]`);
  });
}

const fail = (why: string): never => {
  throw new ProtocolError('MERKLE_PROOF', `merkle: ${why}`);
};

// Right shift and LSB on numbers up to 2^53 (bitwise operators would truncate to 32 bits).
const half = (x: number): number => Math.floor(x / 2);
const odd = (x: number): boolean => x % 2 === 1;

/**
 * The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1–4, and the "sn is 0" check
 * of step 5; the caller compares the root). Throws MERKLE_INDEX if leafIndex ≥ treeSize or either
 * is not a safe integer; MERKLE_PROOF for malformed hashes or a proof of the wrong length.
 */
export function rootFromInclusionProof(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  checkIndex(leafIndex, 'leaf index');
  checkIndex(treeSize, 'tree size');
  // Step 1: an index outside the tree has no proof.
  if (leafIndex >= treeSize) throw new ProtocolError('MERKLE_INDEX', `merkle: leaf index ${leafIndex} is not below tree size ${treeSize}`);
  checkHash(leafHash, 'leaf hash');
  checkProof(proof);
  // Steps 2–3.
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  // Step 4.
  for (const p of proof) {
    if (sn === 0) fail('inclusion proof is longer than the path to the root'); // 4a
    if (odd(fn) || fn === sn) {
      // 4b: p is a left sibling. When fn = sn with fn even, the node has no right sibling at
      // these levels (the right edge of an unbalanced tree): climb until it does.
      r = nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p); // p is a right sibling
    }
    fn = half(fn); // 4c
    sn = half(sn);
  }
  // Step 5 (first half): the proof must reach the root exactly.
  if (sn !== 0) fail('inclusion proof is shorter than the path to the root');
  return r;
}

/**
 * Checks an RFC 9162 §2.1.3.2 inclusion proof that `leafHash` is leaf `leafIndex` of the tree of
 * size `treeSize` with root `root`. Returns nothing on success. Throws MERKLE_INDEX for an index
 * not below the size (including any index in the empty tree) or non-integer coordinates, and
 * MERKLE_PROOF for any hash that is not 32 bytes, a proof of the wrong length, or a root mismatch.
 */
export function verifyInclusion(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  const computed = rootFromInclusionProof(leafIndex, treeSize, leafHash, proof);
  checkHash(root, 'root');
  if (!bytesEqual(computed, root)) fail(`inclusion proof for leaf ${leafIndex} does not reproduce the root of tree size ${treeSize}`);
}

/**
 * Checks an RFC 9162 §2.1.4.2 consistency proof that the tree of size `size1` with root `root1`
 * is a prefix of the tree of size `size2` with root `root2`.
 *
 * The RFC defines proofs for 0 < size1 < size2; the two edge cases are settled here as:
 * size1 = size2 needs an empty proof and root1 = root2; size1 = 0 needs an empty proof and root1
 * equal to the empty tree's root SHA-256() (§2.1.1) — any tree extends the empty tree.
 *
 * Throws MERKLE_INDEX if size1 > size2 or a size is not a safe integer; MERKLE_PROOF for any hash
 * that is not 32 bytes, a proof of the wrong length, or roots the proof does not reproduce.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): void {
  checkIndex(size1, 'first tree size');
  checkIndex(size2, 'second tree size');
  if (size1 > size2) throw new ProtocolError('MERKLE_INDEX', `merkle: first tree size ${size1} exceeds second tree size ${size2}`);
  checkHash(root1, 'first root');
  checkHash(root2, 'second root');
  checkProof(proof);
  if (size1 === size2) {
    if (proof.length !== 0) fail('consistency proof between equal sizes must be empty');
    if (!bytesEqual(root1, root2)) fail(`two different roots for tree size ${size1}`);
    return;
  }
  if (size1 === 0) {
    if (proof.length !== 0) fail('consistency proof from the empty tree must be empty');
    if (!bytesEqual(root1, emptyRoot())) fail('first root is not the empty tree root SHA-256()');
    return;
  }
  // Step 1.
  if (proof.length === 0) fail('consistency proof is empty');
  // Step 2: when size1 is a power of two the old tree is a complete subtree of the new one, and
  // its root is the starting point the proof leaves out.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  // Steps 3–4.
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // Step 5.
  let fr = path[0] as Uint8Array;
  let sr = fr;
  // Step 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) fail('consistency proof is longer than the path to the root'); // 6a
    if (odd(fn) || fn === sn) {
      // 6b: c is a left sibling on both paths.
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c); // c is only in the new tree, to the right
    }
    fn = half(fn); // 6c
    sn = half(sn);
  }
  // Step 7.
  if (sn !== 0) fail('consistency proof is shorter than the path to the root');
  if (!bytesEqual(fr, root1)) fail(`consistency proof does not reproduce the root of tree size ${size1}`);
  if (!bytesEqual(sr, root2)) fail(`consistency proof does not reproduce the root of tree size ${size2}`);
}

function isPowerOfTwo(x: number): boolean {
  while (x > 1 && x % 2 === 0) x /= 2;
  return x === 1;
}
