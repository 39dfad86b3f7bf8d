import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, crc32, fromHex, utf8 } from './bytes.js';
import type { DecodeEvent, Message } from './messages.js';
import { encodeLine, LineDecoder, MAX_LINE_BYTES, parseLine } from './serial.js';
import { eventLabels, messageJson } from './wire-testkit.js';
import { codeOf } from './testing.js';

interface Vector {
  name: string;
  expect: string;
  kind?: 'stream';
  line?: string;
  canonical?: string;
  message?: unknown;
  input?: string;
  inputHex?: string;
  events?: string[];
}
const file = JSON.parse(readFileSync(new URL('../test/vectors/serial.json', import.meta.url), 'utf8')) as { vectors: Vector[] };

const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const text = (b: Uint8Array): string => String.fromCharCode(...b);

/** Feeds `parts` to a fresh decoder, then flushes; returns every event. */
function decodeAll(parts: Uint8Array[], d = new LineDecoder()): DecodeEvent[] {
  const events = parts.flatMap((p) => d.push(p));
  return [...events, ...d.flush()];
}
const messagesOf = (events: DecodeEvent[]): Message[] => events.flatMap((e) => (e.kind === 'message' ? [e.message] : []));

const ack: Message = { type: 'ack', ranges: [[1, 5], [7, 7]] };
const frame: Message = { type: 'frame', cose: Uint8Array.from({ length: 250 }, (_, i) => i) };
const notice: Message = { type: 'error', code: 'LOW_BATTERY', message: 'cell 3 below 2500 mV' };

describe('serial vectors (test/vectors/serial.json)', () => {
  for (const v of file.vectors) {
    it(`${v.name} → ${v.kind === 'stream' ? (v.events ?? []).join(' ') : v.expect}`, () => {
      if (v.kind === 'stream') {
        const input = v.inputHex !== undefined ? fromHex(v.inputHex) : latin1(v.input ?? '');
        expect(eventLabels(decodeAll([input]))).toEqual(v.events);
        return;
      }
      const line = latin1(v.line ?? '');
      expect(line[line.length - 1]).toBe(0x0a);
      const events = decodeAll([line]);
      if (v.expect !== 'ok') {
        expect(codeOf(() => parseLine(line.subarray(0, -1)))).toBe(v.expect);
        expect(eventLabels(events)).toEqual([v.expect]);
        return;
      }
      const msg = parseLine(line.subarray(0, -1));
      expect(messageJson(msg)).toEqual(v.message);
      expect(text(encodeLine(msg))).toBe(v.canonical ?? v.line);
      expect(events.map((e) => e.kind === 'message' && messageJson(e.message))).toEqual([v.message]);
    });
  }

  it('covers every serial error code', () => {
    const seen = new Set(file.vectors.flatMap((v) => (v.kind === 'stream' ? (v.events ?? []) : [v.expect])));
    for (const code of ['LINE_TOO_LONG', 'LINE_GARBAGE', 'LINE_CRC', 'LINE_ENCODING', 'LINE_TRUNCATED', 'MSG_TYPE', 'MSG_TOO_LARGE', 'MSG_MALFORMED']) {
      expect(seen).toContain(code);
    }
  });
});

