/**
 * `gateway verify`: an independent re-check of everything the gateway's log claims (DESIGN.md
 * decision 3). Every leaf is read back (the store checks its record CRC), re-hashed (RFC 9162
 * leaf hash) and compared with the stored leaf hash; the tree root is recomputed from those
 * recomputed hashes alone (a compact range of ≤ 53 subtree roots — memory independent of the log)
 * and compared with every stored checkpoint, whose gateway signature is checked; consecutive
 * checkpoints are checked for consistency (RFC 9162 §2.1.4 proof from the stored hashes); every
 * frame's COSE_Sign1 signature is re-verified with the key of the certificate the leaf names (the
 * certificate store gives the chain by its SHA-256), its payload must name the pack and counter the
 * index holds. Chain trust at the receive time (revocation, CRL freshness) is reported as
 * warnings: a pack revoked later does not make its earlier entries tampered.
 * The log is opened read-only by the caller, so this runs beside a live daemon.
 */
import {
  bytesEqual,
  checkConsistentCheckpoints,
  decodeFrame,
  decodeLeaf,
  importSpki,
  isProtocolError,
  keyId,
  leafHash,
  nodeHash,
  openCheckpoint,
  parseCertificate,
  toHex,
  verifySign1,
  type NoteVerifier,
  type OpenedCheckpoint,
  type PublicKey,
  type TrustStore,
} from '../../protocol/index.js';
import type { CertStore } from '../certs.js';
import { isGatewayError } from '../errors.js';
import type { StoredCheckpoint } from '../store/checkpoints.js';
import type { LogStore } from '../store/log-store.js';

export interface LogProblem {
  /** The entry at fault, when one is. */
  readonly index?: number;
  /** The checkpoint (tree size) at fault, when one is. */
  readonly checkpoint?: number;
  readonly code: string;
  readonly what: string;
}

export interface VerifyLogReport {
  readonly ok: boolean;
  readonly origin: string;
  readonly firstIndex: number;
  readonly size: number;
  readonly entriesChecked: number;
  readonly checkpointsChecked: number;
  readonly framesVerified: number;
  /** Entries whose certificate the store does not hold (their signatures were not checked). */
  readonly framesWithoutChain: number;
  /** Chain verdicts at the receive time other than OK, by protocol code (warnings). */
  readonly chainWarnings: Readonly<Record<string, number>>;
  /** Problems, in index order (checkpoint-only problems last), at most MAX_PROBLEMS. */
  readonly problems: readonly LogProblem[];
  readonly problemCount: number;
}

const MAX_PROBLEMS = 100;

/** RFC 9162 §2.1.1 root of a growing list of leaf hashes, kept as its perfect subtrees (largest first). */
class RootBuilder {
  readonly #stack: { size: number; hash: Uint8Array }[] = [];
  #n = 0;

  get size(): number {
    return this.#n;
  }

  push(h: Uint8Array): void {
    let top = { size: 1, hash: h };
    for (let prev = this.#stack.at(-1); prev !== undefined && prev.size === top.size; prev = this.#stack.at(-1)) {
      this.#stack.pop();
      top = { size: prev.size * 2, hash: nodeHash(prev.hash, top.hash) };
    }
    this.#stack.push(top);
    this.#n++;
  }

  /** MTH of the leaves pushed so far: the subtrees folded right to left (RFC 9162 §2.1.1 split rule). */
  root(): Uint8Array | undefined {
    let r: Uint8Array | undefined;
    for (let i = this.#stack.length - 1; i >= 0; i--) {
      const s = this.#stack[i] as { hash: Uint8Array };
      r = r === undefined ? s.hash : nodeHash(s.hash, r);
    }
    return r;
  }
}

interface CertKey {
  readonly publicKey: PublicKey;
  readonly kid: Uint8Array;
  readonly serials: readonly string[];
  readonly chain: readonly Uint8Array[];
}

export interface VerifyLogOptions {
  readonly store: LogStore;
  readonly certs: CertStore;
  /** The gateway's checkpoint verifier (its key file's public half, or the verifier key text). */
  readonly verifier: NoteVerifier;
  /** Trust bundle: when given, each chain is judged at the entry's receive time (warnings only). */
  readonly trust?: TrustStore;
}

