import { readFileSync } from 'node:fs';
import { Decoder } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { encodeCbor, type CborValue } from './cbor.js';
import { ProtocolError } from './errors.js';
import { ALARM_BITS, ALARM_MASK_V1, FRAME_FIELD_BY_NAME, FRAME_FIELDS, type SohFrame } from './frame-fields.js';
import { decodeFrame, encodeFrame, FRAME_MAX_BYTES } from './frame.js';
import { codeOf } from './testing.js';

interface FrameVector {
  name: string;
  expect: string;
  payload: string;
  frame?: SohFrame;
}
const file = JSON.parse(readFileSync(new URL('../test/vectors/frame.json', import.meta.url), 'utf8')) as { vectors: FrameVector[] };
const valid = file.vectors.filter((v) => v.expect === 'ok');
const invalid = file.vectors.filter((v) => v.expect !== 'ok');
const oracle = new Decoder({ mapsAsObjects: false, useRecords: false });

/** Runs f; returns 'ok' or the ProtocolError code; any other exception fails the test. */
const errorOf = (f: () => unknown): ProtocolError => {
  try {
    f();
  } catch (e) {
    if (e instanceof ProtocolError) return e;
    throw e;
  }
  throw new Error('expected a ProtocolError');
};

const typical = (): SohFrame => structuredClone(valid[1]!.frame!);

describe('FRAME_FIELDS', () => {
  it('lists keys 0..28 in order with unique names', () => {
    expect(FRAME_FIELDS.map((f) => f.key)).toEqual(Array.from({ length: 29 }, (_, i) => i));
    expect(new Set(FRAME_FIELDS.map((f) => f.name)).size).toBe(FRAME_FIELDS.length);
    expect(FRAME_FIELD_BY_NAME.get('current')?.key).toBe(7);
  });

  it('makes keys 0..15 required and 16..28 optional', () => {
    expect(FRAME_FIELDS.filter((f) => f.required).map((f) => f.key)).toEqual(Array.from({ length: 16 }, (_, i) => i));
  });

  it('defines the nine v1 alarm bits and nothing else', () => {
    expect(Object.values(ALARM_BITS).reduce((a, b) => a | b, 0)).toBe(ALARM_MASK_V1);
  });
});

describe('frame vectors (test/vectors/frame.json)', () => {
  it('has positive and negative vectors', () => {
    expect(valid.length).toBeGreaterThanOrEqual(8);
    expect(new Set(invalid.map((v) => v.expect))).toEqual(
      new Set([
        'FRAME_TOO_LARGE', 'FRAME_NOT_MAP', 'FRAME_VERSION', 'FRAME_MISSING_FIELD', 'FRAME_UNKNOWN_FIELD', 'FRAME_FIELD_TYPE',
        'FRAME_FIELD_RANGE', 'CBOR_MAP_KEY', 'CBOR_NON_MINIMAL', 'CBOR_INDEFINITE_LENGTH', 'CBOR_UNSUPPORTED', 'CBOR_INTEGER_RANGE',
        'CBOR_TOO_DEEP', 'CBOR_TRAILING_BYTES', 'CBOR_TRUNCATED', 'CBOR_TOO_LARGE',
      ]),
    );
  });

  describe.each(valid)('valid: $name', (v) => {
    const bytes = fromHex(v.payload);
    it('decodes to the expected frame', () => {
      expect(decodeFrame(bytes)).toEqual(v.frame);
    });
    it('re-encodes to identical bytes', () => {
      expect(toHex(encodeFrame(decodeFrame(bytes)))).toBe(v.payload);
      expect(toHex(encodeFrame(v.frame!))).toBe(v.payload);
    });
    it('reads the same in an independent CBOR decoder (cbor-x)', () => {
      const m = oracle.decode(Buffer.from(bytes)) as Map<number, unknown>;
      const frame = v.frame as unknown as Record<string, unknown>;
      // cbor-x returns integers beyond 32 bits as bigint.
      const num = (x: unknown): unknown => (typeof x === 'bigint' ? Number(x) : x);
      for (const f of FRAME_FIELDS) expect(num(m.get(f.key)), f.name).toEqual(frame[f.name]);
    });
  });

  describe.each(invalid)('invalid: $name', (v) => {
    it(`throws ${v.expect}`, () => {
      expect(codeOf(() => decodeFrame(fromHex(v.payload)))).toBe(v.expect);
    });
  });
});

describe('decodeFrame', () => {
  describe('when a field is out of range', () => {
    it('names the field, the expected range and the value in the message', () => {
      const e = errorOf(() => encodeFrame({ ...typical(), current: 2_000_001 }));
      expect(e.code).toBe('FRAME_FIELD_RANGE');
      expect(e.message).toBe('protocol: frame: field 7 (current) must be an integer in -2000000..2000000, got 2000001');
    });
  });

  describe('when the payload exceeds 512 bytes', () => {
    it('throws FRAME_TOO_LARGE before decoding, even for garbage', () => {
      expect(codeOf(() => decodeFrame(new Uint8Array(FRAME_MAX_BYTES + 1).fill(0xff)))).toBe('FRAME_TOO_LARGE');
      expect(codeOf(() => decodeFrame(new Uint8Array(FRAME_MAX_BYTES).fill(0xff)))).not.toBe('FRAME_TOO_LARGE');
    });
  });

  describe('when the version is 2', () => {
    it('throws FRAME_VERSION even if the rest is unknown to v1', () => {
      expect(codeOf(() => decodeFrame(encodeCbor(new Map<number, CborValue>([[0, 2], [99, 'future']]))))).toBe('FRAME_VERSION');
    });
  });

  describe('when an optional field is present', () => {
    it('returns it; when absent, the property is absent', () => {
      const frame = decodeFrame(encodeFrame({ ...typical(), selfDischarge: 21 }));
      expect(frame.selfDischarge).toBe(21);
      expect('ratedCapacity' in frame).toBe(false);
    });
  });
});