describe('encodeLine / parseLine', () => {
  it('uses CRC-32/ISO-HDLC (check value of "123456789" is cbf43926, CRC RevEng catalogue)', () => {
    expect(crc32(utf8('123456789'))).toBe(0xcbf43926);
  });

  it('checks the CRC before the base64, so damage in transit reads as LINE_CRC (noise), not LINE_ENCODING', () => {
    const line = text(encodeLine(ack)).slice(0, -1);
    const damaged = line.slice(0, 5) + '*' + line.slice(6);
    expect(codeOf(() => parseLine(latin1(damaged)))).toBe('LINE_CRC');
  });

  it('fits a hello with a 2-certificate chain of 600-byte certificates in one line', () => {
    const chain = [new Uint8Array(600).fill(0x30), new Uint8Array(600).fill(0x31)];
    const hello: Message = { type: 'hello', version: 1, serial: 'PACK-0001', model: 'M', firmware: '1', alg: -7, publicKey: Uint8Array.from({ length: 65 }, (_, i) => (i === 0 ? 4 : i)), chain, nextCounter: 1, unacked: 0 };
    const line = encodeLine(hello);
    expect(line.length).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(parseLine(line.subarray(0, -1))).toEqual(hello);
  });

  describe('when a corrupted line is decoded', () => {
    it('never yields a message for any single-byte change (CRC-32 detects every burst of up to 32 bits)', () => {
      const line = encodeLine(frame);
      fc.assert(
        fc.property(fc.nat(line.length - 2), fc.integer({ min: 1, max: 255 }), (at, delta) => {
          const bad = Uint8Array.from(line);
          bad[at] = ((bad[at] ?? 0) + delta) & 0xff;
          expect(messagesOf(decodeAll([bad]))).toEqual([]);
        }),
        { numRuns: 2000 },
      );
    });
  });
});