/** Runs every check; never throws for damage (it is reported), only for a failing disk (STORE_IO). */
export async function verifyLog(o: VerifyLogOptions): Promise<VerifyLogReport> {
  const { store } = o;
  const problems: LogProblem[] = [];
  let problemCount = 0;
  const problem = (p: LogProblem): void => {
    problemCount++;
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  const corrupt = store.report.corrupt;
  if (corrupt) problem({ index: corrupt.index, code: 'STORE_CORRUPT', what: corrupt.reason });

  // Checkpoints: the history files, plus the latest (which may be newer than the history's last).
  const bySize = new Map<number, StoredCheckpoint>();
  try {
    for await (const c of store.checkpoints()) bySize.set(c.size, c);
  } catch (e) {
    if (!isGatewayError(e, 'STORE_CORRUPT')) throw e;
    problem({ code: 'STORE_CORRUPT', what: `checkpoint history: ${e.message}` });
  }
  const latest = store.latestCheckpoint();
  if (latest) bySize.set(latest.size, latest);
  const sizes = [...bySize.keys()].sort((a, b) => a - b);
  const opened = new Map<number, OpenedCheckpoint>();
  for (const size of sizes) {
    const c = bySize.get(size) as StoredCheckpoint;
    try {
      opened.set(size, openCheckpoint(c.note, { origin: store.origin, verifiers: [o.verifier] }));
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      problem({ checkpoint: size, code: e.code, what: `checkpoint of size ${size}: signature by ${o.verifier.name} does not verify: ${e.message}` });
    }
    if (size > store.size) problem({ checkpoint: size, code: 'CHECKPOINT_BEYOND_LOG', what: `checkpoint of size ${size} covers more entries than the log holds (${store.size})` });
  }

  const builder = store.firstIndex === 0 ? new RootBuilder() : undefined;
  const keys = new Map<string, CertKey | undefined>();
  const chainWarnings: Record<string, number> = {};
  let entriesChecked = 0;
  let framesVerified = 0;
  let framesWithoutChain = 0;
  const checkRootAt = (size: number, root: Uint8Array | undefined): void => {
    const cp = bySize.get(size);
    if (cp === undefined || root === undefined) return;
    if (!bytesEqual(root, cp.rootHash)) problem({ index: size - 1, checkpoint: size, code: 'CHECKPOINT_ROOT', what: `the root recomputed from the leaves of entries 0..${size - 1} differs from the signed checkpoint of size ${size}` });
  };

  let next = store.firstIndex;
  while (next < store.size) {
    try {
      for await (const e of store.entries(next, store.size)) {
        next = e.index + 1;
        entriesChecked++;
        const h = leafHash(e.data);
        if (!bytesEqual(h, store.leafHash(e.index))) problem({ index: e.index, code: 'LEAF_HASH', what: `entry ${e.index}: the leaf data does not hash to the stored leaf hash (leaf altered)` });
        if (builder) {
          builder.push(h);
          checkRootAt(builder.size, builder.root());
        }
        checkFrame(e.index, e.data, e.serial, e.counter);
      }
    } catch (e) {
      if (!isGatewayError(e, 'STORE_CORRUPT')) throw e;
      problem({ index: next, code: 'STORE_CORRUPT', what: e.message.replace(/^gateway: store: /, '') });
      if (builder) {
        // The stored hash keeps later roots comparable, so one damaged record is reported once.
        let h: Uint8Array;
        try {
          h = store.leafHash(next);
        } catch {
          h = new Uint8Array(32);
        }
        builder.push(h);
        checkRootAt(builder.size, builder.root());
      }
      next++;
    }
  }

  function keyOf(certSha256: Uint8Array): CertKey | undefined {
    const hex = toHex(certSha256);
    if (keys.has(hex)) return keys.get(hex);
    let k: CertKey | undefined;
    const chain = o.certs.chain(certSha256);
    if (chain !== undefined) {
      const cert = parseCertificate(chain[0] as Uint8Array);
      const publicKey = importSpki(cert.spki);
      k = { publicKey, kid: keyId(publicKey), serials: cert.serialNumbers, chain };
    }
    keys.set(hex, k);
    return k;
  }

  function checkFrame(index: number, data: Uint8Array, serial: string, counter: number): void {
    try {
      const leaf = decodeLeaf(data);
      const k = keyOf(leaf.certSha256);
      if (k === undefined) {
        framesWithoutChain++;
        return;
      }
      const frame = decodeFrame(verifySign1(leaf.frame, { publicKey: k.publicKey, kid: k.kid }).payload);
      if (!k.serials.includes(frame.serial)) problem({ index, code: 'FRAME_SERIAL_MISMATCH', what: `entry ${index}: the frame names ${frame.serial}, its certificate ${k.serials.join(',')}` });
      else if (frame.serial !== serial || frame.counter !== counter) problem({ index, code: 'INDEX_MISMATCH', what: `entry ${index}: the index says ${serial} #${counter}, the frame ${frame.serial} #${frame.counter}` });
      else framesVerified++;
      if (o.trust) {
        try {
          o.trust.verifyChain(k.chain, new Date(leaf.receivedAt));
        } catch (e) {
          if (!isProtocolError(e)) throw e;
          chainWarnings[e.code] = (chainWarnings[e.code] ?? 0) + 1;
        }
      }
    } catch (e) {
      if (isGatewayError(e, 'CERT_STORE')) {
        problem({ index, code: 'CERT_STORE', what: `entry ${index}: ${e.message}` });
        return;
      }
      if (!isProtocolError(e)) throw e;
      problem({ index, code: e.code, what: `entry ${index}: ${e.message}` });
    }
  }

  // Stored hashes against the checkpoints (this also covers the pruned prefix the builder cannot see),
  // and consistency between consecutive checkpoints.
  let prev: OpenedCheckpoint | undefined;
  for (const size of sizes) {
    const cp = opened.get(size);
    if (size > store.size || cp === undefined) continue;
    if (size < store.firstIndex) continue;
    try {
      if (!bytesEqual(store.root(size), cp.rootHash)) problem({ checkpoint: size, code: 'STORED_HASHES', what: `the stored Merkle hashes give another root than the signed checkpoint of size ${size}` });
      if (prev !== undefined) checkConsistentCheckpoints(prev, cp, store.consistencyProof(prev.size, size));
    } catch (e) {
      if (isProtocolError(e)) problem({ checkpoint: size, code: e.code, what: `checkpoints ${prev?.size ?? 0} → ${size} are not consistent: ${e.message}` });
      else if (isGatewayError(e, 'STORE_CORRUPT', 'STORE_RANGE')) problem({ checkpoint: size, code: e.code, what: e.message });
      else throw e;
    }
    prev = cp;
  }

  problems.sort((a, b) => (a.index ?? Infinity) - (b.index ?? Infinity));
  return {
    ok: problemCount === 0,
    origin: store.origin,
    firstIndex: store.firstIndex,
    size: store.size,
    entriesChecked,
    checkpointsChecked: opened.size,
    framesVerified,
    framesWithoutChain,
    chainWarnings,
    problems,
    problemCount,
  };
}
