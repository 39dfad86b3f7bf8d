/**
 * The on-flash format of the resend buffer: an append-only journal of frame records and free
 * records, each with its own length and CRC-32, so a power cut in the middle of an append leaves a
 * torn tail that the next boot detects and cuts off instead of misreading (docs/hw-sim.md §3
 * "Ring journal"). Appending is the only write in normal operation: a frame costs one record, an
 * ack one record per freed range, never a rewrite. flash.ts compacts the file (rewrite the live
 * frames to a temporary file, fsync, rename) when it has grown well past what is live.
 *
 * Layout (big-endian):
 *   header  = "PCRJ" 0x01 0x00 0x00 0x00                      (8 bytes)
 *   record  = type u8 ‖ len u32 ‖ payload[len] ‖ crc32 u32     (crc over type ‖ len ‖ payload)
 *   FRAME 1 = counter u64 ‖ producedAt u64 ‖ COSE_Sign1 bytes  (len 17..784)
 *   FREE  2 = lo u64 ‖ hi u64                                  (len 16; inclusive counter range)
 * u64 values stay below 2^53 (protocol counters and times are safe integers).
 */
import { COSE_MAX_BYTES, crc32 } from '../protocol/index.js';

export const JOURNAL_HEADER = Uint8Array.of(0x50, 0x43, 0x52, 0x4a, 0x01, 0x00, 0x00, 0x00);

const TYPE_FRAME = 1;
const TYPE_FREE = 2;
/** type + len before the payload, crc after it. */
const RECORD_OVERHEAD = 1 + 4 + 4;
const FRAME_FIXED = 16;
const FREE_LEN = 16;

export type JournalRecord =
  | { readonly kind: 'frame'; readonly counter: number; readonly producedAt: number; readonly cose: Uint8Array }
  | { readonly kind: 'free'; readonly lo: number; readonly hi: number };

export interface JournalScan {
  readonly records: JournalRecord[];
  /** Bytes from the start of the file up to the end of the last intact record. */
  readonly validBytes: number;
  /** Bytes after that: a torn or damaged tail, to be cut off. */
  readonly tornBytes: number;
  /** Why the scan stopped early, for the boot log; undefined when the file ended cleanly. */
  readonly stop?: string;
}

function putU64(view: DataView, at: number, v: number): void {
  view.setUint32(at, Math.floor(v / 0x1_0000_0000));
  view.setUint32(at + 4, v >>> 0);
}

function getU64(view: DataView, at: number): number {
  return view.getUint32(at) * 0x1_0000_0000 + view.getUint32(at + 4);
}

function record(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(RECORD_OVERHEAD + payload.length);
  const view = new DataView(out.buffer);
  out[0] = type;
  view.setUint32(1, payload.length);
  out.set(payload, 5);
  view.setUint32(5 + payload.length, crc32(out, 0, 5 + payload.length));
  return out;
}

/** A FRAME record. `counter` and `producedAt` must be safe unsigned integers. */
export function frameRecord(counter: number, producedAt: number, cose: Uint8Array): Uint8Array {
  const payload = new Uint8Array(FRAME_FIXED + cose.length);
  const view = new DataView(payload.buffer);
  putU64(view, 0, counter);
  putU64(view, 8, producedAt);
  payload.set(cose, FRAME_FIXED);
  return record(TYPE_FRAME, payload);
}

/** A FREE record for the inclusive range [lo, hi]. */
export function freeRecord(lo: number, hi: number): Uint8Array {
  const payload = new Uint8Array(FREE_LEN);
  const view = new DataView(payload.buffer);
  putU64(view, 0, lo);
  putU64(view, 8, hi);
  return record(TYPE_FREE, payload);
}

/**
 * Reads a journal file's bytes. Never throws for damage after the header: the scan stops at the
 * first record that is short, has an unknown type, an impossible length or a wrong CRC, and
 * reports the rest as torn. A file shorter than the header that is a prefix of it (a power cut
 * while the file was being created) scans as empty with everything torn. Returns undefined for a
 * file that is not a journal at all (wrong header): the caller refuses it (FLASH_CORRUPT).
 */
export function scanJournal(bytes: Uint8Array): JournalScan | undefined {
  const headerLen = Math.min(bytes.length, JOURNAL_HEADER.length);
  for (let i = 0; i < headerLen; i++) if (bytes[i] !== JOURNAL_HEADER[i]) return undefined;
  if (bytes.length < JOURNAL_HEADER.length) return { records: [], validBytes: 0, tornBytes: bytes.length, stop: 'header cut short' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: JournalRecord[] = [];
  let at = JOURNAL_HEADER.length;
  let stop: string | undefined;
  while (at < bytes.length) {
    if (bytes.length - at < RECORD_OVERHEAD) {
      stop = `record header cut short at byte ${at}`;
      break;
    }
    const type = bytes[at] ?? 0;
    const len = view.getUint32(at + 1);
    const maxLen = type === TYPE_FRAME ? FRAME_FIXED + COSE_MAX_BYTES : type === TYPE_FREE ? FREE_LEN : -1;
    const minLen = type === TYPE_FRAME ? FRAME_FIXED + 1 : FREE_LEN;
    if (maxLen < 0 || len < minLen || len > maxLen) {
      stop = `bad record type ${type} or length ${len} at byte ${at}`;
      break;
    }
    const end = at + 5 + len + 4;
    if (end > bytes.length) {
      stop = `record cut short at byte ${at}`;
      break;
    }
    if (view.getUint32(at + 5 + len) !== crc32(bytes, at, at + 5 + len)) {
      stop = `record CRC mismatch at byte ${at}`;
      break;
    }
    const p = at + 5;
    if (type === TYPE_FRAME) {
      records.push({ kind: 'frame', counter: getU64(view, p), producedAt: getU64(view, p + 8), cose: bytes.slice(p + FRAME_FIXED, p + len) });
    } else {
      records.push({ kind: 'free', lo: getU64(view, p), hi: getU64(view, p + 8) });
    }
    at = end;
  }
  const result = { records, validBytes: at, tornBytes: bytes.length - at };
  return stop === undefined ? result : { ...result, stop };
}
