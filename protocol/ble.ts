/**
 * The BLE transport's wire format (docs/protocol.md §6): the GATT layout (fixed UUIDs), the BLE
 * message (TYPE letter ‖ body ‖ CRC-32 big-endian over letter ‖ body) and its chunking into ATT
 * payloads of MTU − 3 = 20..244 bytes. A chunk is a header byte (bit 7 START, bit 6 END, bits 5..0 a
 * sequence number mod 64) ‖ data; a START chunk adds the total message length as a big-endian uint16.
 * `ChunkJoiner` reassembles raw messages with bounded memory and a caller-supplied clock (tests never
 * sleep); `Reassembler` adds message decoding and yields the same DecodeEvents as the serial decoder.
 * Notifications are unacknowledged and may be lost: a lost, duplicated or reordered chunk drops the
 * whole message (the device resends unacknowledged frames), it is never patched up.
 */
import { concatBytes, crc32, toHex } from './bytes.js';
import { decodeCbor, encodeCbor, type CborValue } from './cbor.js';
import { ProtocolError, type ProtocolErrorCode } from './errors.js';
import { checkAlg, decodeMessage, encodeMessage, MESSAGE_LIMITS, type DecodeEvent, type DeviceKeyAlg, type Message } from './messages.js';
import { Fields } from './wire-schema.js';

/** GATT layout: one primary service with three characteristics. */
export const BLE_GATT = Object.freeze({
  service: '9e1b0001-5c3a-4d71-b0c4-61a2f3e8d5b7',
  /** Notify: device → host chunks. */
  notify: '9e1b0002-5c3a-4d71-b0c4-61a2f3e8d5b7',
  /** Write without response (or write): host → device chunks. */
  write: '9e1b0003-5c3a-4d71-b0c4-61a2f3e8d5b7',
  /** Read: device info, a CBOR map of at most 180 bytes (encodeDeviceInfo). */
  info: '9e1b0004-5c3a-4d71-b0c4-61a2f3e8d5b7',
});

export const BLE_LIMITS = Object.freeze({
  /** Usable ATT payload = ATT_MTU − 3, ATT_MTU 23..247. */
  minChunk: 20,
  maxChunk: 244,
  /** A BLE message: letter (1) + body + CRC (4). */
  minMessage: 5,
  maxMessage: 4096,
  defaultTimeoutMs: 2000,
  maxDeviceInfo: 180,
});

const START = 0x80;
const END = 0x40;
const SEQ = 0x3f;

/** Hex preview of at most 32 bytes, for error events. */
function previewHex(b: Uint8Array): string {
  return b.length > 32 ? `${toHex(b.subarray(0, 32))}...` : toHex(b);
}

/** letter ‖ body ‖ CRC-32(letter ‖ body) big-endian. Throws as encodeMessage. */
export function encodeBleMessage(msg: Message): Uint8Array {
  const { type, body } = encodeMessage(msg);
  const out = new Uint8Array(body.length + 5);
  out[0] = type.charCodeAt(0);
  out.set(body, 1);
  new DataView(out.buffer).setUint32(body.length + 1, crc32(out, 0, body.length + 1));
  return out;
}

/**
 * Decodes a reassembled BLE message. Throws BLE_LENGTH (shorter than 5 or longer than 4096 bytes),
 * BLE_CRC, then as decodeMessage (MSG_TYPE, MSG_TOO_LARGE, MSG_MALFORMED, CBOR_*).
 */
export function decodeBleMessage(bytes: Uint8Array): Message {
  const n = bytes.length;
  if (n < BLE_LIMITS.minMessage || n > BLE_LIMITS.maxMessage) {
    throw new ProtocolError('BLE_LENGTH', `ble: message of ${n} bytes, expected ${BLE_LIMITS.minMessage} to ${BLE_LIMITS.maxMessage}`);
  }
  const declared = new DataView(bytes.buffer, bytes.byteOffset, n).getUint32(n - 4);
  if (declared !== crc32(bytes, 0, n - 4)) throw new ProtocolError('BLE_CRC', 'ble: message CRC-32 mismatch');
  return decodeMessage(String.fromCharCode(bytes[0] ?? 0), bytes.subarray(1, n - 4));
}

