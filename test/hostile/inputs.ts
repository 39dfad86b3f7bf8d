/**
 * The hostile serial lines and BLE notifications (issue 8 item 3), each a function of the seeded
 * PRNG and the link it is written to. Serial: random bytes, printable junk, valid lines with flipped
 * bits (the CRC catches them), frames and hellos whose CBOR is damaged and then re-wrapped in a line
 * with a CORRECT CRC (so the COSE, frame and hello decoders are what refuse them), payloads and
 * protected headers that are hostile under a VALID signature of the pack's own key, unknown types,
 * bad base64, oversized bodies, lines beyond MAX_LINE_BYTES with and without their LF. BLE: random
 * chunks, chunks out of sequence, declared lengths beyond the cap, bad CRCs, damaged CBOR in a
 * message with a correct CRC, bad header flags, and messages left incomplete until they time out.
 */
import {
  crc32,
  decodeFrame,
  encodeCbor,
  encodeLine,
  encodeMessage,
  MAX_LINE_BYTES,
  okResponse,
  toBase64Url,
  utf8,
  type CborValue,
} from '../../protocol/index.js';
import { codeOf } from '../../protocol/testing.js';
import { hostileItem, mutateCbor, write } from './cbor-hostile.js';
import type { GenuineDevice } from './devices.js';
import { BLE_CHUNK, type BleLink, type Link } from './links.js';
import { payloadOf } from './packs.js';
import type { Rng } from './prng.js';

/** Frame body cap (protocol MESSAGE_LIMITS.maxFrame) and any body's cap (maxBody). */
const MAX_FRAME = 768;
const MAX_BODY = 3060;
const LETTERS = ['F', 'A', 'H', 'Q', 'R', 'E'];

/** A serial line "pc" TYPE " " base64url(body) " " crc LF, built by hand so any body goes in. */
export function lineOf(letter: string, body: Uint8Array, opts: { badCrc?: boolean; lf?: boolean } = {}): Uint8Array {
  const head = `pc${letter} ${toBase64Url(body)} `;
  const bytes = utf8(head);
  let crc = crc32(bytes);
  if (opts.badCrc === true) crc = (crc ^ 1) >>> 0;
  return utf8(`${head}${crc.toString(16).padStart(8, '0')}${opts.lf === false ? '' : '\n'}`);
}

/** letter ‖ body ‖ CRC-32 big-endian: a BLE message (any body). */
export function bleMessageOf(letter: string, body: Uint8Array, badCrc = false): Uint8Array {
  const out = new Uint8Array(body.length + 5);
  out[0] = letter.charCodeAt(0);
  out.set(body, 1);
  new DataView(out.buffer).setUint32(body.length + 1, (crc32(out, 0, body.length + 1) ^ (badCrc ? 0x100 : 0)) >>> 0);
  return out;
}

/** Chunks of `bytes` (any length), START declaring `declared` (default: the true length, mod 2^16). */
export function chunksOf(bytes: Uint8Array, size = BLE_CHUNK, declared = bytes.length): Uint8Array[] {
  const first = Math.min(bytes.length, size - 3);
  const out = [Uint8Array.of(0x80 | (first === bytes.length ? 0x40 : 0), (declared >>> 8) & 0xff, declared & 0xff, ...bytes.subarray(0, first))];
  let off = first;
  for (let seq = 1; off < bytes.length; seq++) {
    const n = Math.min(bytes.length - off, size - 1);
    out.push(Uint8Array.of((seq & 0x3f) | (off + n === bytes.length ? 0x40 : 0), ...bytes.subarray(off, off + n)));
    off += n;
  }
  return out;
}

/** What a generator needs of the link it writes to. */
export interface Target {
  /** The device whose pack supplies valid bodies to damage (its hello, its signing key). */
  readonly dev: GenuineDevice;
  /** Where the input goes: the device's own link, or another (a channel with no session, a capped port). */
  readonly link: Link;
  /** A frame validly signed by the pack but never sent as genuine: the base of CBOR mutations (bytes always changed). */
  readonly base: Uint8Array;
  /**
   * A forged frame (another key under the pack's kid): what carries damage at the line and chunk
   * layers, where the damage may by design be skipped (an empty notification is ignored, 'keep') and
   * the frame then arrives whole — to be refused COSE_SIGNATURE, never stored.
   */
  readonly carrier: Uint8Array;
}

