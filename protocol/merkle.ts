/**
 * The RFC 9162 Merkle tree of the frame log (docs/protocol.md §7): leaf and node hashes
 * (§2.1.1), and a storage-agnostic way to build the tree incrementally and to produce inclusion
 * (§2.1.3) and consistency (§2.1.4) proofs from stored hashes. The design follows Go's
 * golang.org/x/mod/sumdb/tlog, which the gateway's tile storage builds on: every complete
 * subtree hash is stored once, at a dense "stored hash index" (Crosby & Wallach, "Efficient Data
 * Structures for Tamper-Evident Logging", §3.3), and a one-method `HashReader` reads them back.
 * Appending a record stores amortised ~2 hashes; proofs and tree hashes read O(log n) hashes.
 * Verifiers live in merkle-verify.ts, whole-list reference definitions in merkle-reference.ts.
 */
import { ProtocolError, invariant } from './errors.js';
import { sha256 } from './crypto.js';

/** Size in bytes of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32;

/**
 * Largest tree (in records) the stored-hash API accepts: stored hash indexes stay below 2^53,
 * so they are exact JS numbers (storedHashCount(2^52) = 2^53 − 1).
 */
export const MAX_STORED_TREE_SIZE = 2 ** 52;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** RFC 9162 §2.1.1: the hash of a leaf is SHA-256(0x00 ‖ data). */
export function leafHash(data: Uint8Array): Uint8Array {
  return sha256(LEAF_PREFIX, data);
}

/** RFC 9162 §2.1.1: the hash of an interior node is SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(NODE_PREFIX, left, right);
}

/** RFC 9162 §2.1.1: MTH({}) = SHA-256(), the root of the empty tree. */
export function emptyRoot(): Uint8Array {
  return sha256();
}

/**
 * Reads stored hashes (see storedHashIndex). Implemented by MemoryHashStore and by the gateway's
 * tile storage.
 *
 * Contract: `readHashes` returns exactly one 32-byte hash per requested index, in the order
 * requested; callers here always ask in increasing order, which lets storage read sequentially.
 * For an index that is not stored (beyond the tree, or not yet written) it must throw — a
 * ProtocolError with code MERKLE_INDEX, or its own error for an I/O failure — never return a
 * placeholder. Returning the wrong number of hashes, or hashes of the wrong size, breaks the
 * contract and is reported as an internal invariant failure (a bug in the reader).
 */
export interface HashReader {
  readHashes(indexes: readonly number[]): Uint8Array[];
}

function checkCount(x: number, max: number, what: string): void {
  if (!Number.isSafeInteger(x) || x < 0 || x > max) {
    throw new ProtocolError('MERKLE_INDEX', `merkle: ${what}: expected an integer in [0, ${max}], got ${String(x)}`);
  }
}

// Bitwise operators truncate to 32 bits, so the index arithmetic below uses exact float
// division by two on non-negative safe integers instead.
const half = (x: number): number => Math.floor(x / 2);

/** Number of trailing 1 bits of n (n ≥ 0). */
function trailingOnes(n: number): number {
  let c = 0;
  while (n % 2 === 1) {
    n = (n - 1) / 2;
    c++;
  }
  return c;
}

/** [k, log2 k] for k the largest power of two ≤ w (w ≥ 1). */
function floorPow2(w: number): [number, number] {
  let k = 1;
  let level = 0;
  while (k * 2 <= w) {
    k *= 2;
    level++;
  }
  return [k, level];
}

/** RFC 9162 §2.1.1 split point: the largest power of two strictly less than w (w ≥ 2). */
function splitPoint(w: number): number {
  let k = 1;
  while (k * 2 < w) k *= 2;
  return k;
}

/**
 * Maps tree coordinates to the dense storage order: the `n`th hash at `level` (level 0 = leaf
 * hashes; level L node n covers records [n·2^L, (n+1)·2^L)). Hash (L, n) is written right after
 * hash (L−1, 2n+1), i.e. as soon as the record completing its subtree is appended, so the storage
 * is append-only. Throws MERKLE_INDEX if the subtree lies beyond MAX_STORED_TREE_SIZE records.
 */
