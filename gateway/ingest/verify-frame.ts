/**
 * Verification of one device frame against its device's certified key — the unit of work that
 * verify.ts runs inline on the main thread and verify-worker.ts runs in worker threads. Steps
 * (docs/protocol.md §2.2.6, §2.1.5): parse and verify the COSE_Sign1 with node:crypto against the
 * device key and kid from its verified certificate (verifySign1), decode the payload (decodeFrame),
 * require the payload's serial to be the certificate's pack serial (a key certified for one pack
 * must not vouch for another pack's history), and hash the COSE bytes as received (the dedupe key).
 * Every ProtocolError becomes a verdict with its code; nothing here throws for any input bytes.
 *
 * Key objects are imported once per device certificate and cached (DESIGN.md decision 5): the
 * worker receives raw keys with each batch and keeps the imported KeyObjects in a bounded LRU keyed
 * by the certificate's SHA-256.
 */
import {
  decodeFrame,
  importPublicKey,
  isProtocolError,
  sha256,
  toHex,
  verifySign1,
  type PublicKey,
  type SignatureAlg,
} from '../../protocol/index.js';

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

export type FrameVerdict =
  | { readonly ok: true; readonly counter: number; readonly time: number; readonly sha256: Uint8Array }
  | { readonly ok: false; readonly code: string; readonly detail: string; readonly counter?: number };

/**
 * Verifies `cose` with `key`. Returns ok with the frame counter, device time and SHA-256 of the COSE
 * bytes; or the first failing check's code: COSE_* / CBOR_* (signature, structure), FRAME_* (payload
 * schema), FRAME_SERIAL_MISMATCH (a valid signature over another pack's serial). Never throws for
 * bad input; a non-protocol exception (a bug) is reported as VERIFY_INTERNAL rather than lost.
 */
export function verifyFrame(cose: Uint8Array, key: FrameKey): FrameVerdict {
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
    return { ok: true, counter: frame.counter, time: frame.time, sha256: sha256(cose) };
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
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = req.ends[i] ?? start;
    const cose = req.data.subarray(start, end);
    start = end;
    const key = keys[req.keyOf[i] ?? -1];
    let v: FrameVerdict;
    if (key === undefined) v = { ok: false, code: 'VERIFY_INTERNAL', detail: 'gateway: batch names a key it does not carry' };
    else if (typeof key === 'string') {
      const [code = 'COSE_KEY', detail = ''] = key.split('\n');
      v = { ok: false, code, detail };
    } else v = verifyFrame(cose, key);
    if (v.ok) {
      ok[i] = 1;
      counters[i] = v.counter;
      times[i] = v.time;
      hashes.set(v.sha256, i * 32);
    } else errors.push([i, v.code, v.detail, v.counter ?? -1]);
  }
  return { id: req.id, ok, counters, times, hashes, errors };
}