describe('encodeFrame', () => {
  it('omits optional fields that are undefined', () => {
    expect(toHex(encodeFrame({ ...typical(), ratedCapacity: undefined }))).toBe(valid[1]!.payload);
  });

  it('throws FRAME_UNKNOWN_FIELD for a misspelt property', () => {
    expect(codeOf(() => encodeFrame({ ...typical(), ratedCapcity: 1 } as unknown as SohFrame))).toBe('FRAME_UNKNOWN_FIELD');
  });

  it('throws FRAME_MISSING_FIELD for a missing required field', () => {
    const f = typical() as Partial<SohFrame>;
    delete f.firmware;
    expect(codeOf(() => encodeFrame(f as SohFrame))).toBe('FRAME_MISSING_FIELD');
  });

  it('throws FRAME_FIELD_TYPE for a float or a non-number', () => {
    expect(codeOf(() => encodeFrame({ ...typical(), voltage: 52.48 }))).toBe('FRAME_FIELD_TYPE');
    expect(codeOf(() => encodeFrame({ ...typical(), soc: '815' as unknown as number }))).toBe('FRAME_FIELD_TYPE');
    expect(codeOf(() => encodeFrame({ ...typical(), cells: [3300, Number.NaN] }))).toBe('FRAME_FIELD_TYPE');
  });

  it('throws FRAME_FIELD_RANGE for tempMax below tempMin, naming field 9', () => {
    const e = errorOf(() => encodeFrame({ ...typical(), tempMin: 100, tempMax: 99 }));
    expect([e.code, e.message.includes('field 9 (tempMax)')]).toEqual(['FRAME_FIELD_RANGE', true]);
  });

  it('throws FRAME_FIELD_RANGE for a reserved alarm bit', () => {
    expect(codeOf(() => encodeFrame({ ...typical(), alarms: 1 << 9 }))).toBe('FRAME_FIELD_RANGE');
    expect(codeOf(() => encodeFrame({ ...typical(), alarms: 0xffffffff }))).toBe('FRAME_FIELD_RANGE');
  });

  it('throws FRAME_VERSION for v other than 1', () => {
    expect(codeOf(() => encodeFrame({ ...typical(), v: 2 as 1 }))).toBe('FRAME_VERSION');
  });
});

/** Any valid v1 frame. */
const arbFrame: fc.Arbitrary<SohFrame> = fc
  .record(
    Object.fromEntries(
      FRAME_FIELDS.filter((f) => f.key !== 0).map((f) => {
        let arb: fc.Arbitrary<unknown>;
        if (f.kind === 'cells') arb = fc.array(fc.integer({ min: 0, max: 6000 }), { minLength: 1, maxLength: 32 });
        else if (f.name === 'serial') arb = fc.stringMatching(/^[A-Z0-9][A-Z0-9-]{0,31}$/);
        else if (f.name === 'firmware') arb = fc.tuple(fc.nat(9999), fc.nat(9999), fc.nat(9999)).map((t) => t.join('.'));
        else if (f.name === 'alarms') arb = fc.integer({ min: 0, max: ALARM_MASK_V1 });
        else arb = fc.integer({ min: f.min, max: f.max });
        return [f.name, arb];
      }),
    ),
    { requiredKeys: FRAME_FIELDS.filter((f) => f.required && f.key !== 0).map((f) => f.name) },
  )
  .map((r) => {
    const x = r as unknown as SohFrame;
    const [lo, hi] = x.tempMin <= x.tempMax ? [x.tempMin, x.tempMax] : [x.tempMax, x.tempMin];
    return { ...x, v: 1, tempMin: lo, tempMax: hi };
  });

describe('decodeFrame / encodeFrame properties', () => {
  it('round-trips every valid frame, and re-encodes every decoded payload identically', () => {
    fc.assert(
      fc.property(arbFrame, (frame) => {
        const bytes = encodeFrame(frame);
        expect(decodeFrame(bytes)).toEqual(frame);
        expect(encodeFrame(decodeFrame(bytes))).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('returns a frame or throws ProtocolError for random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        codeOf(() => decodeFrame(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it('returns a frame or throws ProtocolError for mutated valid payloads', () => {
    const seeds = valid.map((v) => fromHex(v.payload));
    const arb = fc.record({
      seed: fc.constantFrom(...seeds),
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
      op: fc.constantFrom('set', 'insert', 'delete', 'truncate'),
    });
    fc.assert(
      fc.property(arb, ({ seed, at, byte, op }) => {
        const i = at % seed.length;
        const b = Array.from(seed);
        if (op === 'set') b[i] = byte;
        else if (op === 'insert') b.splice(i, 0, byte);
        else if (op === 'delete') b.splice(i, 1);
        else b.length = i;
        codeOf(() => decodeFrame(Uint8Array.from(b)));
      }),
      { numRuns: 3000 },
    );
  });
});
