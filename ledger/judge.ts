/**
 * Judging uploaded leaves (docs/ledger.md "Verification and witnessing"): for each new leaf, its
 * RFC 9162 leaf hash is computed (never taken from the gateway), the leaf decoded (protocol
 * decodeLeaf), the device certificate it names found among uploaded and stored certificates and its
 * chain verified with the TrustStore at the leaf's receivedAt, then the frame's COSE signature
 * verified and its payload decoded on the verify pool (worker threads for a big batch), and the
 * frame's serial checked against the certificate's. A leaf that fails any step keeps its verdict
 * code: it is still stored (it is part of the gateway's tree) but never enters pack history.
 *
 * Runs before the upload's transaction takes the gateway's row lock, so verification of one upload
 * overlaps the database work of another; nothing here writes except certificates (idempotent).
 * Signatures are verified in chunks of VERIFY_CHUNK frames posted to the pool at once: judgeLeaves
 * resolves as soon as the leaves are decoded and their certificates resolved, and `until(end)` waits
 * for the chunks covering leaves [0, end) — so on PostgreSQL the upload's transaction appends the
 * tree, judges the checkpoint and inserts the first leaves while the workers still verify the rest.
 */
import { decodeLeaf, isProtocolError, leafHash, toHex, type DeviceKeyWire, type LogLeaf } from '../protocol/index.js';
import { storeCerts, type DeviceResolver } from './certs.js';
import type { Queryable } from './db/driver.js';
import { FIELD_COUNT, type BatchReply } from './verify-frame.js';
import type { VerifyPool } from './verify-pool.js';

/** The judged leaf: what the leaves table stores, and the frame columns when it verified. */
export interface JudgedLeaf {
  readonly data: Uint8Array;
  readonly leafHash: Uint8Array;
  readonly receivedAt: number | null;
  readonly source: string | null;
  readonly certSha256: Uint8Array | null;
  /** certSha256 in hex ('' when the leaf did not decode): the key of the device certificate. */
  readonly certHex: string;
  /** The certificate's pack serial (or the serial a refused certificate claims). */
  serial: string | null;
  counter: number | null;
  /** null = a verified frame. */
  verdict: string | null;
  message: string | null;
  /**
   * The verification reply of a verified frame's chunk (shared by the chunk's leaves, so no
   * per-leaf copies): its FIELD_COUNT values (verify-frame.ts FIELDS) start at `at` × FIELD_COUNT
   * in `reply.values`, its payload SHA-256 at `at` × 32 in `reply.hashes` (see frameValue, payloadHash).
   */
  reply: BatchReply | null;
  at: number;
}

/** Field `f` (verify-frame.ts FIELDS index) of a verified leaf; 0 for a leaf without values. */
export function frameValue(j: JudgedLeaf, f: number): number {
  return j.reply?.values[j.at * FIELD_COUNT + f] ?? 0;
}

/** SHA-256 of a verified leaf's signed payload (a view into its chunk's reply); empty for a leaf without one. */
export function payloadHash(j: JudgedLeaf): Uint8Array {
  return j.reply === null ? new Uint8Array(0) : j.reply.hashes.subarray(j.at * 32, j.at * 32 + 32);
}

/** Frames per verification chunk (each spread over the pool's workers). */
export const VERIFY_CHUNK = 1024;

/** The judged leaves of an upload; a leaf's verdict and values are final once `until` covering it resolved. */
export interface Judging {
  readonly leaves: readonly JudgedLeaf[];
  /** Resolves when leaves [0, end) are judged; rejects only if the verify pool failed unexpectedly. */
  until(end: number): Promise<void>;
}

/** Leaf hashes of every entry (the overlap with held leaves is compared by hash, the rest appended). */
export function hashEntries(entries: readonly Uint8Array[]): Uint8Array[] {
  return entries.map((e) => leafHash(e));
}

/**
 * Judges entries [skip, entries.length) of an upload (the others are expected to be held already).
 * `certs` are the upload's certificates, stored here. Returns one JudgedLeaf per judged entry, the
 * signature checks still running (see Judging.until).
 */
