/**
 * Verification of one device frame against its device's certified key — the unit of work that
 * verify.ts runs inline on the main thread and verify-worker.ts runs in worker threads. Steps
 * (docs/protocol.md §2.2.6, §2.1.5): parse and verify the COSE_Sign1 with node:crypto against the
 * device key and kid from its verified certificate (verifySign1), decode the payload (decodeFrame),
 * require the payload's serial to be the certificate's pack serial (a key certified for one pack
 * must not vouch for another pack's history), and return the signed payload as the frame's identity
 * (the dedupe key: dedupe.ts).
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
 * by the certificate's SHA-256 (protocol DeviceKeyCache, shared with the ledger's workers).
 */
import {
  checkLeaf,
  decodeFrame,
  isProtocolError,
  leafSize,
  sha256,
  utf8,
  verifySign1,
  writeLeaf,
  type DeviceKey,
  type DeviceKeyCache,
  type DeviceKeyWire,
} from '../../protocol/index.js';
import type { EncodedLeaf } from '../store/appender.js';
import { identityOf, type FrameIdentity } from './dedupe.js';

/** The leaf fields the gateway adds to a frame (protocol LogLeaf minus certSha256 and the frame). */
export interface LeafFields {
  readonly receivedAt: number;
  readonly source: string;
}

export type FrameVerdict =
  | { readonly ok: true; readonly counter: number; readonly time: number; readonly identity: FrameIdentity; readonly leaf?: EncodedLeaf }
  | { readonly ok: false; readonly code: string; readonly detail: string; readonly counter?: number };

type Failure = Extract<FrameVerdict, { ok: false }>;
/** A genuine frame: its counter and device time, and its signed payload (a view into the COSE bytes). */
type Checked = { readonly ok: true; readonly counter: number; readonly time: number; readonly payload: Uint8Array };

/**
 * Verifies `cose` with `key`. Returns ok with the frame counter, device time and the frame's
 * identity (its signed payload, dedupe.ts FrameIdentity); or the first failing check's code: COSE_* / CBOR_*
 * (signature, structure), FRAME_* (payload schema), FRAME_SERIAL_MISMATCH (a valid signature over
 * another pack's serial). Never throws for bad input; a non-protocol exception (a bug) is reported
 * as VERIFY_INTERNAL rather than lost.
 */
export function verifyFrame(cose: Uint8Array, key: DeviceKey): FrameVerdict {
  const v = check(cose, key);
  return v.ok ? { ok: true, counter: v.counter, time: v.time, identity: identityOf(v.payload) } : v;
}

/** UTF-8 bytes of the sources the inline path has encoded (one per port or device; emptied beyond 1024). */
const sourceCache = new Map<string, Uint8Array>();

function sourceBytesOf(source: string): Uint8Array {
  let b = sourceCache.get(source);
  if (b === undefined) {
    if (sourceCache.size >= 1024) sourceCache.clear();
    b = utf8(source);
    sourceCache.set(source, b);
  }
  return b;
}

/**
 * verifyFrame, and for a genuine frame also its log leaf { receivedAt, source, certSha256, frame:
 * cose } encoded and hashed. A leaf that cannot be encoded (a source longer than the leaf allows)
 * is the verdict LEAF_MALFORMED for that frame alone. Never throws for bad input.
 */
export function verifyFrameAndLeaf(cose: Uint8Array, key: DeviceKey, certSha256: Uint8Array, fields: LeafFields): FrameVerdict {
  const v = check(cose, key);
  if (!v.ok) return v;
  const bad = leafProblem(cose, certSha256, fields.receivedAt, fields.source);
  if (bad !== undefined) return { ok: false, code: 'LEAF_MALFORMED', detail: bad, counter: v.counter };
  const source = sourceBytesOf(fields.source);
  // [0x00 ‖ data]: the RFC 9162 leaf prefix in front, so the leaf is hashed without a concatenation.
  const slot = new Uint8Array(1 + leafSize(fields.receivedAt, source.length, cose.length));
  writeLeaf(slot, 1, fields.receivedAt, source, certSha256, cose);
  return { ok: true, counter: v.counter, time: v.time, identity: identityOf(v.payload), leaf: { data: slot.subarray(1), leafHash: sha256(slot) } };
}

/** Why the frame's log leaf cannot be encoded, or undefined when it can. */
function leafProblem(cose: Uint8Array, certSha256: Uint8Array, receivedAt: number, source: string): string | undefined {
  try {
    checkLeaf(receivedAt, source, certSha256, cose);
    return undefined;
  } catch (e) {
    if (isProtocolError(e)) return `gateway: the frame's log leaf cannot be encoded: ${e.message}`;
    return `gateway: checking the log leaf failed unexpectedly: ${e instanceof Error ? e.message : String(e)}`;
  }
}

