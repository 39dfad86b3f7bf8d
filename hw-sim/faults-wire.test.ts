/**
 * The byte-level damage of each wire fault, checked against protocol's own decoders over many seeds:
 * whatever bytes the seeded stream picks, a correct receiver reports exactly the documented code
 * (docs/protocol.md §5.4, §6.6) and a forged frame fails COSE verification (§2.2.6) while its
 * transport CRC passes. The pty and BLE integration of the same faults is in faults.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  encodeFrame,
  importPublicKey,
  keyId,
  LineDecoder,
  publicKeyFromSecretPortable,
  Reassembler,
  signSign1,
  verifySign1,
  type DecodeEvent,
  type Message,
  type SignatureAlg,
} from '../protocol/index.js';
import { generateSecretKey } from './commands.js';
import { fixedSensor, T0 } from './firmware-testkit.js';
import { bleCodec, flipSignatureBit, resignWithRandomKey, serialCodec, type WireCodec } from './faults-wire.js';
import { Random } from './random.js';

const SEEDS = 200;

function device(alg: SignatureAlg, seed: number) {
  const r = Random.fromSeed(seed);
  const secretKey = generateSecretKey(alg, (n) => Uint8Array.from({ length: n }, () => r.nextU32() & 0xff));
  const publicKey = importPublicKey(alg, publicKeyFromSecretPortable(alg, secretKey).raw);
  const kid = keyId(publicKey);
  const frame = (counter: number): Uint8Array => {
    const payload = encodeFrame({ ...fixedSensor().measure(T0), v: 1, serial: 'PACK-0001', counter, time: T0 + counter * 1000, firmware: '1.0.0' });
    return signSign1({ alg, kid, payload, secretKey });
  };
  return { publicKey, kid, frame };
}

const frameMsg = (cose: Uint8Array): Message => ({ type: 'frame', cose });
const codes = (events: DecodeEvent[]): string[] => events.map((e) => (e.kind === 'error' ? e.error.code : `msg:${e.message.type}`));

/** What a host's decoder makes of `units` followed by one intact message on the same link. */
function decode(codec: WireCodec, units: readonly Uint8Array[], next: Message): string[] {
  const all = [...units, ...codec.encode(next)];
  if (codec.transport === 'serial') {
    const d = new LineDecoder();
    return codes(all.flatMap((u) => d.push(u)));
  }
  const r = new Reassembler();
  return codes(all.flatMap((c, i) => r.push(c, i)));
}

const { frame } = device('Ed25519', 1);
const serial = serialCodec();
const ble = bleCodec(20);
const next = frameMsg(frame(99));

describe('serial wire faults', () => {
  it('corrupt (body or CRC) → LINE_CRC, never LINE_ENCODING, for every seed', () => {
    for (let s = 0; s < SEEDS; s++) {
      for (const part of ['body', 'crc'] as const) {
        const d = serial.corrupt(serial.encode(frameMsg(frame(s))), Random.fromSeed(s), part);
        expect(d.detail.part).toBe(part);
        expect(decode(serial, d.units, next)).toEqual(['LINE_CRC', 'msg:frame']);
      }
    }
  });

  it('truncate → the cut line swallows the next one: LINE_CRC; at end of stream LINE_TRUNCATED', () => {
    for (let s = 0; s < SEEDS; s++) {
      const d = serial.truncate(serial.encode(frameMsg(frame(s))), Random.fromSeed(s));
      expect(decode(serial, d.units, next)).toEqual(['LINE_CRC']);
      const dec = new LineDecoder();
      expect(codes([...d.units.flatMap((u) => dec.push(u)), ...dec.flush()])).toEqual(['LINE_TRUNCATED']);
    }
  });

  it('garbage → one LINE_GARBAGE per line, and the next message decodes', () => {
    for (let s = 0; s < SEEDS; s++) {
      const d = serial.garbage(Random.fromSeed(s));
      expect(decode(serial, d.units, next)).toEqual([...new Array<string>(Number(d.detail.lines)).fill('LINE_GARBAGE'), 'msg:frame']);
    }
  });

  it('oversize → LINE_TOO_LONG, and the next message decodes', () => {
    for (let s = 0; s < 20; s++) {
      const d = serial.oversize(Random.fromSeed(s));
      expect(d.units[0]!.length).toBeGreaterThan(4096);
      expect(decode(serial, d.units, next)).toEqual(['LINE_TOO_LONG', 'msg:frame']);
    }
  });
});

describe('BLE wire faults', () => {
  it('corrupt data → BLE_CRC; corrupt sequence → BLE_SEQUENCE; the next message decodes', () => {
    for (let s = 0; s < SEEDS; s++) {
      const units = ble.encode(frameMsg(frame(s)));
      expect(decode(ble, ble.corrupt(units, Random.fromSeed(s), 'data').units, next)).toEqual(['BLE_CRC', 'msg:frame']);
      expect(decode(ble, ble.corrupt(units, Random.fromSeed(s), 'sequence').units, next)).toEqual(['BLE_SEQUENCE', 'msg:frame']);
    }
  });

  it('truncate → END before the declared length: BLE_LENGTH, also for a one-chunk message at a large MTU', () => {
    const big = bleCodec(244);
    for (let s = 0; s < SEEDS; s++) {
      expect(decode(ble, ble.truncate(ble.encode(frameMsg(frame(s))), Random.fromSeed(s)).units, next)).toEqual(['BLE_LENGTH', 'msg:frame']);
      const ack: Message = { type: 'ack', ranges: [[1, s + 1]] };
      const one = big.encode(ack);
      expect(one).toHaveLength(1);
      expect(decode(big, big.truncate(one, Random.fromSeed(s)).units, ack)).toEqual(['BLE_LENGTH', 'msg:ack']);
    }
  });

  it('garbage → one BLE_CHUNK for the stray chunks; oversize → BLE_LENGTH; the next message decodes', () => {
    for (let s = 0; s < SEEDS; s++) {
      expect(decode(ble, ble.garbage(Random.fromSeed(s)).units, next)).toEqual(['BLE_CHUNK', 'msg:frame']);
      const o = ble.oversize(Random.fromSeed(s));
      expect(Number(o.detail.declared)).toBeGreaterThan(4096);
      expect(decode(ble, o.units, next)).toEqual(['BLE_LENGTH', 'msg:frame']);
    }
  });
});

describe('forged frames', () => {
  for (const alg of ['Ed25519', 'ES256'] as const) {
    it(`${alg}: a flipped signature bit or a random key under the device's kid passes the transport and fails COSE_SIGNATURE`, () => {
      const dev = device(alg, 2);
      for (let s = 0; s < 50; s++) {
        const genuine = dev.frame(s);
        expect(() => verifySign1(genuine, dev)).not.toThrow();
        for (const forged of [flipSignatureBit(genuine, Random.fromSeed(s)).cose, resignWithRandomKey(genuine, Random.fromSeed(`forger/${s}`))]) {
          for (const codec of [serial, ble]) {
            const events = decode(codec, codec.encode(frameMsg(forged)), next);
            expect(events).toEqual(['msg:frame', 'msg:frame']);
          }
          expect(() => verifySign1(forged, dev)).toThrow(expect.objectContaining({ code: 'COSE_SIGNATURE' }));
        }
      }
    });
  }
});
