/**
 * The damage each wire fault does to bytes (docs/hw-sim.md §5), as pure functions of the encoded
 * wire units and a seeded Random, so a fault is reproducible from the fleet seed and unit-testable
 * without a pty. One codec per transport, because "a broken line" and "a broken message" look
 * different on each: a serial unit is one line (docs/protocol.md §5), a BLE unit one chunk (§6.3).
 * Every function is chosen so that a correct decoder reports exactly the documented code: serial
 * corruption stays inside the base64url or hex alphabet, so the CRC (checked first, §5.2) is what
 * fails — LINE_CRC, never LINE_ENCODING; BLE corruption changes a data byte (BLE_CRC: CRC-32 detects
 * every single-byte change) or a continuation's sequence number (BLE_SEQUENCE). Forgeries keep the
 * transport CRC valid — the transport adds it after forging — so only the COSE signature check
 * (§2.2.6) can catch them.
 */
import {
  BLE_LIMITS,
  chunkMessage,
  encodeLine,
  MAX_LINE_BYTES,
  parseSign1,
  signSign1,
  type Message,
} from '../protocol/index.js';
import { generateSecretKey } from './commands.js';
import type { Random } from './random.js';

/** What a fault did, for faults.jsonl: plain JSON values only. */
export type FaultDetail = Record<string, string | number | boolean | number[] | string[]>;

export interface Damage {
  readonly units: Uint8Array[];
  readonly detail: FaultDetail;
}

/** Which part a corrupt fault hits: serial `body` (base64url) or `crc`; BLE chunk `data` or `sequence`. */
export type CorruptPart = 'body' | 'crc' | 'data' | 'sequence';

/** A transport's encoding and its ways of breaking it. */
export interface WireCodec {
  readonly transport: 'serial' | 'ble';
  encode(msg: Message): Uint8Array[];
  /**
   * Same length, integrity check fails: serial LINE_CRC; BLE BLE_CRC (data) or BLE_SEQUENCE. A part
   * of the other transport is ignored (faults.ts rejects it); a BLE message of one chunk has no
   * sequence to break, so it gets a data byte.
   */
  corrupt(units: readonly Uint8Array[], r: Random, part?: CorruptPart): Damage;
  /** The message cut short: serial a line without its LF (glued to the next line → LINE_CRC); BLE END too early → BLE_LENGTH. */
  truncate(units: readonly Uint8Array[], r: Random): Damage;
  /** Bytes that are no message: serial 1–3 random lines (LINE_GARBAGE each); BLE 1–3 stray continuation chunks (one BLE_CHUNK). */
  garbage(r: Random): Damage;
  /** Over the cap: serial a "pcF " line of 4097–6096 bytes (LINE_TOO_LONG); BLE a START declaring 4097–65535 bytes (BLE_LENGTH). */
  oversize(r: Random): Damage;
}

export function randomBytesFrom(r: Random, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.nextU32() & 0xff;
  return out;
}

