import { readFileSync } from 'node:fs';
import { decode as oracleDecode } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { encodeCbor, type CborValue } from './cbor.js';
import { importPublicKey, verifySignature } from './crypto.js';
import { ProtocolError } from './errors.js';
import { errorResponse, isRequestOp, okResponse, parseRequest, parseResult, requestMessage, REQUEST_OPS, type RequestCall } from './message-ops.js';
import { ackMessages, ackRanges, decodeMessage, encodeMessage, MESSAGE_LIMITS, popMessage, type HelloInfo, type Message } from './messages.js';
import { messageJson, toJson } from './wire-testkit.js';
import { codeOf } from './testing.js';

interface Vector {
  name: string;
  expect: string;
  kind?: 'pop' | 'ackRanges';
  type?: string;
  body?: string;
  message?: unknown;
  call?: unknown;
  op?: string;
  result?: unknown;
  alg?: -8 | -7;
  challenge?: string;
  publicKey?: string;
  popMessage?: string;
  signature?: string;
  counters?: number[];
  ranges?: unknown;
}
const file = JSON.parse(readFileSync(new URL('../test/vectors/messages.json', import.meta.url), 'utf8')) as { vectors: Vector[] };


/** Expected typed value, or the error code the typed parser throws. */
function typed(expected: unknown, f: () => unknown): void {
  const err = (expected as { error?: string }).error;
  if (err !== undefined) expect(codeOf(f)).toBe(err);
  else expect(toJson(f())).toEqual(expected);
}

const hello: HelloInfo = {
  version: 1,
  serial: 'PACK-0001',
  model: 'PC-48V',
  firmware: '1.0',
  alg: -8,
  publicKey: new Uint8Array(32).fill(7),
  chain: [Uint8Array.of(0x30, 0x00)],
  nextCounter: 10,
  unacked: 2,
};

describe('message vectors (test/vectors/messages.json)', () => {
  for (const v of file.vectors) {
    it(`${v.name} → ${v.expect}`, () => {
      if (v.kind === 'pop') {
        const challenge = fromHex(v.challenge ?? '');
        const pk = fromHex(v.publicKey ?? '');
        if (v.expect !== 'ok') {
          expect(codeOf(() => popMessage(challenge, pk))).toBe(v.expect);
          return;
        }
        const m = popMessage(challenge, pk);
        expect(toHex(m)).toBe(v.popMessage);
        const key = importPublicKey(v.alg === -8 ? 'Ed25519' : 'ES256', pk);
        const sig = fromHex(v.signature ?? '');
        expect(verifySignature(key, m, sig)).toBe(true);
        const wrong = Uint8Array.from(m);
        wrong[20] = (wrong[20] ?? 0) ^ 1; // another challenge must not verify
        expect(verifySignature(key, wrong, sig)).toBe(false);
        return;
      }
      if (v.kind === 'ackRanges') {
        if (v.expect !== 'ok') {
          expect(codeOf(() => ackRanges(v.counters ?? []))).toBe(v.expect);
          return;
        }
        expect(ackRanges(v.counters ?? [])).toEqual(v.ranges);
        return;
      }
      const body = fromHex(v.body ?? '');
      const type = v.type ?? '';
      if (v.expect !== 'ok') {
        expect(codeOf(() => decodeMessage(type, body))).toBe(v.expect);
        return;
      }
      const msg = decodeMessage(type, body);
      expect(messageJson(msg)).toEqual(v.message);
      const again = encodeMessage(msg);
      expect(again.type).toBe(type);
      expect(toHex(again.body)).toBe(v.body);
      if (v.call !== undefined && msg.type === 'request') typed(v.call, () => parseRequest(msg));
      if (v.result !== undefined && msg.type === 'response') {
        const op = v.op ?? '';
        expect(isRequestOp(op)).toBe(true);
        if (isRequestOp(op)) typed(v.result, () => parseResult(op, msg));
      }
    });
  }

  it('covers every message type and every envelope error code', () => {
    const seen = new Set(file.vectors.filter((v) => v.kind === undefined).map((v) => (v.expect === 'ok' ? v.type : v.expect)));
    for (const x of ['F', 'A', 'H', 'Q', 'R', 'E', 'MSG_TYPE', 'MSG_TOO_LARGE', 'MSG_MALFORMED']) expect(seen).toContain(x);
  });
});