/**
 * Splits raw message bytes into chunks of at most `chunkSize` bytes (ATT_MTU − 3). Throws BLE_CHUNK
 * for a chunkSize outside 20..244 or not an integer, BLE_LENGTH for 0 or more than 4096 bytes.
 */
export function chunkBytes(bytes: Uint8Array, chunkSize: number): Uint8Array[] {
  if (!Number.isInteger(chunkSize) || chunkSize < BLE_LIMITS.minChunk || chunkSize > BLE_LIMITS.maxChunk) {
    throw new ProtocolError('BLE_CHUNK', `ble: chunk size ${chunkSize}, expected an integer from 20 to 244 (ATT_MTU - 3)`);
  }
  const len = bytes.length;
  if (len < 1 || len > BLE_LIMITS.maxMessage) throw new ProtocolError('BLE_LENGTH', `ble: message of ${len} bytes, expected 1 to 4096`);
  let off = Math.min(len, chunkSize - 3);
  const chunks = [concatBytes(Uint8Array.of(START | (off === len ? END : 0), len >>> 8, len & 0xff), bytes.subarray(0, off))];
  for (let seq = 1; off < len; seq++) {
    const n = Math.min(len - off, chunkSize - 1);
    chunks.push(concatBytes(Uint8Array.of((seq & SEQ) | (off + n === len ? END : 0)), bytes.subarray(off, off + n)));
    off += n;
  }
  return chunks;
}

/** Chunks for one message (encodeBleMessage then chunkBytes). Throws as both. */
export function chunkMessage(msg: Message, chunkSize: number): Uint8Array[] {
  return chunkBytes(encodeBleMessage(msg), chunkSize);
}

export interface ReassemblerOptions {
  /** Largest accepted message, 5..4096 (default 4096). */
  maxMessage?: number;
  /** Longest silence between two chunks of one message, in ms (default 2000). */
  timeoutMs?: number;
}

export interface ReassemblerStats {
  chunks: number;
  /** Messages reassembled with their declared length. */
  joined: number;
  /** Messages decoded (Reassembler only; a bare ChunkJoiner leaves it 0). */
  messages: number;
  /** Error events by code. */
  errors: Partial<Record<ProtocolErrorCode, number>>;
  /** Continuation chunks of an already dropped message, discarded without an event. */
  droppedChunks: number;
}

export type JoinEvent = { kind: 'bytes'; bytes: Uint8Array } | { kind: 'error'; error: ProtocolError; raw?: string };

interface Assembling {
  buf: Uint8Array;
  got: number;
  nextSeq: number;
  lastAt: number;
}

/**
 * Raw chunk reassembly. Never throws for any chunk and holds at most one message buffer, allocated
 * at the declared length (≤ maxMessage). After an error inside a message, or a continuation chunk
 * with no message in progress, further continuation chunks are dropped silently (counted in
 * `droppedChunks`) until the next START: one event per broken message, not one per chunk.
 */
export class ChunkJoiner {
  readonly stats: ReassemblerStats = { chunks: 0, joined: 0, messages: 0, errors: {}, droppedChunks: 0 };
  private readonly maxMessage: number;
  private readonly timeoutMs: number;
  private state: 'idle' | 'skip' | Assembling = 'idle';

  /** Throws BLE_LENGTH for maxMessage outside 5..4096, BLE_TIMEOUT for a timeoutMs that is not positive. */
  constructor(options: ReassemblerOptions = {}) {
    this.maxMessage = options.maxMessage ?? BLE_LIMITS.maxMessage;
    this.timeoutMs = options.timeoutMs ?? BLE_LIMITS.defaultTimeoutMs;
    if (!Number.isInteger(this.maxMessage) || this.maxMessage < BLE_LIMITS.minMessage || this.maxMessage > BLE_LIMITS.maxMessage) {
      throw new ProtocolError('BLE_LENGTH', `ble: maxMessage ${this.maxMessage}, expected an integer from 5 to 4096`);
    }
    if (!(this.timeoutMs > 0 && this.timeoutMs < Infinity)) throw new ProtocolError('BLE_TIMEOUT', `ble: timeoutMs ${this.timeoutMs}, expected > 0`);
  }