export function storedHashIndex(level: number, n: number): number {
  checkCount(level, 52, 'level');
  // The subtree's last record, n·2^L + 2^L − 1, must be a record of a tree of at most 2^52.
  if (!Number.isSafeInteger(n) || n < 0 || n + 1 > 2 ** (52 - level)) {
    throw new ProtocolError('MERKLE_INDEX', `merkle: node ${String(n)} at level ${level} lies beyond ${MAX_STORED_TREE_SIZE} records`);
  }
  return storedIndex(level, n);
}

/** storedHashIndex without argument checks, for coordinates derived from checked sizes. */
function storedIndex(level: number, n: number): number {
  const p = 2 ** level;
  // Level L's nth hash comes right after level 0's hash of record m = n·2^L + 2^L − 1, which
  // is written at m + ⌊m/2⌋ + ⌊m/4⌋ + … (each record adds itself plus one hash per subtree it
  // completes). The result is at most 2m, so below 2^53 for m < 2^52.
  let m = n * p + (p - 1);
  let i = 0;
  for (; m > 0; m = half(m)) i += m;
  return i + level;
}

/** Number of hashes stored for a tree of `n` records. Throws MERKLE_INDEX for n > 2^52. */
export function storedHashCount(n: number): number {
  checkCount(n, MAX_STORED_TREE_SIZE, 'tree size');
  if (n === 0) return 0;
  // Up to and including the last leaf hash, plus one hash per subtree that leaf completes.
  return storedIndex(0, n - 1) + 1 + trailingOnes(n - 1);
}

function readChecked(reader: HashReader, indexes: readonly number[]): Uint8Array[] {
  const hashes = reader.readHashes(indexes);
  invariant(Array.isArray(hashes) && hashes.length === indexes.length, `HashReader returned ${String(hashes.length)} hashes for ${indexes.length} indexes`);
  for (const h of hashes) invariant(h instanceof Uint8Array && h.length === HASH_SIZE, 'HashReader returned a hash that is not 32 bytes');
  return hashes;
}

/**
 * The hashes to append to storage when adding record `n` (0-based; the tree had n records)
 * with the given data: its leaf hash, then one node hash per subtree it completes. They belong at
 * stored indexes storedHashIndex(0, n), +1, +2, …. Reads at most log2(n) earlier hashes.
 * Throws MERKLE_INDEX for n ≥ 2^52, and whatever the reader throws.
 */
export function storedHashes(n: number, data: Uint8Array, reader: HashReader): Uint8Array[] {
  return storedHashesForLeafHash(n, leafHash(data), reader);
}

/** storedHashes for a record whose leaf hash is already known. */
export function storedHashesForLeafHash(n: number, leaf: Uint8Array, reader: HashReader): Uint8Array[] {
  checkCount(n, MAX_STORED_TREE_SIZE - 1, 'record index');
  if (!(leaf instanceof Uint8Array) || leaf.length !== HASH_SIZE) {
    throw new ProtocolError('MERKLE_PROOF', 'merkle: leaf hash: expected 32 bytes');
  }
  // Each trailing 1 bit of n completes a subtree; its left sibling at level i is node
  // ⌊n/2^i⌋ − 1 (⌊n/2^i⌋ is odd). Indexes are listed in increasing order (highest level first).
  const m = trailingOnes(n);
  const indexes = new Array<number>(m);
  let x = n;
  for (let i = 0; i < m; i++) {
    indexes[m - 1 - i] = storedIndex(i, x - 1);
    x = (x - 1) / 2;
  }
  const old = m === 0 ? [] : readChecked(reader, indexes);
  const out = [leaf];
  let h = leaf;
  for (let i = 0; i < m; i++) {
    h = nodeHash(old[m - 1 - i] as Uint8Array, h);
    out.push(h);
  }
  return out;
}

/** Appends to `need` the stored indexes whose hashes combine to the subtree of records [lo, hi). */
function subTreeIndex(lo: number, hi: number, need: number[]): void {
  // Left to right, the largest complete (stored) subtrees that tile [lo, hi).
  while (lo < hi) {
    const [k, level] = floorPow2(hi - lo);
    invariant(lo % k === 0, 'subTreeIndex: misaligned subtree');
    need.push(storedIndex(level, lo / k));
    lo += k;
  }
}

/** Cursor over hashes read for the index list built by the matching *Index function. */
interface Cursor {
  readonly hashes: readonly Uint8Array[];
  pos: number;
}

function next(c: Cursor): Uint8Array {
  const h = c.hashes[c.pos++];
  invariant(h !== undefined, 'ran out of hashes (index math)');
  return h;
}