describe('decodeMessage', () => {
  describe('when a field is outside its schema', () => {
    it('throws MSG_MALFORMED naming the field and what was expected', () => {
      const body = encodeCbor(new Map<number, CborValue>([[1, 1], [2, 'x'.repeat(33)], [3, 'm'], [4, 'f'], [5, null], [6, null], [7, []], [8, 0], [9, 0]]));
      expect(() => decodeMessage('H', body)).toThrow(/hello field 2 \(pack serial\): expected text of at most 32 bytes, got 33/);
    });
  });

  describe('when the body exceeds its cap', () => {
    it('throws MSG_TOO_LARGE before decoding any CBOR', () => {
      expect(codeOf(() => decodeMessage('A', new Uint8Array(MESSAGE_LIMITS.maxBody + 1)))).toBe('MSG_TOO_LARGE');
      expect(codeOf(() => decodeMessage('A', new Uint8Array(MESSAGE_LIMITS.maxBody)))).toBe('CBOR_TRAILING_BYTES');
    });
  });

  it('is read by an independent CBOR decoder (cbor-x) as the same structure', () => {
    const { body } = encodeMessage({ type: 'hello', ...hello });
    const m = oracleDecode(Buffer.from(body)) as Record<number, unknown>;
    expect(m[2]).toBe('PACK-0001');
    expect(m[5]).toBe(-8);
    expect(m[8]).toBe(10);
  });

  describe('fed random or mutated bodies', () => {
    const valid: Message[] = [
      { type: 'hello', ...hello },
      { type: 'ack', ranges: [[1, 5], [9, 9]] },
      requestMessage(5, { op: 'setchain', chain: [Uint8Array.of(1, 2)] }),
      okResponse(5, { op: 'pubkey', alg: -8, publicKey: new Uint8Array(32) }),
      { type: 'error', code: 'X', message: 'y' },
    ];
    const encoded = valid.map(encodeMessage);

    it('returns a message or throws ProtocolError, and what it accepts re-encodes to the same bytes', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...encoded),
          fc.uint8Array({ maxLength: 40 }),
          fc.nat(),
          fc.integer({ min: 0, max: 255 }),
          fc.constantFrom('F', 'A', 'H', 'Q', 'R', 'E', 'Z'),
          ({ type, body }, junk, at, x, letter) => {
            const mutated = Uint8Array.from(body);
            mutated[at % body.length] = x;
            for (const [t, input] of [[type, mutated], [type, body.subarray(0, at % body.length)], [letter, junk]] as const) {
              let msg: Message;
              try {
                msg = decodeMessage(t, input);
              } catch (e) {
                expect(e).toBeInstanceOf(ProtocolError);
                continue;
              }
              expect(toHex(encodeMessage(msg).body)).toBe(toHex(input));
            }
          },
        ),
        { numRuns: 3000 },
      );
    });
  });
});

describe('encodeMessage', () => {
  it('refuses to emit what the decoder would reject (MSG_MALFORMED)', () => {
    expect(codeOf(() => encodeMessage({ type: 'hello', ...hello, serial: 'x'.repeat(33) }))).toBe('MSG_MALFORMED');
    expect(codeOf(() => encodeMessage({ type: 'ack', ranges: [[1, 5], [6, 7]] }))).toBe('MSG_MALFORMED');
    expect(codeOf(() => encodeMessage({ type: 'error', code: 'bad code', message: '' }))).toBe('MSG_MALFORMED');
  });

  it('throws MSG_TOO_LARGE for a frame over 768 bytes', () => {
    expect(codeOf(() => encodeMessage({ type: 'frame', cose: new Uint8Array(769) }))).toBe('MSG_TOO_LARGE');
  });

  it('throws CBOR_ENCODE for a non-integer number', () => {
    expect(codeOf(() => encodeMessage({ type: 'request', id: 1.5, op: 'hello', args: new Map() }))).toBe('CBOR_ENCODE');
  });

  it('copies the frame bytes (the caller may reuse its buffer)', () => {
    const cose = Uint8Array.of(1, 2, 3);
    const { body } = encodeMessage({ type: 'frame', cose });
    cose[0] = 9;
    expect([...body]).toEqual([1, 2, 3]);
  });
});