/** A hostile body for `letter`: a damaged valid body, or a hostile item alone. */
function hostileBody(rng: Rng, t: Target, letter: string): { body: Uint8Array; how: string } {
  const budget = letter === 'F' ? MAX_FRAME : MAX_BODY;
  if (rng.chance(0.2)) return { body: hostileItem(rng, budget), how: 'item' };
  const valid = validBody(t, letter);
  return { body: mutateCbor(rng, valid, budget).bytes, how: 'mutated' };
}

function validBody(t: Target, letter: string): Uint8Array {
  const { dev } = t;
  switch (letter) {
    case 'F':
      return t.base;
    case 'H':
      return encodeMessage(dev.pack.hello(dev.next, 0)).body;
    case 'R': {
      const { type: _t, ...hello } = dev.pack.hello(dev.next, 0);
      return encodeMessage(okResponse(Math.max(1, dev.helloId), { op: 'hello', hello })).body;
    }
    case 'A':
      return encodeMessage({ type: 'ack', ranges: [[0, 3], [7, 9]] }).body;
    case 'Q':
      return encodeMessage({ type: 'request', id: 7, op: 'hello', args: new Map() }).body;
    default:
      return encodeMessage({ type: 'error', code: 'BUFFER_FULL', message: 'ring full' }).body;
  }
}

/** A payload damaged under a valid signature (decodeFrame must refuse it), or undefined if the damage left a valid frame. */
function signedHostilePayload(rng: Rng, t: Target): Uint8Array | undefined {
  const p = mutateCbor(rng, payloadOf(t.dev.pack.serial, 1_000_000_000 + rng.int(1000)), 500).bytes;
  if (p.length > 600 || codeOf(() => decodeFrame(p)) === 'ok') return undefined;
  return t.dev.pack.signPayload(p);
}

/** A protected header outside the profile, validly signed. */
function signedHostileHeader(rng: Rng, t: Target): Uint8Array {
  const { pack } = t.dev;
  const alg = pack.alg === 'Ed25519' ? -8 : -7;
  const valid = encodeCbor(new Map<number, CborValue>([[1, alg], [4, pack.kid]]));
  const counter = 1_000_000_000 + rng.int(1000);
  const choice = rng.int(8);
  const prot =
    choice === 0 ? encodeCbor(new Map<number, CborValue>([[1, alg === -8 ? -7 : -8], [4, pack.kid]])) // alg mismatch
    : choice === 1 ? encodeCbor(new Map<number, CborValue>([[1, alg], [2, [4]], [4, pack.kid]])) // crit
    : choice === 2 ? encodeCbor(new Map<number, CborValue>([[1, alg]])) // no kid
    : choice === 3 ? encodeCbor(new Map<number, CborValue>([[1, alg], [4, pack.kid.subarray(0, 8)]])) // short kid
    : choice === 4 ? encodeCbor(new Map<number, CborValue>([[1, -35], [4, pack.kid]])) // unknown alg
    : choice === 5 ? write({ kind: 'map', entries: [[4, pack.kid], [1, alg]] }) // unsorted
    : choice === 6 ? new Uint8Array(0)
    : mutateCbor(rng, valid, 200).bytes;
  if (choice === 7 && rng.chance(0.5)) {
    // A valid protected header with a non-empty unprotected bucket (which the signature does not cover).
    return pack.signedWithHeader(valid, counter, { kind: 'map', entries: [[4, pack.kid]] });
  }
  return pack.signedWithHeader(prot, counter);
}

const SERIAL_KINDS = {
  'random-bytes': 10,
  'printable-junk': 8,
  'bitflip-line': 8,
  'frame-cbor': 16,
  'frame-signed-payload': 8,
  'frame-signed-header': 4,
  'hello-cbor': 5,
  'response-cbor': 4,
  'other-cbor': 5,
  'unknown-type': 2,
  'bad-encoding': 3,
  'oversized-body': 3,
  'overlong-line': 4,
  'blank-crlf': 1,
} as const;
export type SerialKind = keyof typeof SERIAL_KINDS;