/** Hash of the subtree [lo, hi) from the hashes subTreeIndex(lo, hi) asked for. */
function subTreeHash(lo: number, hi: number, c: Cursor): Uint8Array {
  let numTree = 0;
  for (let x = lo; x < hi; numTree++) x += floorPow2(hi - x)[0];
  const parts: Uint8Array[] = [];
  for (let i = 0; i < numTree; i++) parts.push(next(c));
  // The stored subtrees shrink left to right; RFC 9162's MTH folds them from the right.
  let h = parts[numTree - 1] as Uint8Array;
  for (let i = numTree - 2; i >= 0; i--) h = nodeHash(parts[i] as Uint8Array, h);
  return h;
}

function finish(c: Cursor, what: string): void {
  invariant(c.pos === c.hashes.length, `${what}: unused hashes (index math)`);
}

/**
 * Root hash (RFC 9162 MTH) of the tree of the first `n` records, from stored hashes: one
 * readHashes call for at most log2(n) + 1 hashes. The empty tree's root is SHA-256() (§2.1.1).
 * Throws MERKLE_INDEX for n > 2^52, and whatever the reader throws.
 */
export function treeHash(n: number, reader: HashReader): Uint8Array {
  checkCount(n, MAX_STORED_TREE_SIZE, 'tree size');
  if (n === 0) return emptyRoot();
  const need: number[] = [];
  subTreeIndex(0, n, need);
  const c: Cursor = { hashes: readChecked(reader, need), pos: 0 };
  const h = subTreeHash(0, n, c);
  finish(c, 'treeHash');
  return h;
}

/** Indexes for the audit path of record n inside the subtree [lo, hi) (RFC 9162 §2.1.3.1). */
function leafProofIndex(lo: number, hi: number, n: number, need: number[]): void {
  invariant(lo <= n && n < hi, 'leafProofIndex: record outside subtree');
  if (lo + 1 === hi) return;
  const k = splitPoint(hi - lo);
  if (n < lo + k) {
    leafProofIndex(lo, lo + k, n, need);
    subTreeIndex(lo + k, hi, need);
  } else {
    subTreeIndex(lo, lo + k, need);
    leafProofIndex(lo + k, hi, n, need);
  }
}

/** The audit path PATH(n − lo, D[lo:hi]), leaf-side first, from the hashes read for it. */
function leafProof(lo: number, hi: number, n: number, c: Cursor): Uint8Array[] {
  if (lo + 1 === hi) return []; // the verifier knows the leaf hash itself
  const k = splitPoint(hi - lo);
  let p: Uint8Array[];
  let sibling: Uint8Array;
  if (n < lo + k) {
    p = leafProof(lo, lo + k, n, c);
    sibling = subTreeHash(lo + k, hi, c);
  } else {
    sibling = subTreeHash(lo, lo + k, c);
    p = leafProof(lo + k, hi, n, c);
  }
  p.push(sibling);
  return p;
}

/**
 * Inclusion proof (RFC 9162 §2.1.3.1 audit path) that record `n` is in the tree of size `t`,
 * in RFC order (the sibling nearest the leaf first). Reads O(log t) hashes in one call.
 * Throws MERKLE_INDEX unless 0 ≤ n < t ≤ 2^52, and whatever the reader throws.
 */
export function proveRecord(t: number, n: number, reader: HashReader): Uint8Array[] {
  checkCount(t, MAX_STORED_TREE_SIZE, 'tree size');
  checkCount(n, MAX_STORED_TREE_SIZE, 'record index');
  if (n >= t) throw new ProtocolError('MERKLE_INDEX', `merkle: record index ${n} is not below tree size ${t}`);
  const need: number[] = [];
  leafProofIndex(0, t, n, need);
  if (need.length === 0) return [];
  const c: Cursor = { hashes: readChecked(reader, need), pos: 0 };
  const p = leafProof(0, t, n, c);
  finish(c, 'proveRecord');
  return p;
}

/** Indexes for SUBPROOF(n − lo, D[lo:hi], lo = 0) (RFC 9162 §2.1.4.1). */
function treeProofIndex(lo: number, hi: number, n: number, need: number[]): void {
  invariant(lo < n && n <= hi, 'treeProofIndex: size outside subtree');
  if (n === hi) {
    if (lo !== 0) subTreeIndex(lo, hi, need);
    return;
  }
  const k = splitPoint(hi - lo);
  if (n <= lo + k) {
    treeProofIndex(lo, lo + k, n, need);
    subTreeIndex(lo + k, hi, need);
  } else {
    subTreeIndex(lo, lo + k, need);
    treeProofIndex(lo + k, hi, n, need);
  }
}

