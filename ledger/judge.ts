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
 */
import { decodeLeaf, isProtocolError, leafHash, toHex, type LogLeaf } from '../protocol/index.js';
import { storeCerts, type DeviceResolver } from './certs.js';
import type { Queryable } from './db/driver.js';
import { FIELD_COUNT, type WireKey } from './verify-frame.js';
import type { VerifyPool } from './verify-pool.js';

/** The judged leaf: what the leaves table stores, and the frame columns when it verified. */
export interface JudgedLeaf {
  readonly data: Uint8Array;
  readonly leafHash: Uint8Array;
  readonly receivedAt: number | null;
  readonly source: string | null;
  readonly certSha256: Uint8Array | null;
  /** The certificate's pack serial (or the serial a refused certificate claims). */
  serial: string | null;
  counter: number | null;
  /** null = a verified frame. */
  verdict: string | null;
  message: string | null;
  /** FIELD_COUNT values (verify-frame.ts FIELDS) of a verified frame. */
  values: Float64Array | null;
  /** SHA-256 of the signed payload of a verified frame. */
  payloadHash: Uint8Array | null;
}

/** Leaf hashes of every entry (the overlap with held leaves is compared by hash, the rest appended). */
export function hashEntries(entries: readonly Uint8Array[]): Uint8Array[] {
  return entries.map((e) => leafHash(e));
}

/**
 * Judges entries [skip, entries.length) of an upload (the others are expected to be held already).
 * `certs` are the upload's certificates, stored here. Returns one JudgedLeaf per judged entry.
 */
export async function judgeLeaves(
  q: Queryable,
  devices: DeviceResolver,
  pool: VerifyPool,
  entries: readonly Uint8Array[],
  hashes: readonly Uint8Array[],
  skip: number,
  certs: readonly Uint8Array[],
): Promise<JudgedLeaf[]> {
  const out: JudgedLeaf[] = [];
  const decoded: (LogLeaf | undefined)[] = [];
  const firstSeen = new Map<string, number>();
  for (let k = skip; k < entries.length; k++) {
    const data = entries[k] as Uint8Array;
    const base = { data, leafHash: hashes[k] as Uint8Array, values: null, payloadHash: null };
    try {
      const leaf = decodeLeaf(data);
      const hex = toHex(leaf.certSha256);
      if (!firstSeen.has(hex)) firstSeen.set(hex, leaf.receivedAt);
      decoded.push(leaf);
      out.push({ ...base, receivedAt: leaf.receivedAt, source: leaf.source, certSha256: leaf.certSha256, serial: null, counter: null, verdict: null, message: null });
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      decoded.push(undefined);
      out.push({ ...base, receivedAt: null, source: null, certSha256: null, serial: null, counter: null, verdict: e.code, message: e.message });
    }
  }
  if (firstSeen.size === 0) return out;
  const uploaded = certs.length > 0 ? await storeCerts(q, certs) : new Map();
  const resolved = await devices.resolve(q, firstSeen.keys(), firstSeen, uploaded);
  const keys: WireKey[] = [];
  const keyIndex = new Map<string, number>();
  const frames: Uint8Array[] = [];
  const keyOf: number[] = [];
  const jobOf: number[] = [];
  out.forEach((j, i) => {
    const leaf = decoded[i];
    if (leaf === undefined || j.certSha256 === null) return;
    const hex = toHex(j.certSha256);
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
  if (frames.length === 0) return out;
  const reply = await pool.verify({ keys, frames, keyOf });
  const failed = new Map(reply.errors.map(([i, code, message]) => [i, { code, message }]));
  jobOf.forEach((i, n) => {
    const j = out[i] as JudgedLeaf;
    if (reply.ok[n] === 1) {
      j.values = reply.values.slice(n * FIELD_COUNT, (n + 1) * FIELD_COUNT);
      j.payloadHash = reply.hashes.slice(n * 32, n * 32 + 32);
      j.counter = j.values[0] ?? null;
    } else {
      const f = failed.get(n) ?? { code: 'VERIFY_INTERNAL', message: 'ledger: no verdict for a frame' };
      j.verdict = f.code;
      j.message = f.message;
    }
  });
  return out;
}