/**
 * Writes one hostile serial input to `t`'s link and returns its kind. `helloTouched` is true when it
 * was an H or R message that could have been judged as a hello (the caller restores the session).
 */
export function serialInput(rng: Rng, t: Target): { kind: SerialKind; helloTouched: boolean } {
  const kind = rng.weighted(SERIAL_KINDS);
  const link = t.link;
  const put = (b: Uint8Array): void => {
    link.raw([b]);
  };
  let helloTouched = false;
  switch (kind) {
    case 'random-bytes':
      put(rng.bytes(rng.chance(0.9) ? rng.range(1, 300) : rng.range(300, 6000)));
      break;
    case 'printable-junk': {
      const n = rng.range(1, 400);
      const b = new Uint8Array(n + 1);
      for (let i = 0; i < n; i++) b[i] = rng.chance(0.05) ? 0x0a : rng.range(0x20, 0x7e);
      b[n] = 0x0a;
      if (rng.chance(0.3)) b.set(utf8(`pc${rng.pick(LETTERS)} `).subarray(0, Math.min(4, n)), 0);
      put(b);
      break;
    }
    case 'bitflip-line': {
      const line = Uint8Array.from(encodeLine({ type: 'frame', cose: t.carrier }));
      for (let k = rng.range(1, 3); k > 0; k--) {
        const i = rng.int(line.length - 1); // never the LF
        line[i] = (line[i] ?? 0) ^ (1 << rng.int(8));
        if (line[i] === 0x0a) line[i] = 0x0b;
      }
      put(line);
      break;
    }
    case 'frame-cbor':
      put(lineOf('F', hostileBody(rng, t, 'F').body));
      break;
    case 'frame-signed-payload': {
      const cose = signedHostilePayload(rng, t);
      put(cose === undefined ? lineOf('F', hostileItem(rng, MAX_FRAME)) : lineOf('F', cose));
      break;
    }
    case 'frame-signed-header':
      put(lineOf('F', signedHostileHeader(rng, t)));
      break;
    case 'hello-cbor':
      put(lineOf('H', hostileBody(rng, t, 'H').body));
      helloTouched = true;
      break;
    case 'response-cbor':
      put(lineOf('R', hostileBody(rng, t, 'R').body));
      helloTouched = true;
      break;
    case 'other-cbor': {
      const letter = rng.pick(['A', 'Q', 'E']);
      put(lineOf(letter, hostileBody(rng, t, letter).body));
      break;
    }
    case 'unknown-type':
      put(lineOf(String.fromCharCode(rng.range(0x41, 0x5a)).replace(/[FAHQRE]/, 'Z'), rng.bytes(rng.range(1, 40))));
      break;
    case 'bad-encoding': {
      const variants = [
        utf8(`pcF ${'*'.repeat(rng.range(1, 40))} `),
        utf8(`pcF ${toBase64Url(t.carrier)}= `),
        utf8(`pcF ${toBase64Url(t.carrier)}`),
      ];
      const head = rng.pick(variants);
      const crc = crc32(head).toString(16).padStart(8, '0');
      put(utf8(`${new TextDecoder().decode(head)}${rng.chance(0.2) ? crc.toUpperCase() : crc}\n`));
      break;
    }
    case 'oversized-body': {
      const n = rng.chance(0.5) ? rng.range(MAX_FRAME + 1, MAX_BODY) : rng.range(MAX_BODY + 1, 3064);
      put(lineOf(rng.pick(['F', 'H', 'R']), rng.bytes(n)));
      break;
    }
    case 'overlong-line': {
      const n = rng.range(MAX_LINE_BYTES, MAX_LINE_BYTES * 3);
      const b = new Uint8Array(n);
      b.set(utf8('pcF '));
      for (let i = 4; i < n; i++) b[i] = 0x41 + rng.int(26);
      const withLf = rng.chance(0.6);
      if (withLf) b[n - 1] = 0x0a;
      put(b);
      // Without its LF the line swallows what follows up to the next LF: a genuine frame there is
      // lost in transit and resent (acks are the device's guide, §4.3).
      break;
    }
    case 'blank-crlf':
      put(utf8(rng.pick(['\n', '\r\n', '\r\r\n', '\n\n\n', '\r'])));
      break;
  }
  return { kind, helloTouched };
}

