import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32, fromHex, toHex } from './bytes.js';
import {
  BLE_GATT,
  BLE_LIMITS,
  chunkBytes,
  ChunkJoiner,
  chunkMessage,
  decodeBleMessage,
  decodeDeviceInfo,
  encodeBleMessage,
  encodeDeviceInfo,
  Reassembler,
  type JoinEvent,
} from './ble.js';
import type { DecodeEvent, HelloInfo, Message } from './messages.js';
import { eventLabels, messageJson } from './wire-testkit.js';
import { codeOf } from './testing.js';

interface Vector {
  name: string;
  expect: string;
  kind?: 'deviceInfo';
  chunkSize?: number;
  bleMessage?: string;
  chunks?: string[];
  message?: unknown;
  events?: string[];
  at?: number[];
  tick?: number;
  reset?: boolean;
  hex?: string;
  info?: unknown;
}
const file = JSON.parse(readFileSync(new URL('../test/vectors/ble.json', import.meta.url), 'utf8')) as { vectors: Vector[] };

const feed = (r: Reassembler, chunks: Uint8Array[], t = 0): DecodeEvent[] => chunks.flatMap((c) => r.push(c, t));
const messagesOf = (events: DecodeEvent[]): Message[] => events.flatMap((e) => (e.kind === 'message' ? [e.message] : []));
const joined = (events: JoinEvent[]): Uint8Array[] => events.flatMap((e) => (e.kind === 'bytes' ? [e.bytes] : []));

const ack: Message = { type: 'ack', ranges: [[1, 5], [7, 7]] };
const frame: Message = { type: 'frame', cose: Uint8Array.from({ length: 250 }, (_, i) => i) };
const bigHello: HelloInfo = {
  version: 1,
  serial: 'PACK-0001',
  model: 'PC-48V',
  firmware: '1.4.2',
  alg: -8,
  publicKey: new Uint8Array(32).fill(9),
  chain: [new Uint8Array(1400).fill(0x30), new Uint8Array(1500).fill(0x31)],
  nextCounter: 1000,
  unacked: 12,
};

describe('ble vectors (test/vectors/ble.json)', () => {
  for (const v of file.vectors) {
    it(`${v.name} → ${v.expect}`, () => {
      if (v.kind === 'deviceInfo') {
        const bytes = fromHex(v.hex ?? '');
        if (v.expect !== 'ok') {
          expect(codeOf(() => decodeDeviceInfo(bytes))).toBe(v.expect);
          return;
        }
        const info = decodeDeviceInfo(bytes);
        expect(info).toEqual(v.info);
        expect(toHex(encodeDeviceInfo(info))).toBe(v.hex);
        return;
      }
      const chunks = (v.chunks ?? []).map((h) => fromHex(h));
      const r = new Reassembler();
      const events = chunks.flatMap((c, i) => r.push(c, v.at?.[i] ?? 0));
      if (v.tick !== undefined) events.push(...r.tick(v.tick));
      if (v.reset) events.push(...r.reset());
      if (v.events) {
        expect(eventLabels(events)).toEqual(v.events);
        return;
      }
      // A valid message: its BLE encoding, its chunks and its decoding all match.
      const msg = decodeBleMessage(fromHex(v.bleMessage ?? ''));
      expect(messageJson(msg)).toEqual(v.message);
      expect(toHex(encodeBleMessage(msg))).toBe(v.bleMessage);
      expect(chunkMessage(msg, v.chunkSize ?? 0).map(toHex)).toEqual(v.chunks);
      expect(events.map((e) => e.kind === 'message' && messageJson(e.message))).toEqual([v.message]);
    });
  }

  it('covers every BLE error code', () => {
    const seen = new Set(file.vectors.flatMap((v) => [v.expect, ...(v.events ?? [])]));
    for (const code of ['BLE_CHUNK', 'BLE_SEQUENCE', 'BLE_LENGTH', 'BLE_TIMEOUT', 'BLE_CRC', 'MSG_TYPE', 'MSG_TOO_LARGE', 'MSG_MALFORMED']) {
      expect(seen).toContain(code);
    }
  });
});

describe('GATT layout', () => {
  it('uses four distinct UUIDs sharing the service base', () => {
    const ids = Object.values(BLE_GATT);
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(id).toMatch(/^9e1b000[1-4]-5c3a-4d71-b0c4-61a2f3e8d5b7$/);
  });
});