describe('LineDecoder', () => {
  const stream = concatBytes(
    latin1('boot v1.4.2\r\n'),
    encodeLine(ack),
    latin1('\r\n'),
    latin1(text(encodeLine(frame)).replace('\n', '\r\n')),
    latin1('\x00\xff noise\n'),
    encodeLine(notice),
  );
  const whole = eventLabels(decodeAll([stream]));

  it('decodes a mixed stream: garbage, CR LF and blank lines', () => {
    expect(whole).toEqual(['LINE_GARBAGE', 'A', 'F', 'LINE_GARBAGE', 'E']);
  });

  describe('when the same bytes are split at every possible position', () => {
    it('decodes to the same messages and events', () => {
      for (let i = 0; i <= stream.length; i++) {
        expect(eventLabels(decodeAll([stream.subarray(0, i), stream.subarray(i)]))).toEqual(whole);
      }
    });

    it('decodes to the same events when fed one byte at a time', () => {
      expect(eventLabels(decodeAll(Array.from(stream, (b) => Uint8Array.of(b))))).toEqual(whole);
    });
  });

  describe('when a chunk ends between CR and LF', () => {
    it('decodes the line once the LF arrives', () => {
      const line = latin1(text(encodeLine(ack)).replace('\n', '\r\n'));
      const d = new LineDecoder();
      expect(d.push(line.subarray(0, -1))).toEqual([]);
      expect(d.carryLength).toBe(line.length - 1);
      expect(eventLabels(d.push(line.subarray(-1)))).toEqual(['A']);
      expect(d.carryLength).toBe(0);
    });
  });

  describe('when the stream ends inside a line', () => {
    it('flushes a partial line as LINE_TRUNCATED and empties the carry', () => {
      const d = new LineDecoder();
      d.push(encodeLine(ack).subarray(0, 10));
      const events = d.flush();
      expect(eventLabels(events)).toEqual(['LINE_TRUNCATED']);
      expect(events[0]?.kind === 'error' && events[0].raw).toBe('pcA goIBBY');
      expect(d.carryLength).toBe(0);
      expect(d.flush()).toEqual([]);
      expect(eventLabels(d.push(encodeLine(ack)))).toEqual(['A']);
    });

    it('flushes nothing for a trailing CR or an unterminated garbage line (already reported)', () => {
      expect(eventLabels(decodeAll([latin1('\r')]))).toEqual([]);
      expect(eventLabels(decodeAll([latin1('garbage without end')]))).toEqual(['LINE_GARBAGE']);
    });
  });

  describe('when garbage lies between messages', () => {
    it('skips it with one LINE_GARBAGE per line and counts the bytes', () => {
      const d = new LineDecoder();
      const garbage = latin1('#### boot banner ####\nxx\n');
      const events = decodeAll([garbage, encodeLine(ack), garbage, encodeLine(ack)], d);
      expect(eventLabels(events)).toEqual(['LINE_GARBAGE', 'LINE_GARBAGE', 'A', 'LINE_GARBAGE', 'LINE_GARBAGE', 'A']);
      expect(d.stats).toMatchObject({ lines: 6, messages: 2, garbageBytes: 2 * garbage.length, errors: { LINE_GARBAGE: 4 } });
    });

    it('recovers both lines around 10 000 random noise bytes', () => {
      const rnd = fc.sample(fc.uint8Array({ minLength: 10_000, maxLength: 10_000 }), { numRuns: 5, seed: 42 });
      for (const noise of rnd) {
        const events = decodeAll([encodeLine(ack), noise, latin1('\n'), encodeLine(frame)]);
        expect(messagesOf(events)).toEqual([ack, frame]);
      }
    });
  });

  describe('when a line is longer than 4096 bytes', () => {
    it('reports one LINE_TOO_LONG, discards up to the next LF and never holds more than the cap', () => {
      const d = new LineDecoder();
      const events: DecodeEvent[] = [];
      events.push(...d.push(latin1('pcF ')));
      for (let i = 0; i < 100; i++) {
        events.push(...d.push(new Uint8Array(1000).fill(0x41)));
        expect(d.carryLength).toBeLessThan(MAX_LINE_BYTES);
      }
      events.push(...d.push(latin1('AAAA\n')), ...d.push(encodeLine(ack)));
      expect(eventLabels(events)).toEqual(['LINE_TOO_LONG', 'A']);
      expect(d.stats.garbageBytes).toBe(4 + 100_000 + 5);
    });

    it('accepts a line of exactly 4096 bytes including LF', () => {
      const head = 'pcF ' + 'A'.repeat(4096 - 14) + ' ';
      const line = latin1(head + crc32(latin1(head)).toString(16).padStart(8, '0') + '\n');
      expect(line.length).toBe(4096);
      expect(eventLabels(decodeAll([line]))).toEqual(['MSG_TOO_LARGE']); // past the line layer
      expect(eventLabels(decodeAll([line.subarray(0, -1), latin1('A\n')]))).toEqual(['LINE_TOO_LONG']);
    });
  });

  describe('fed random or mutated data', () => {
    const valid = [ack, frame, notice].map(encodeLine);

    it('never throws and never holds more than the cap', () => {
      fc.assert(
        fc.property(
          fc.array(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(...valid), fc.uint8Array({ minLength: 4000, maxLength: 5000 })), { maxLength: 8 }),
          (chunks) => {
            const d = new LineDecoder();
            for (const c of chunks) {
              d.push(c);
              expect(d.carryLength).toBeLessThan(MAX_LINE_BYTES);
            }
            d.flush();
            expect(d.carryLength).toBe(0);
          },
        ),
        { numRuns: 300 },
      );
    });

    it('recovers every valid line separated from junk by a newline, however the stream is split', () => {
      const junk = fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((b) => b.map((x) => (x === 0x0a ? 0x20 : x))), // junk without LF
        fc.uint8Array({ maxLength: 200 }), // junk that may contain LF
        fc.constantFrom(latin1('pcA '), latin1('pc'), latin1('\r')),
      );
      fc.assert(
        fc.property(fc.array(fc.tuple(junk, fc.nat(2)), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), (items, cuts) => {
          const msgs = [ack, frame, notice];
          const parts = items.map(([j, i]) => concatBytes(j, latin1('\n'), valid[i] ?? new Uint8Array()));
          const bytes = concatBytes(...parts);
          const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks = [0, ...at].map((s, k) => bytes.subarray(s, at[k] ?? bytes.length));
          expect(messagesOf(decodeAll(chunks))).toEqual(items.map(([, i]) => msgs[i]));
        }),
        { numRuns: 500 },
      );
    });
  });
});