/** An integer in [lo, hi]. */
function int(r: Random, lo: number, hi: number): number {
  return lo + Math.floor(r.next() * (hi - lo + 1));
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const HEX = '0123456789abcdef';
const LF = 0x0a;
const CR = 0x0d;
const P = 0x70;

/** Replaces the character at `at` by a different one of `alphabet` (the original is in it). */
function swapChar(line: Uint8Array, at: number, alphabet: string, r: Random): { from: string; to: string } {
  const from = String.fromCharCode(line[at] ?? 0);
  const i = alphabet.indexOf(from);
  const to = alphabet.charAt((i + int(r, 1, alphabet.length - 1)) % alphabet.length);
  line[at] = to.charCodeAt(0);
  return { from, to };
}

export function serialCodec(): WireCodec {
  return {
    transport: 'serial',
    encode: (msg) => [encodeLine(msg)],
    corrupt(units, r, part): Damage {
      const line = Uint8Array.from(units[0] ?? []);
      // "pc" T SP body64 SP crc8 LF: body64 is [4, len − 10), the CRC digits [len − 9, len − 1).
      const bodyLen = line.length - 14;
      const which = part === 'crc' || bodyLen <= 0 ? 'crc' : part === 'body' ? 'body' : r.next() < 0.75 ? 'body' : 'crc';
      const at = which === 'body' ? 4 + int(r, 0, bodyLen - 1) : line.length - 9 + int(r, 0, 7);
      const swap = swapChar(line, at, which === 'body' ? B64URL : HEX, r);
      return { units: [line], detail: { part: which, offset: at, ...swap } };
    },
    truncate(units, r): Damage {
      const line = units[0] ?? new Uint8Array(0);
      // At least "pcX " so the glued line still starts like a line (LINE_CRC, not LINE_GARBAGE); never the LF.
      const kept = int(r, 4, Math.max(4, line.length - 2));
      return { units: [line.slice(0, kept)], detail: { kept, of: line.length } };
    },
    garbage(r): Damage {
      const lines: Uint8Array[] = [];
      for (let n = int(r, 1, 3); n > 0; n--) {
        const line = randomBytesFrom(r, int(r, 8, 120) + 1);
        for (let i = 0; i < line.length - 1; i++) if (line[i] === LF) line[i] = 0x00;
        // A first byte that cannot start "pc" or a blank CR LF line: LINE_GARBAGE at once (§5.3).
        if (line[0] === P || line[0] === CR) line[0] = 0x23;
        line[line.length - 1] = LF;
        lines.push(line);
      }
      return { units: lines, detail: { lines: lines.length, bytes: lines.reduce((a, l) => a + l.length, 0) } };
    },
    oversize(r): Damage {
      const bytes = MAX_LINE_BYTES + 1 + int(r, 0, 1999);
      const line = new Uint8Array(bytes);
      line.set([P, 0x63, 0x46, 0x20]); // "pcF "
      for (let i = 4; i < bytes - 1; i++) line[i] = B64URL.charCodeAt(r.nextU32() & 63);
      line[bytes - 1] = LF;
      return { units: [line], detail: { bytes } };
    },
  };
}

const START = 0x80;
const END = 0x40;
const SEQ = 0x3f;

/** BLE chunks of at most `maxChunk` (ATT_MTU − 3) bytes. */
export function bleCodec(maxChunk: number): WireCodec {
  return {
    transport: 'ble',
    encode: (msg) => chunkMessage(msg, maxChunk),
    corrupt(units, r, part): Damage {
      const chunks = units.map((c) => Uint8Array.from(c));
      const sequence = chunks.length > 1 && (part === 'sequence' || (part === undefined && r.next() < 0.25));
      if (sequence) {
        const i = int(r, 1, chunks.length - 1);
        const c = chunks[i] ?? new Uint8Array(1);
        const from = (c[0] ?? 0) & SEQ;
        const to = (from + int(r, 1, SEQ)) & SEQ;
        c[0] = ((c[0] ?? 0) & (START | END)) | to;
        return { units: chunks, detail: { part: 'sequence', chunk: i, from, to } };
      }
      const i = int(r, 0, chunks.length - 1);
      const c = chunks[i] ?? new Uint8Array(4);
      const first = i === 0 ? 3 : 1; // header (and length, in the START chunk) are not data
      const at = int(r, first, c.length - 1);
      const xor = int(r, 1, 255);
      c[at] = (c[at] ?? 0) ^ xor;
      return { units: chunks, detail: { part: 'data', chunk: i, offset: at, xor } };
    },
    truncate(units, r): Damage {
      if (units.length >= 2) {
        const kept = int(r, 1, units.length - 1);
        const chunks = units.slice(0, kept).map((c) => Uint8Array.from(c));
        const last = chunks[kept - 1] ?? new Uint8Array(1);
        last[0] = (last[0] ?? 0) | END;
        return { units: chunks, detail: { keptChunks: kept, of: units.length } };
      }
      // One chunk (large MTU): keep part of its data; END is set already and comes too early.
      const c = units[0] ?? new Uint8Array(5);
      const keptData = int(r, 1, c.length - 4);
      return { units: [c.slice(0, 3 + keptData)], detail: { keptChunks: 1, of: 1, keptData, ofData: c.length - 3 } };
    },
    garbage(r): Damage {
      const chunks: Uint8Array[] = [];
      for (let n = int(r, 1, 3); n > 0; n--) {
        const c = randomBytesFrom(r, int(r, 2, maxChunk));
        c[0] = (c[0] ?? 0) & (END | SEQ); // a continuation (START clear) while no message is in progress
        chunks.push(c);
      }
      return { units: chunks, detail: { chunks: chunks.length, bytes: chunks.reduce((a, c) => a + c.length, 0) } };
    },
    oversize(r): Damage {
      const declared = int(r, BLE_LIMITS.maxMessage + 1, 0xffff);
      const start = randomBytesFrom(r, maxChunk);
      start.set([START, declared >>> 8, declared & 0xff]);
      const chunks = [start];
      const more = int(r, 1, 3);
      for (let seq = 1; seq <= more; seq++) {
        const c = randomBytesFrom(r, maxChunk);
        c[0] = seq;
        chunks.push(c);
      }
      return { units: chunks, detail: { declared, chunks: chunks.length } };
    },
  };
}

/** The same COSE_Sign1 with one bit of its 64-byte signature (the last 64 bytes) flipped. */
export function flipSignatureBit(cose: Uint8Array, r: Random): { cose: Uint8Array; bit: number } {
  const out = Uint8Array.from(cose);
  const bit = int(r, 0, 511);
  const at = out.length - 64 + (bit >> 3);
  out[at] = (out[at] ?? 0) ^ (0x80 >> (bit & 7));
  return { cose: out, bit };
}

/** The same payload and protected header (alg, the device's kid), signed by a fresh key drawn from `r`. */
export function resignWithRandomKey(cose: Uint8Array, r: Random): Uint8Array {
  const { alg, kid, payload } = parseSign1(cose);
  const secretKey = generateSecretKey(alg, (n) => randomBytesFrom(r, n));
  return signSign1({ alg, kid, payload, secretKey });
}