  /** Received and declared length of the message in progress, or null. */
  get pending(): { received: number; declared: number } | null {
    return typeof this.state === 'object' ? { received: this.state.got, declared: this.state.buf.length } : null;
  }

  /** Feeds one chunk (one notification or write) received at `nowMs` (any monotonic clock). */
  push(chunk: Uint8Array, nowMs: number): JoinEvent[] {
    const events = this.tick(nowMs);
    this.stats.chunks += 1;
    const h = chunk[0];
    if (h === undefined) return this.fail(events, 'BLE_CHUNK', 'empty chunk', chunk, 'keep');
    const seq = h & SEQ;
    const isEnd = (h & END) !== 0;
    const s = this.state;
    if (h & START) {
      if (seq !== 0) return this.fail(events, 'BLE_CHUNK', `START chunk with sequence ${seq}, expected 0`, chunk, 'keep');
      if (chunk.length < 4) return this.fail(events, 'BLE_CHUNK', `START chunk of ${chunk.length} bytes, expected at least 4`, chunk, 'keep');
      if (typeof s === 'object') {
        this.fail(events, 'BLE_SEQUENCE', `new START after ${s.got} of ${s.buf.length} bytes: previous message dropped`, chunk, 'idle');
      }
      const declared = ((chunk[1] ?? 0) << 8) | (chunk[2] ?? 0);
      if (declared < 1 || declared > this.maxMessage) {
        return this.fail(events, 'BLE_LENGTH', `declared length ${declared}, expected 1 to ${this.maxMessage}`, chunk, 'skip');
      }
      this.state = { buf: new Uint8Array(declared), got: 0, nextSeq: 0, lastAt: nowMs };
    } else if (s === 'idle') {
      // One event per orphaned message, not per chunk: the rest of it is skipped up to the next START.
      return this.fail(events, 'BLE_CHUNK', 'continuation chunk with no message in progress', chunk, 'skip');
    } else if (s === 'skip') {
      this.stats.droppedChunks += 1;
      return events;
    } else if (chunk.length < 2) {
      return this.fail(events, 'BLE_CHUNK', 'continuation chunk without data', chunk, 'keep');
    } else if (seq !== s.nextSeq) {
      return this.fail(events, 'BLE_SEQUENCE', `chunk sequence ${seq}, expected ${s.nextSeq} (lost, duplicated or reordered)`, chunk, 'skip');
    }
    const m = this.state;
    if (typeof m !== 'object') return events; // unreachable: every other path returned above
    const data = chunk.subarray(h & START ? 3 : 1);
    if (m.got + data.length > m.buf.length) {
      return this.fail(events, 'BLE_LENGTH', `${m.got + data.length} bytes received, more than the declared ${m.buf.length}`, chunk, 'skip');
    }
    m.buf.set(data, m.got);
    m.got += data.length;
    m.nextSeq = (m.nextSeq + 1) & SEQ;
    m.lastAt = nowMs;
    if (isEnd !== (m.got === m.buf.length)) {
      const why = isEnd ? `END after ${m.got} of ${m.buf.length} bytes` : `declared length ${m.buf.length} reached without END`;
      return this.fail(events, 'BLE_LENGTH', why, chunk, isEnd ? 'idle' : 'skip');
    }
    if (isEnd) {
      this.state = 'idle';
      this.stats.joined += 1;
      events.push({ kind: 'bytes', bytes: m.buf });
    }
    return events;
  }

  /** Drops a message whose last chunk is older than timeoutMs (BLE_TIMEOUT). Call it periodically. */
  tick(nowMs: number): JoinEvent[] {
    const s = this.state;
    if (typeof s !== 'object' || !(nowMs - s.lastAt > this.timeoutMs)) return [];
    return this.fail([], 'BLE_TIMEOUT', `no chunk for ${nowMs - s.lastAt} ms after ${s.got} of ${s.buf.length} bytes`, s.buf.subarray(0, s.got), 'skip');
  }

  /**
   * Call on disconnect. A message in progress is dropped with one BLE_TIMEOUT event (a disconnect
   * is the limiting case of silence); the joiner is then idle, ready for a new connection.
   */
  reset(): JoinEvent[] {
    const s = this.state;
    const events: JoinEvent[] = [];
    if (typeof s === 'object') this.fail(events, 'BLE_TIMEOUT', `connection reset after ${s.got} of ${s.buf.length} bytes`, s.buf.subarray(0, s.got), 'idle');
    this.state = 'idle';
    return events;
  }