describe('chunkBytes / ChunkJoiner', () => {
  describe('with every chunk size from 20 to 244', () => {
    const lengths = [1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 21, 36, 37, 38, 240, 241, 242, 243, 244, 245, 1000, 3065, 4095, 4096];
    it('round-trips messages of sampled lengths 1..4096 byte for byte', () => {
      const sampled = [...lengths, ...fc.sample(fc.integer({ min: 1, max: 4096 }), { numRuns: 8, seed: 7 })];
      for (let size = 20; size <= 244; size++) {
        for (const n of sampled) {
          const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff);
          const chunks = chunkBytes(bytes, size);
          expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(size);
          const j = new ChunkJoiner();
          const out = joined(chunks.flatMap((c) => j.push(c, 0)));
          expect(out.length).toBe(1);
          expect(toHex(out[0] ?? new Uint8Array())).toBe(toHex(bytes));
        }
      }
    });

    it('round-trips real messages through chunkMessage and Reassembler', () => {
      const msgs: Message[] = [ack, frame, { type: 'hello', ...bigHello }];
      for (let size = 20; size <= 244; size++) {
        const r = new Reassembler();
        expect(messagesOf(msgs.flatMap((m) => feed(r, chunkMessage(m, size))))).toEqual(msgs);
      }
    });
  });

  it('numbers chunks START = 0 then +1 mod 64, and marks only the last one END', () => {
    const chunks = chunkBytes(new Uint8Array(4096), 20);
    expect(chunks.length).toBe(1 + Math.ceil((4096 - 17) / 19));
    chunks.forEach((c, i) => {
      expect((c[0] ?? 0) & 0x3f).toBe(i % 64);
      expect(((c[0] ?? 0) & 0x80) !== 0).toBe(i === 0);
      expect(((c[0] ?? 0) & 0x40) !== 0).toBe(i === chunks.length - 1);
    });
    expect([...chunks[0]!.subarray(1, 3)]).toEqual([0x10, 0x00]);
  });

  describe('when the chunk size or length is out of range', () => {
    it('throws BLE_CHUNK for a chunk size outside 20..244 (caller error)', () => {
      for (const s of [19, 245, 20.5, Number.NaN]) expect(codeOf(() => chunkBytes(Uint8Array.of(1), s))).toBe('BLE_CHUNK');
    });
    it('throws BLE_LENGTH for an empty or over-4096-byte message', () => {
      expect(codeOf(() => chunkBytes(new Uint8Array(0), 20))).toBe('BLE_LENGTH');
      expect(codeOf(() => chunkBytes(new Uint8Array(4097), 20))).toBe('BLE_LENGTH');
    });
  });

  describe('when exactly 64 chunks are lost (the sequence number wraps)', () => {
    it('still drops the message: END comes before the declared length (BLE_LENGTH)', () => {
      const chunks = chunkBytes(new Uint8Array(4096).fill(1), 20);
      const j = new ChunkJoiner();
      const events = [...chunks.slice(0, 10), ...chunks.slice(74)].flatMap((c) => j.push(c, 0));
      expect(events.map((e) => (e.kind === 'error' ? e.error.code : 'bytes'))).toEqual(['BLE_LENGTH']);
    });
  });

  it('holds no more than the declared length, capped by maxMessage', () => {
    const j = new ChunkJoiner({ maxMessage: 100 });
    expect(j.push(Uint8Array.of(0x80, 0x00, 0x65, 1), 0).map((e) => e.kind === 'error' && e.error.code)).toEqual(['BLE_LENGTH']);
    expect(j.pending).toBeNull();
    j.push(Uint8Array.of(0x80, 0x00, 0x64, 1), 0);
    expect(j.pending).toEqual({ received: 1, declared: 100 });
  });

  it('throws for options outside their ranges', () => {
    expect(codeOf(() => new ChunkJoiner({ maxMessage: 4097 }))).toBe('BLE_LENGTH');
    expect(codeOf(() => new ChunkJoiner({ maxMessage: 4 }))).toBe('BLE_LENGTH');
    expect(codeOf(() => new ChunkJoiner({ timeoutMs: 0 }))).toBe('BLE_TIMEOUT');
  });
});

