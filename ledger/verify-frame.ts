/**
 * Verification of one uploaded frame against its device's certified key — the unit of work the
 * verify pool (verify-pool.ts) runs inline or on worker threads (verify-worker.ts). Steps
 * (docs/protocol.md §2.2, §2.1): verify the COSE_Sign1 with node:crypto against the key and kid of
 * the device certificate the leaf names (protocol verifySign1), decode the payload (decodeFrame),
 * require the payload's pack serial to be the certificate's, and hash the payload (the identity of a
 * frame for exactly-once storage: two signatures over the same payload are the same frame; two
 * different payloads with one (serial, counter) are an equivocation). Never throws for bad bytes:
 * every ProtocolError becomes a verdict with its code.
 *
 * Results travel as compact typed arrays: FIELDS numbers per frame (the display columns the
 * ledger stores) and 32 bytes of payload hash per frame.
 */
import {
  decodeFrame,
  isProtocolError,
  sha256,
  verifySign1,
  type DeviceKey,
  type DeviceKeyCache,
  type DeviceKeyWire,
} from '../protocol/index.js';

/** The stored columns per verified frame, in this order. */
export const FIELDS = ['counter', 'time', 'soc', 'soh', 'voltage', 'current', 'cellMin', 'cellMax', 'tempMin', 'tempMax', 'cycles', 'alarms'] as const;
export const FIELD_COUNT = FIELDS.length;

/** One batch: frames concatenated in `data` (frame i is data[ends[i-1]..ends[i])), each with an index into `keys`. */
export interface BatchRequest {
  readonly id: number;
  readonly keys: readonly DeviceKeyWire[];
  readonly data: Uint8Array;
  readonly ends: Uint32Array;
  readonly keyOf: Uint32Array;
}

export interface BatchReply {
  readonly id: number;
  /** 1 = verified. */
  readonly ok: Uint8Array<ArrayBuffer>;
  /** FIELD_COUNT numbers per frame (zeros for failures). */
  readonly values: Float64Array<ArrayBuffer>;
  /** SHA-256 of the payload, 32 bytes per frame (zeros for failures). */
  readonly hashes: Uint8Array<ArrayBuffer>;
  /** Per failed frame: [index, code, message]. */
  readonly errors: readonly (readonly [number, string, string])[];
}

/** Verifies a whole batch. Never throws for bad input; a non-protocol exception is reported as VERIFY_INTERNAL. */
export function verifyBatch(req: BatchRequest, cache: DeviceKeyCache): BatchReply {
  const n = req.ends.length;
  const ok = new Uint8Array(n);
  const values = new Float64Array(n * FIELD_COUNT);
  const hashes = new Uint8Array(n * 32);
  const errors: [number, string, string][] = [];
  const keys: (DeviceKey | readonly [string, string])[] = req.keys.map((w) => {
    try {
      return cache.get(w);
    } catch (e) {
      return [isProtocolError(e) ? e.code : 'COSE_KEY', `ledger: device key cannot be imported: ${e instanceof Error ? e.message : String(e)}`] as const;
    }
  });
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = req.ends[i] ?? start;
    const cose = req.data.subarray(start, end);
    start = end;
    const key = keys[req.keyOf[i] ?? -1];
    if (key === undefined) {
      errors.push([i, 'VERIFY_INTERNAL', 'ledger: batch names a key it does not carry']);
      continue;
    }
    if (!('publicKey' in key)) {
      errors.push([i, key[0], key[1]]);
      continue;
    }
    try {
      const { payload } = verifySign1(cose, { publicKey: key.publicKey, kid: key.kid });
      const f = decodeFrame(payload);
      if (f.serial !== key.packSerial) {
        errors.push([i, 'FRAME_SERIAL_MISMATCH', `ledger: frame serial ${JSON.stringify(f.serial)} is not the certificate's pack serial ${JSON.stringify(key.packSerial)}`]);
        continue;
      }
      let lo = Infinity;
      let hi = -Infinity;
      for (const c of f.cells) {
        if (c < lo) lo = c;
        if (c > hi) hi = c;
      }
      values.set([f.counter, f.time, f.soc, f.soh, f.voltage, f.current, lo, hi, f.tempMin, f.tempMax, f.cycles, f.alarms], i * FIELD_COUNT);
      hashes.set(sha256(payload), i * 32);
      ok[i] = 1;
    } catch (e) {
      if (isProtocolError(e)) errors.push([i, e.code, e.message]);
      else errors.push([i, 'VERIFY_INTERNAL', `ledger: verification failed unexpectedly: ${e instanceof Error ? e.message : String(e)}`]);
    }
  }
  return { id: req.id, ok, values, hashes, errors };
}
