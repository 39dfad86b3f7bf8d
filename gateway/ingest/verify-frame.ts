/**
 * Verification of one device frame against its device's certified key — the unit of work that
 * verify.ts runs inline on the main thread and verify-worker.ts runs in worker threads. Steps
 * (docs/protocol.md §2.2.6, §2.1.5): parse and verify the COSE_Sign1 with node:crypto against the
 * device key and kid from its verified certificate (verifySign1), decode the payload (decodeFrame),
 * require the payload's serial to be the certificate's pack serial (a key certified for one pack
 * must not vouch for another pack's history), and hash the signed payload (the dedupe key: dedupe.ts).
 * Every ProtocolError becomes a verdict with its code; nothing here throws for any input bytes.
 *
 * When the caller passes the leaf fields only the gateway knows (receive time, source), the same
 * step also builds the frame's log leaf (protocol encodeLeaf, docs/protocol.md §6) and its RFC 9162
 * leaf hash, SHA-256(0x00 ‖ leaf data): work that would otherwise run per frame on the main thread,
 * which on a gateway with few cores limits ingest (bench/gateway-ingest.ts). The store appends these
 * bytes and hash as they are (gateway/store/appender.ts EncodedLeaf).
 *
 * Key objects are imported once per device certificate and cached (DESIGN.md decision 5): the
 * worker receives raw keys with each batch and keeps the imported KeyObjects in a bounded LRU keyed
 * by the certificate's SHA-256.
 */
import {
  decodeFrame,
  encodeLeaf,
  importPublicKey,
  isProtocolError,
  sha256,
  toHex,
  verifySign1,
  type PublicKey,
  type SignatureAlg,
} from '../../protocol/index.js';
import type { EncodedLeaf } from '../store/appender.js';

/** What verification needs of a device: from its verified certificate chain (TrustStore). */
export interface FrameKey {
  readonly publicKey: PublicKey;
  readonly kid: Uint8Array;
  readonly packSerial: string;
}

/** A device key as plain data, for posting to a worker. */
export interface WireKey {
  readonly certSha256: Uint8Array;
  readonly packSerial: string;
  readonly alg: SignatureAlg;
  readonly raw: Uint8Array;
  readonly kid: Uint8Array;
}

/** The leaf fields the gateway adds to a frame (protocol LogLeaf minus certSha256 and the frame). */
export interface LeafFields {
  readonly receivedAt: number;
  readonly source: string;
}

export type FrameVerdict =
  | { readonly ok: true; readonly counter: number; readonly time: number; readonly sha256: Uint8Array; readonly leaf?: EncodedLeaf }
  | { readonly ok: false; readonly code: string; readonly detail: string; readonly counter?: number };

/**
 * RFC 9162 §2.1.1 leaf hash of `slot`'s bytes after its first, which must be 0x00 (the leaf prefix):
 * SHA-256 of the whole slot, so the leaf is hashed in place without a concatenation.
 */
const leafHashOfSlot = (slot: Uint8Array): Uint8Array => sha256(slot);

/**
 * Verifies `cose` with `key`. Returns ok with the frame counter, device time and SHA-256 of the COSE
 * bytes; or the first failing check's code: COSE_* / CBOR_* (signature, structure), FRAME_* (payload
 * schema), FRAME_SERIAL_MISMATCH (a valid signature over another pack's serial). Never throws for
 * bad input; a non-protocol exception (a bug) is reported as VERIFY_INTERNAL rather than lost.
 */
export function verifyFrame(cose: Uint8Array, key: FrameKey): FrameVerdict {
  return check(cose, key);
}

/**
 * verifyFrame, and for a genuine frame also its log leaf { receivedAt, source, certSha256, frame:
 * cose } encoded and hashed. A leaf that cannot be encoded (a source longer than the leaf allows)
 * is the verdict LEAF_MALFORMED for that frame alone. Never throws for bad input.
 */