const BLE_KINDS = {
  'ble-random-chunks': 10,
  'ble-wrong-sequence': 8,
  'ble-length-cap': 6,
  'ble-bad-crc': 6,
  'ble-timeout': 5,
  'ble-cbor': 14,
  'ble-signed-payload': 5,
  'ble-bad-flags': 6,
} as const;
export type BleKind = keyof typeof BLE_KINDS;

/** Writes one hostile BLE input (a run of notifications) to `link`; same contract as serialInput. */
export function bleInput(rng: Rng, t: Target, link: BleLink): { kind: BleKind; helloTouched: boolean } {
  const kind = rng.weighted(BLE_KINDS);
  let helloTouched = false;
  // Small ATT payloads (MTU 23..103) so a frame spans several chunks.
  const genuineChunks = (): Uint8Array[] => chunksOf(bleMessageOf('F', t.carrier), rng.range(20, 100));
  switch (kind) {
    case 'ble-random-chunks':
      link.raw(Array.from({ length: rng.range(1, 6) }, () => rng.bytes(rng.range(0, 300))));
      break;
    case 'ble-wrong-sequence': {
      const msg = bleMessageOf('F', t.carrier);
      const chunks = chunksOf(msg, rng.range(20, 60));
      const i = rng.range(1, chunks.length - 1);
      const op = rng.int(3);
      if (op === 0) chunks.splice(i, 1); // lost
      else if (op === 1) chunks.splice(i, 0, chunks[i] as Uint8Array); // duplicated
      else if (i + 1 < chunks.length) chunks.splice(i, 2, chunks[i + 1] as Uint8Array, chunks[i] as Uint8Array); // reordered
      link.raw(chunks);
      break;
    }
    case 'ble-length-cap': {
      const declared = rng.chance(0.5) ? rng.range(4097, 0xffff) : 0;
      const body = rng.bytes(rng.range(1, 600));
      link.raw(chunksOf(body, BLE_CHUNK, declared));
      break;
    }
    case 'ble-bad-crc':
      link.raw(chunksOf(bleMessageOf(rng.pick(LETTERS), rng.chance(0.5) ? t.carrier : rng.bytes(rng.range(1, 200)), true)));
      break;
    case 'ble-timeout': {
      const chunks = genuineChunks();
      link.raw(chunks.slice(0, rng.range(1, Math.max(1, chunks.length - 1))));
      link.advance(rng.range(2001, 10_000));
      if (rng.chance(0.5)) link.raw(chunks.slice(-1)); // the late rest: an orphan
      break;
    }
    case 'ble-cbor': {
      const letter = rng.pick(['F', 'F', 'F', 'H', 'R', 'A', 'Q', 'E']);
      helloTouched = letter === 'H' || letter === 'R';
      const budget = letter === 'F' ? MAX_FRAME : 4091;
      const body = rng.chance(0.2) ? hostileItem(rng, budget) : mutateCbor(rng, validBody(t, letter), budget).bytes;
      link.raw(chunksOf(bleMessageOf(letter, body)));
      break;
    }
    case 'ble-signed-payload': {
      const cose = rng.chance(0.5) ? signedHostilePayload(rng, t) : signedHostileHeader(rng, t);
      link.raw(chunksOf(bleMessageOf('F', cose ?? hostileItem(rng, MAX_FRAME))));
      break;
    }
    case 'ble-bad-flags': {
      const chunks = genuineChunks().map((c) => Uint8Array.from(c));
      const last = chunks[chunks.length - 1] as Uint8Array;
      const first = chunks[0] as Uint8Array;
      const op = rng.int(6);
      if (op === 0) first[0] = (first[0] ?? 0) | 0x40; // END on the first of several
      else if (op === 1) last[0] = (last[0] ?? 0) & ~0x40; // no END
      else if (op === 2) first[0] = 0x80 | rng.range(1, 63); // START with seq ≠ 0
      else if (op === 3) chunks.unshift(new Uint8Array(0)); // empty notification
      else if (op === 4) chunks.splice(1, 0, Uint8Array.of(1)); // continuation without data
      else chunks.shift(); // continuations with no START
      link.raw(chunks);
      break;
    }
  }
  return { kind, helloTouched };
}