function treeProof(lo: number, hi: number, n: number, c: Cursor): Uint8Array[] {
  if (n === hi) {
    // lo = 0: this subtree is the old tree itself, whose root the verifier already has.
    return lo === 0 ? [] : [subTreeHash(lo, hi, c)];
  }
  const k = splitPoint(hi - lo);
  let p: Uint8Array[];
  let other: Uint8Array;
  if (n <= lo + k) {
    p = treeProof(lo, lo + k, n, c);
    other = subTreeHash(lo + k, hi, c);
  } else {
    other = subTreeHash(lo, lo + k, c);
    p = treeProof(lo + k, hi, n, c);
  }
  p.push(other);
  return p;
}

/**
 * Consistency proof (RFC 9162 §2.1.4.1 PROOF(n, D[t])) that the tree of size `n` is a prefix of
 * the tree of size `t`. Empty when n = t or n = 0 (every tree extends the empty tree). Note the
 * argument order follows tlog (newer size first); verifyConsistency takes (size1, size2).
 * Throws MERKLE_INDEX unless 0 ≤ n ≤ t ≤ 2^52, and whatever the reader throws.
 */
export function proveTree(t: number, n: number, reader: HashReader): Uint8Array[] {
  checkCount(t, MAX_STORED_TREE_SIZE, 'tree size');
  checkCount(n, MAX_STORED_TREE_SIZE, 'old tree size');
  if (n > t) throw new ProtocolError('MERKLE_INDEX', `merkle: old tree size ${n} exceeds tree size ${t}`);
  if (n === 0 || n === t) return [];
  const need: number[] = [];
  treeProofIndex(0, t, n, need);
  const c: Cursor = { hashes: readChecked(reader, need), pos: 0 };
  const p = treeProof(0, t, n, c);
  finish(c, 'proveTree');
  return p;
}

/**
 * The reference in-memory hash store: all stored hashes of a growing tree in one flat buffer
 * (32 bytes each, about 64 B per record), in storedHashIndex order. Used by tests, tools and
 * small logs; the gateway's durable tile storage implements HashReader the same way.
 */
export class MemoryHashStore implements HashReader {
  #buf: Uint8Array;
  #hashCount = 0;
  #size = 0;

  /** `initialRecords` only sizes the first allocation (capped at 2^20 records); the buffer doubles as needed. */
  constructor(initialRecords = 1024) {
    const records = Math.min(Math.max(1, Math.floor(initialRecords) || 1), 1 << 20);
    this.#buf = new Uint8Array(2 * records * HASH_SIZE);
  }

  /** Number of records (leaves) appended. */
  get size(): number {
    return this.#size;
  }

  /** Number of stored hashes (= storedHashCount(size)). */
  get hashCount(): number {
    return this.#hashCount;
  }

  /** Appends a record by its data; returns its index. */
  append(data: Uint8Array): number {
    return this.appendLeafHash(leafHash(data));
  }

  /** Appends a record by its leaf hash; returns its index. Throws MERKLE_PROOF for a non-32-byte hash. */
  appendLeafHash(leaf: Uint8Array): number {
    const hashes = storedHashesForLeafHash(this.#size, leaf, this);
    const need = (this.#hashCount + hashes.length) * HASH_SIZE;
    if (need > this.#buf.length) {
      const grown = new Uint8Array(Math.max(need, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#hashCount * HASH_SIZE));
      this.#buf = grown;
    }
    for (const h of hashes) this.#buf.set(h, HASH_SIZE * this.#hashCount++);
    return this.#size++;
  }

  /** HashReader: copies of the hashes at the given stored indexes. Throws MERKLE_INDEX for an index not stored. */
  readHashes(indexes: readonly number[]): Uint8Array[] {
    return indexes.map((i) => {
      if (!Number.isSafeInteger(i) || i < 0 || i >= this.#hashCount) {
        throw new ProtocolError('MERKLE_INDEX', `merkle: stored hash index ${String(i)} is not stored (have ${this.#hashCount})`);
      }
      return this.#buf.slice(i * HASH_SIZE, (i + 1) * HASH_SIZE);
    });
  }
}