  /**
   * Records an error event and moves to `next`: 'skip' drops the message in progress and discards its
   * remaining chunks until a START, 'idle' drops it and expects a START, 'keep' ignores the bad chunk.
   */
  private fail(events: JoinEvent[], code: ProtocolErrorCode, why: string, raw: Uint8Array, next: 'skip' | 'idle' | 'keep'): JoinEvent[] {
    this.stats.errors[code] = (this.stats.errors[code] ?? 0) + 1;
    events.push({ kind: 'error', error: new ProtocolError(code, `ble: ${why}`), raw: previewHex(raw) });
    if (next !== 'keep') this.state = next;
    return events;
  }
}

/** ChunkJoiner plus decodeBleMessage: chunks in, DecodeEvents out. Never throws for any chunk. */
export class Reassembler {
  private readonly joiner: ChunkJoiner;

  /** Throws as ChunkJoiner's constructor. */
  constructor(options: ReassemblerOptions = {}) {
    this.joiner = new ChunkJoiner(options);
  }

  /** Counters: `messages` counts decoded messages; decode failures are counted under `errors`. */
  get stats(): ReassemblerStats {
    return this.joiner.stats;
  }

  get pending(): { received: number; declared: number } | null {
    return this.joiner.pending;
  }

  push(chunk: Uint8Array, nowMs: number): DecodeEvent[] {
    return this.decode(this.joiner.push(chunk, nowMs));
  }

  tick(nowMs: number): DecodeEvent[] {
    return this.decode(this.joiner.tick(nowMs));
  }

  /** See ChunkJoiner.reset: one BLE_TIMEOUT event if a message was in progress. */
  reset(): DecodeEvent[] {
    return this.decode(this.joiner.reset());
  }

  private decode(events: JoinEvent[]): DecodeEvent[] {
    return events.map((e): DecodeEvent => {
      if (e.kind === 'error') return e;
      const stats = this.joiner.stats;
      try {
        const message = decodeBleMessage(e.bytes);
        stats.messages += 1;
        return { kind: 'message', message };
      } catch (err) {
        // Only ProtocolError is expected; anything else is a bug in protocol/ and must crash loudly.
        if (!(err instanceof ProtocolError)) throw err;
        stats.errors[err.code] = (stats.errors[err.code] ?? 0) + 1;
        return { kind: 'error', error: err, raw: previewHex(e.bytes) };
      }
    });
  }
}

/** The device info characteristic (BLE_GATT.info), readable before connecting the chunk streams. */
export interface DeviceInfo {
  serial: string;
  model: string;
  firmware: string;
  alg: DeviceKeyAlg | null;
}

const INFO_FIELDS = { 1: 'pack serial', 2: 'model', 3: 'firmware version', 4: 'COSE alg' };

/** Encodes (and validates) device info. Throws as decodeDeviceInfo, and CBOR_ENCODE. */
export function encodeDeviceInfo(info: DeviceInfo): Uint8Array {
  const bytes = encodeCbor(
    new Map<number, CborValue>([
      [1, info.serial],
      [2, info.model],
      [3, info.firmware],
      [4, info.alg],
    ]),
  );
  decodeDeviceInfo(bytes);
  return bytes;
}

/** Throws MSG_TOO_LARGE (over 180 bytes), CBOR_*, MSG_MALFORMED naming the field. */
export function decodeDeviceInfo(bytes: Uint8Array): DeviceInfo {
  if (bytes.length > BLE_LIMITS.maxDeviceInfo) {
    throw new ProtocolError('MSG_TOO_LARGE', `ble: device info of ${bytes.length} bytes exceeds ${BLE_LIMITS.maxDeviceInfo}`);
  }
  const f = Fields.of(decodeCbor(bytes, { maxDepth: 2 }), 'device info', INFO_FIELDS);
  return {
    serial: f.text(1, MESSAGE_LIMITS.maxSerial),
    model: f.text(2, MESSAGE_LIMITS.maxModel),
    firmware: f.text(3, MESSAGE_LIMITS.maxFirmware),
    alg: checkAlg(f.get(4), f.label(4)),
  };
}