export async function judgeLeaves(
  q: Queryable,
  devices: DeviceResolver,
  pool: VerifyPool,
  entries: readonly Uint8Array[],
  hashes: readonly Uint8Array[],
  skip: number,
  certs: readonly Uint8Array[],
): Promise<Judging> {
  const out: JudgedLeaf[] = [];
  const decoded: (LogLeaf | undefined)[] = [];
  const firstSeen = new Map<string, number>();
  for (let k = skip; k < entries.length; k++) {
    const data = entries[k] as Uint8Array;
    const leafHash = hashes[k] as Uint8Array;
    let leaf: LogLeaf;
    try {
      leaf = decodeLeaf(data);
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      decoded.push(undefined);
      out.push({ data, leafHash, receivedAt: null, source: null, certSha256: null, certHex: '', serial: null, counter: null, verdict: e.code, message: e.message, reply: null, at: 0 });
      continue;
    }
    const hex = toHex(leaf.certSha256);
    if (!firstSeen.has(hex)) firstSeen.set(hex, leaf.receivedAt);
    decoded.push(leaf);
    out.push({ data, leafHash, receivedAt: leaf.receivedAt, source: leaf.source, certSha256: leaf.certSha256, certHex: hex, serial: null, counter: null, verdict: null, message: null, reply: null, at: 0 });
  }
  const judged: Judging = { leaves: out, until: () => Promise.resolve() };
  if (firstSeen.size === 0) return judged;
  const uploaded = certs.length > 0 ? await storeCerts(q, certs) : new Map();
  const resolved = await devices.resolve(q, firstSeen.keys(), firstSeen, uploaded);
  const keys: DeviceKeyWire[] = [];
  const keyIndex = new Map<string, number>();
  const frames: Uint8Array[] = [];
  const keyOf: number[] = [];
  const jobOf: number[] = [];
  out.forEach((j, i) => {
    const leaf = decoded[i];
    if (leaf === undefined || j.certSha256 === null) return;
    const hex = j.certHex;
    const r = resolved.get(hex);
    if (r === undefined) return;
    j.serial = r.ok ? r.device.packSerial : r.claimedSerial;
    const bad = devices.checkAt(r, leaf.receivedAt);
    if (bad !== undefined || !r.ok) {
      j.verdict = bad?.code ?? 'CERT_UNKNOWN';
      j.message = bad?.message ?? 'ledger: device certificate not verified';
      return;
    }
    let k = keyIndex.get(hex);
    if (k === undefined) {
      k = keys.length;
      keyIndex.set(hex, k);
      keys.push(r.wire);
    }
    frames.push(leaf.frame);
    keyOf.push(k);
    jobOf.push(i);
  });
  if (frames.length === 0) return judged;
  const chunks: { first: number; done: Promise<void> }[] = [];
  for (let lo = 0; lo < frames.length; lo += VERIFY_CHUNK) {
    const hi = Math.min(frames.length, lo + VERIFY_CHUNK);
    const done = pool.verify({ keys, frames: frames.slice(lo, hi), keyOf: keyOf.slice(lo, hi) }).then((reply) => {
      applyVerdicts(out, jobOf, lo, hi, reply);
    });
    done.catch(() => undefined); // awaited (and reported) by until(); never an unhandled rejection
    chunks.push({ first: jobOf[lo] ?? 0, done });
  }
  return {
    leaves: out,
    until: async (end) => {
      await Promise.all(chunks.filter((c) => c.first < end).map((c) => c.done));
    },
  };
}

/** Verdicts of jobs [lo, hi) (reply index n ↔ job lo + n) onto their leaves. */
function applyVerdicts(out: readonly JudgedLeaf[], jobOf: readonly number[], lo: number, hi: number, reply: BatchReply): void {
  for (let n = 0; n < hi - lo; n++) {
    const j = out[jobOf[lo + n] ?? -1];
    if (j === undefined) continue;
    if (reply.ok[n] === 1) {
      j.reply = reply;
      j.at = n;
      j.counter = reply.values[n * FIELD_COUNT] ?? null;
    } else {
      j.verdict = 'VERIFY_INTERNAL'; // replaced below by the reply's error for that frame
      j.message = 'ledger: no verdict for a frame';
    }
  }
  for (const [n, code, message] of reply.errors) {
    const j = n < hi - lo && reply.ok[n] !== 1 ? out[jobOf[lo + n] ?? -1] : undefined;
    if (j === undefined) continue;
    j.verdict = code;
    j.message = message;
  }
}