describe('ackRanges', () => {
  it('coalesces, sorts and deduplicates counters into canonical ranges that the decoder accepts', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 100 }), (counters) => {
        const ranges = ackRanges(counters);
        const covered = new Set(ranges.flatMap(([lo, hi]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i)));
        expect([...covered].sort((a, b) => a - b)).toEqual([...new Set(counters)].sort((a, b) => a - b));
        for (const m of ackMessages(counters)) {
          expect(m.ranges.length).toBeLessThanOrEqual(32);
          expect(codeOf(() => encodeMessage(m))).toBe('ok');
        }
      }),
      { numRuns: 500 },
    );
  });

  describe('when there are more than 32 ranges', () => {
    it('ackMessages splits them into messages of at most 32 ranges', () => {
      const counters = Array.from({ length: 70 }, (_, i) => i * 2);
      expect(ackMessages(counters).map((m) => m.ranges.length)).toEqual([32, 32, 6]);
    });
  });

  describe('when a counter is not an unsigned safe integer', () => {
    it('throws MSG_MALFORMED', () => {
      for (const c of [-1, 1.5, 2 ** 53, Number.NaN]) expect(codeOf(() => ackRanges([c]))).toBe('MSG_MALFORMED');
    });
  });
});

describe('popMessage', () => {
  it('can never be mistaken for a COSE Sig_structure (which starts 0x84 0x6a "Signature1")', () => {
    const m = popMessage(new Uint8Array(32), new Uint8Array(32));
    expect(m[0]).toBe(0x70);
    expect(m.length).toBe(16 + 1 + 32 + 32);
  });

  it('throws MSG_MALFORMED for a public key that is neither 32 nor 65 bytes', () => {
    expect(codeOf(() => popMessage(new Uint8Array(32), new Uint8Array(33)))).toBe('MSG_MALFORMED');
  });
});

describe('requests and responses', () => {
  const calls: RequestCall[] = [
    { op: 'hello' },
    { op: 'keygen', alg: -7 },
    { op: 'keygen', alg: -8, force: false },
    { op: 'pubkey' },
    { op: 'prove', challenge: new Uint8Array(32).fill(1) },
    { op: 'setchain', chain: [Uint8Array.of(0x30)] },
    { op: 'selftest' },
    { op: 'reboot' },
  ];

  it('parseRequest gives back every call requestMessage built', () => {
    for (const call of calls) {
      const msg = decodeMessage('Q', encodeMessage(requestMessage(42, call)).body);
      expect(msg.type === 'request' && parseRequest(msg)).toEqual(call);
    }
    expect(new Set(calls.map((c) => c.op))).toEqual(new Set(REQUEST_OPS));
  });

  describe('when the op is unknown', () => {
    it('passes the envelope and parseRequest throws MSG_MALFORMED (the device answers UNKNOWN_OP)', () => {
      const msg = decodeMessage('Q', encodeMessage({ type: 'request', id: 1, op: 'format_disk', args: new Map() }).body);
      expect(msg.type === 'request' && isRequestOp(msg.op)).toBe(false);
      expect(codeOf(() => msg.type === 'request' && parseRequest(msg))).toBe('MSG_MALFORMED');
    });
  });

  describe('parseResult', () => {
    it('throws MSG_MALFORMED for an error response', () => {
      expect(codeOf(() => parseResult('pubkey', errorResponse(1, 'NO_KEY', 'no key')))).toBe('MSG_MALFORMED');
    });

    it('returns the hello info of a hello response', () => {
      const r = parseResult('hello', okResponse(1, { op: 'hello', hello }));
      expect(r).toEqual({ op: 'hello', hello });
    });
  });

  it('errorResponse throws MSG_MALFORMED for status "ok" or a lower-case code', () => {
    expect(codeOf(() => errorResponse(1, 'ok', 'x'))).toBe('MSG_MALFORMED');
    expect(codeOf(() => errorResponse(1, 'nope', 'x'))).toBe('MSG_MALFORMED');
  });
});