describe('Reassembler', () => {
  const fr = chunkMessage(frame, 20);
  const ac = chunkMessage(ack, 20);

  describe('when a chunk is lost, duplicated or reordered', () => {
    it('drops that message with one BLE_SEQUENCE, skips its other chunks silently, then decodes the next', () => {
      for (const broken of [[fr[0]!, ...fr.slice(2)], [fr[0]!, fr[1]!, fr[1]!, ...fr.slice(2)], [fr[0]!, fr[2]!, fr[1]!, ...fr.slice(3)]]) {
        const r = new Reassembler();
        expect(eventLabels([...feed(r, broken), ...feed(r, ac)])).toEqual(['BLE_SEQUENCE', 'A']);
        expect(r.stats.droppedChunks).toBeGreaterThan(0);
      }
    });
  });

  describe('when a new START interrupts a message', () => {
    it('drops the old message with an event and decodes the new one', () => {
      const r = new Reassembler();
      expect(eventLabels(feed(r, [...fr.slice(0, 4), ...ac, ...fr]))).toEqual(['BLE_SEQUENCE', 'A', 'F']);
    });
  });

  describe('when chunks stop arriving', () => {
    it('tick() reports BLE_TIMEOUT after timeoutMs of silence, not before', () => {
      const r = new Reassembler({ timeoutMs: 500 });
      r.push(fr[0]!, 1000);
      expect(r.tick(1500)).toEqual([]);
      expect(eventLabels(r.tick(1501))).toEqual(['BLE_TIMEOUT']);
      expect(r.tick(9999)).toEqual([]);
      expect(eventLabels([...r.push(fr[1]!, 1502), ...feed(r, ac, 1503)])).toEqual(['A']);
    });

    it('a late chunk reports the timeout itself (no tick needed)', () => {
      const r = new Reassembler();
      r.push(fr[0]!, 0);
      expect(eventLabels(r.push(fr[1]!, 2001))).toEqual(['BLE_TIMEOUT']);
    });
  });

  describe('reset() on disconnect', () => {
    it('returns one BLE_TIMEOUT for a message in progress and nothing when idle', () => {
      const r = new Reassembler();
      feed(r, fr.slice(0, 3));
      expect(eventLabels(r.reset())).toEqual(['BLE_TIMEOUT']);
      expect(r.reset()).toEqual([]);
      expect(eventLabels(feed(r, fr.slice(3)))).toEqual(['BLE_CHUNK']); // a new connection starts idle
      expect(eventLabels(feed(r, fr))).toEqual(['F']);
    });
  });

  it('counts chunks, messages and errors', () => {
    const r = new Reassembler();
    feed(r, [...fr, ...ac, new Uint8Array(0)]);
    expect(r.stats).toMatchObject({ chunks: fr.length + ac.length + 1, joined: 2, messages: 2, errors: { BLE_CHUNK: 1 } });
  });

  describe('decodeBleMessage', () => {
    it('checks the CRC-32 (big-endian) over letter and body', () => {
      const b = encodeBleMessage(ack);
      expect(new DataView(b.buffer).getUint32(b.length - 4)).toBe(crc32(b, 0, b.length - 4));
      b[1] = (b[1] ?? 0) ^ 0x80;
      expect(codeOf(() => decodeBleMessage(b))).toBe('BLE_CRC');
    });
  });

  describe('fed random or mutated chunks', () => {
    const valid = [ack, frame, { type: 'hello', ...bigHello } as Message].map((m) => chunkMessage(m, 20));

    it('never throws and never holds more than the cap', () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.oneof(fc.uint8Array({ maxLength: 244 }), fc.constantFrom(...valid.flat())), fc.nat(5000)), { maxLength: 60 }),
          fc.integer({ min: 5, max: 4096 }),
          (chunks, cap) => {
            const r = new Reassembler({ maxMessage: cap });
            let t = 0;
            for (const [c, dt] of chunks) {
              r.push(c, (t += dt));
              expect(r.pending?.declared ?? 0).toBeLessThanOrEqual(cap);
            }
            r.tick(t + 10_000);
            expect(r.pending).toBeNull();
          },
        ),
        { numRuns: 300 },
      );
    });

    it('recovers every valid message when junk chunks come only between messages', () => {
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.array(fc.uint8Array({ maxLength: 30 }), { maxLength: 3 }), fc.nat(2)), { maxLength: 6 }), (items) => {
          const r = new Reassembler();
          const events = items.flatMap(([junk, i]) => [...feed(r, junk), ...feed(r, valid[i] ?? [])]);
          const msgs = [ack, frame, { type: 'hello', ...bigHello }];
          expect(messagesOf(events)).toEqual(items.map(([, i]) => msgs[i]));
        }),
        { numRuns: 300 },
      );
    });
  });
});

describe('device info (read characteristic 9e1b0004)', () => {
  it('stays within 180 bytes at the longest allowed fields', () => {
    const bytes = encodeDeviceInfo({ serial: 'S'.repeat(32), model: 'M'.repeat(64), firmware: 'F'.repeat(32), alg: -7 });
    expect(bytes.length).toBeLessThanOrEqual(BLE_LIMITS.maxDeviceInfo);
  });

  it('throws MSG_MALFORMED for a field outside its schema', () => {
    expect(codeOf(() => encodeDeviceInfo({ serial: 'S'.repeat(33), model: 'M', firmware: 'F', alg: null }))).toBe('MSG_MALFORMED');
  });
});