function check(cose: Uint8Array, key: DeviceKey): Checked | Failure {
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
    return { ok: true, counter: frame.counter, time: frame.time, payload };
  } catch (e) {
    if (isProtocolError(e)) return { ok: false, code: e.code, detail: e.message };
    return { ok: false, code: 'VERIFY_INTERNAL', detail: `gateway: verification failed unexpectedly: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** One batch posted to a worker: frames concatenated in `data`, frame i is data[ends[i-1]..ends[i]). */
export interface BatchRequest {
  readonly id: number;
  readonly keys: readonly DeviceKeyWire[];
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
  /** The genuine frames' identities (signed payloads), concatenated: frame i's is ids[idEnds[i-1]..idEnds[i]), empty for failures. */
  readonly ids: Uint8Array<ArrayBuffer>;
  readonly idEnds: Uint32Array<ArrayBuffer>;
  /** Per failed frame: [index, code, detail, counter or -1]. */
  readonly errors: readonly (readonly [number, string, string, number])[];
  /** When the request asked for leaves. */
  readonly leaves?: BatchLeaves;
}

/** The buffers of `reply` to transfer (not copy) back to the main thread. */
export function replyTransfer(reply: BatchReply): ArrayBuffer[] {
  const list = [reply.ok.buffer, reply.counters.buffer, reply.times.buffer, reply.ids.buffer, reply.idEnds.buffer];
  if (reply.leaves) list.push(reply.leaves.data.buffer, reply.leaves.ends.buffer, reply.leaves.hashes.buffer);
  return list;
}

/**
 * Verifies a whole batch (the worker's job; also used by tests). Never throws for bad input. Leaves
 * are written straight into the reply's one buffer (sized for the worst case: every frame genuine),
 * each source encoded once per batch, and hashed in place.
 */
export function verifyBatch(req: BatchRequest, cache: DeviceKeyCache): BatchReply {
  const n = req.ends.length;
  const ok = new Uint8Array(n);
  const counters = new Float64Array(n);
  const times = new Float64Array(n);
  const idEnds = new Uint32Array(n);
  const ids = new Uint8Array(req.data.length);
  const errors: [number, string, string, number][] = [];
  const keys: (DeviceKey | string)[] = req.keys.map((w) => {
    try {
      return cache.get(w);
    } catch (e) {
      return isProtocolError(e) ? `${e.code}\n${e.message}` : 'COSE_KEY\ngateway: device key cannot be imported';
    }
  });
  const wanted = req.leaves;
  const sourceBytes = wanted === undefined ? [] : wanted.sources.map(utf8);
  let leafBytes = 0;
  if (wanted) {
    let from = 0;
    for (let i = 0; i < n; i++) {
      const to = req.ends[i] ?? from;
      const src = sourceBytes[wanted.sourceOf[i] ?? NO_LEAF];
      // A malformed receivedAt (refused below, its frame gets no leaf) is sized as 0 so it cannot break the arithmetic.
      const r = wanted.receivedAt[i] ?? 0;
      if (src !== undefined) leafBytes += 1 + leafSize(Number.isSafeInteger(r) && r >= 0 ? r : 0, src.length, to - from);
      from = to;
    }
  }
  const data = new Uint8Array(leafBytes);
  const ends = new Uint32Array(wanted ? n : 0);
  const leafHashes = new Uint8Array(wanted ? n * 32 : 0);
  let at = 0;
  let idAt = 0;
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = req.ends[i] ?? start;
    const cose = req.data.subarray(start, end);
    start = end;
    const keyAt = req.keyOf[i] ?? -1;
    const key = keys[keyAt];
    let v: Checked | Failure;
    if (key === undefined) v = { ok: false, code: 'VERIFY_INTERNAL', detail: 'gateway: batch names a key it does not carry' };
    else if (typeof key === 'string') {
      const [code = 'COSE_KEY', detail = ''] = key.split('\n');
      v = { ok: false, code, detail };
    } else v = check(cose, key);
    const sourceAt = wanted?.sourceOf[i] ?? NO_LEAF;
    if (v.ok && wanted && sourceAt !== NO_LEAF) {
      const source = wanted.sources[sourceAt];
      const src = sourceBytes[sourceAt];
      const receivedAt = wanted.receivedAt[i] ?? 0;
      const certSha256 = (req.keys[keyAt] as DeviceKeyWire).certSha256;
      const bad = source === undefined || src === undefined ? 'gateway: batch names a source it does not carry' : leafProblem(cose, certSha256, receivedAt, source);
      if (bad !== undefined) v = { ok: false, code: source === undefined ? 'VERIFY_INTERNAL' : 'LEAF_MALFORMED', detail: bad, counter: v.counter };
      else if (src !== undefined) {
        data[at] = 0x00; // the RFC 9162 leaf prefix: the slot is hashed in place
        const leafEnd = writeLeaf(data, at + 1, receivedAt, src, certSha256, cose);
        leafHashes.set(sha256(data.subarray(at, leafEnd)), i * 32);
        at = leafEnd;
      }
    }
    if (wanted) ends[i] = at;
    if (v.ok) {
      ok[i] = 1;
      counters[i] = v.counter;
      times[i] = v.time;
      ids.set(v.payload, idAt);
      idAt += v.payload.length;
    } else errors.push([i, v.code, v.detail, v.counter ?? -1]);
    idEnds[i] = idAt;
  }
  const reply = { id: req.id, ok, counters, times, ids, idEnds, errors };
  return wanted ? { ...reply, leaves: { data, ends, hashes: leafHashes } } : reply;
}