export function verifyFrameAndLeaf(cose: Uint8Array, key: FrameKey, certSha256: Uint8Array, fields: LeafFields): FrameVerdict {
  const v = check(cose, key);
  if (!v.ok) return v;
  const data = leafOf(cose, certSha256, fields);
  if (typeof data === 'string') return { ok: false, code: 'LEAF_MALFORMED', detail: data, counter: v.counter };
  const slot = new Uint8Array(data.length + 1); // [0x00 ‖ data]: hashed without a concatenation
  slot.set(data, 1);
  return { ...v, leaf: { data: slot.subarray(1), leafHash: leafHashOfSlot(slot) } };
}

/** encodeLeaf of the frame's leaf, or why it cannot be encoded. */
function leafOf(cose: Uint8Array, certSha256: Uint8Array, fields: LeafFields): Uint8Array | string {
  try {
    return encodeLeaf({ receivedAt: fields.receivedAt, source: fields.source, certSha256, frame: cose });
  } catch (e) {
    if (isProtocolError(e)) return `gateway: the frame's log leaf cannot be encoded: ${e.message}`;
    return `gateway: encoding the log leaf failed unexpectedly: ${e instanceof Error ? e.message : String(e)}`;
  }
}

function check(cose: Uint8Array, key: FrameKey): FrameVerdict {
  try {
    const { payload } = verifySign1(cose, { publicKey: key.publicKey, kid: key.kid });
    const frame = decodeFrame(payload);
    if (frame.serial !== key.packSerial) {
      return {
        ok: false,
        code: 'FRAME_SERIAL_MISMATCH',
        detail: `gateway: frame serial ${JSON.stringify(frame.serial)} is not the certificate's pack serial ${JSON.stringify(key.packSerial)}`,
        counter: frame.counter,
      };
    }
    return { ok: true, counter: frame.counter, time: frame.time, sha256: sha256(payload) };
  } catch (e) {
    if (isProtocolError(e)) return { ok: false, code: e.code, detail: e.message };
    return { ok: false, code: 'VERIFY_INTERNAL', detail: `gateway: verification failed unexpectedly: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Imported device keys by certificate SHA-256, least recently used evicted beyond `size`. */
export class KeyCache {
  private readonly map = new Map<string, FrameKey>();
  imports = 0;

  constructor(private readonly size = 4096) {}

  /** The cached key for `w`, importing it on first use. Throws ProtocolError COSE_KEY for a bad key. */
  get(w: WireKey): FrameKey {
    const id = toHex(w.certSha256);
    const hit = this.map.get(id);
    if (hit !== undefined) {
      this.map.delete(id);
      this.map.set(id, hit);
      return hit;
    }
    const key: FrameKey = { publicKey: importPublicKey(w.alg, w.raw), kid: w.kid, packSerial: w.packSerial };
    this.imports++;
    this.map.set(id, key);
    if (this.map.size > this.size) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
    return key;
  }
}

/** One batch posted to a worker: frames concatenated in `data`, frame i is data[ends[i-1]..ends[i]). */
export interface BatchRequest {
  readonly id: number;
  readonly keys: readonly WireKey[];
  readonly data: Uint8Array;
  readonly ends: Uint32Array;
  /** Index into `keys` per frame. */
  readonly keyOf: Uint32Array;
  /**
   * When present, genuine frames' log leaves are built too: receive time per frame, index into
   * `sources` per frame (NO_LEAF: that frame's leaf is not wanted).
   */
  readonly leaves?: { readonly receivedAt: Float64Array; readonly sources: readonly string[]; readonly sourceOf: Uint32Array };
}

/** BatchRequest.leaves.sourceOf value of a frame whose leaf is not wanted. */
export const NO_LEAF = 0xffff_ffff;

/**
 * Log leaves of a batch: frame i's slot is data[ends[i-1]..ends[i]), empty when the frame failed,
 * else 0x00 ‖ leaf data (the RFC 9162 leaf prefix, so the hash needs no copy); its leaf hash is
 * hashes[32i..32i+32).
 */
export interface BatchLeaves {
  readonly data: Uint8Array<ArrayBuffer>;
  readonly ends: Uint32Array<ArrayBuffer>;
  readonly hashes: Uint8Array<ArrayBuffer>;
}

export interface BatchReply {
  readonly id: number;
  /** 1 = ok per frame. */
  readonly ok: Uint8Array<ArrayBuffer>;
  readonly counters: Float64Array<ArrayBuffer>;
  readonly times: Float64Array<ArrayBuffer>;
  /** 32 bytes per frame (zero for failures). */
  readonly hashes: Uint8Array<ArrayBuffer>;
  /** Per failed frame: [index, code, detail, counter or -1]. */
  readonly errors: readonly (readonly [number, string, string, number])[];
  /** When the request asked for leaves. */
  readonly leaves?: BatchLeaves;
}

/** The buffers of `reply` to transfer (not copy) back to the main thread. */
export function replyTransfer(reply: BatchReply): ArrayBuffer[] {
  const list = [reply.ok.buffer, reply.counters.buffer, reply.times.buffer, reply.hashes.buffer];
  if (reply.leaves) list.push(reply.leaves.data.buffer, reply.leaves.ends.buffer, reply.leaves.hashes.buffer);
  return list;
}

/** Verifies a whole batch (the worker's job; also used by tests). Never throws for bad input. */
export function verifyBatch(req: BatchRequest, cache: KeyCache): BatchReply {
  const n = req.ends.length;
  const ok = new Uint8Array(n);
  const counters = new Float64Array(n);
  const times = new Float64Array(n);
  const hashes = new Uint8Array(n * 32);
  const errors: [number, string, string, number][] = [];
  const keys: (FrameKey | string)[] = req.keys.map((w) => {
    try {
      return cache.get(w);
    } catch (e) {
      return isProtocolError(e) ? `${e.code}\n${e.message}` : 'COSE_KEY\ngateway: device key cannot be imported';
    }
  });
  const wanted = req.leaves;
  const encoded: (Uint8Array | undefined)[] = [];
  let leafBytes = 0;
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = req.ends[i] ?? start;
    const cose = req.data.subarray(start, end);
    start = end;
    const keyAt = req.keyOf[i] ?? -1;
    const key = keys[keyAt];
    let v: FrameVerdict;
    if (key === undefined) v = { ok: false, code: 'VERIFY_INTERNAL', detail: 'gateway: batch names a key it does not carry' };
    else if (typeof key === 'string') {
      const [code = 'COSE_KEY', detail = ''] = key.split('\n');
      v = { ok: false, code, detail };
    } else v = check(cose, key);
    const sourceAt = wanted?.sourceOf[i] ?? NO_LEAF;
    if (v.ok && wanted && sourceAt !== NO_LEAF) {
      const source = wanted.sources[sourceAt];
      const data = source === undefined ? 'gateway: batch names a source it does not carry' : leafOf(cose, (req.keys[keyAt] as WireKey).certSha256, { receivedAt: wanted.receivedAt[i] ?? 0, source });
      if (typeof data === 'string') v = { ok: false, code: source === undefined ? 'VERIFY_INTERNAL' : 'LEAF_MALFORMED', detail: data, counter: v.counter };
      else {
        encoded[i] = data;
        leafBytes += data.length + 1;
      }
    }
    if (v.ok) {
      ok[i] = 1;
      counters[i] = v.counter;
      times[i] = v.time;
      hashes.set(v.sha256, i * 32);
    } else errors.push([i, v.code, v.detail, v.counter ?? -1]);
  }
  if (!wanted) return { id: req.id, ok, counters, times, hashes, errors };
  // One buffer for all leaves, each behind its 0x00 prefix; hashed in place.
  const data = new Uint8Array(leafBytes);
  const ends = new Uint32Array(n);
  const leafHashes = new Uint8Array(n * 32);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const e = encoded[i];
    if (e !== undefined) {
      data.set(e, at + 1);
      leafHashes.set(leafHashOfSlot(data.subarray(at, at + 1 + e.length)), i * 32);
      at += 1 + e.length;
    }
    ends[i] = at;
  }
  return { id: req.id, ok, counters, times, hashes, errors, leaves: { data, ends, hashes: leafHashes } };
}
