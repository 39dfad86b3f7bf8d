import { Encoder } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { byteStringHead, CborTag, decodeCbor, encodeCbor, headLength, writeHead, type CborValue } from './cbor.js';
import { ProtocolError } from './errors.js';
import { codeOf } from './testing.js';

const hex = (h: string) => fromHex(h);

// RFC 8949 Appendix A examples that fall inside the subset (deterministic form).
const RFC8949_EXAMPLES: [string, CborValue][] = [
  ['00', 0],
  ['01', 1],
  ['0a', 10],
  ['17', 23],
  ['1818', 24],
  ['1819', 25],
  ['1864', 100],
  ['1903e8', 1000],
  ['1a000f4240', 1000000],
  ['1b000000e8d4a51000', 1000000000000],
  ['20', -1],
  ['29', -10],
  ['3863', -100],
  ['3903e7', -1000],
  ['f4', false],
  ['f5', true],
  ['f6', null],
  ['40', new Uint8Array()],
  ['4401020304', Uint8Array.from([1, 2, 3, 4])],
  ['60', ''],
  ['6161', 'a'],
  ['6449455446', 'IETF'],
  ['62225c', '"\\'],
  ['62c3bc', '\u00fc'],
  ['63e6b0b4', '\u6c34'],
  ['64f0908591', '\u{10151}'],
  ['80', []],
  ['83010203', [1, 2, 3]],
  ['8301820203820405', [1, [2, 3], [4, 5]]],
  ['98190102030405060708090a0b0c0d0e0f101112131415161718181819', Array.from({ length: 25 }, (_, i) => i + 1)],
  ['a0', new Map()],
  ['a201020304', new Map([[1, 2], [3, 4]])],
  ['a26161016162820203', new Map<string, CborValue>([['a', 1], ['b', [2, 3]]])],
  ['826161a161626163', ['a', new Map([['b', 'c']])]],
  ['d74401020304', new CborTag(23, Uint8Array.from([1, 2, 3, 4]))],
];

describe('writeHead / headLength / byteStringHead', () => {
  it('write the shortest head at the boundaries of every argument size, as encodeCbor does', () => {
    const args = [0, 23, 24, 255, 256, 65535, 65536, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER];
    for (const n of args) {
      const out = new Uint8Array(12).fill(0xee);
      const end = writeHead(out, 2, 0, n);
      expect(end - 2).toBe(headLength(n));
      expect(toHex(out.subarray(2, end))).toBe(toHex(encodeCbor(n)));
      expect(out[end]).toBe(0xee);
      expect(toHex(byteStringHead(n))).toBe(toHex(out.subarray(2, end).map((b, i) => (i === 0 ? b | 0x40 : b))));
    }
    expect(toHex(byteStringHead(300))).toBe('59012c');
  });
});

describe('encodeCbor / decodeCbor', () => {
  describe('with the RFC 8949 Appendix A examples inside the subset', () => {
    for (const [h, v] of RFC8949_EXAMPLES) {
      it(`round-trips ${h}`, () => {
        expect(toHex(encodeCbor(v))).toBe(h);
        expect(decodeCbor(hex(h))).toEqual(v);
      });
    }
  });

  describe('when the input is not in the deterministic subset', () => {
    const cases: [string, string, string][] = [
      ['a one-byte head below 24', '1817', 'CBOR_NON_MINIMAL'],
      ['a two-byte head below 256', '190017', 'CBOR_NON_MINIMAL'],
      ['a four-byte head below 65536', '1a0000ffff', 'CBOR_NON_MINIMAL'],
      ['an eight-byte head below 2^32', '1b00000000ffffffff', 'CBOR_NON_MINIMAL'],
      ['an integer beyond 2^53 - 1', '1b0020000000000000', 'CBOR_INTEGER_RANGE'],
      ['a negative integer beyond -(2^53 - 1)', '3b001fffffffffffff', 'CBOR_INTEGER_RANGE'],
      ['an indefinite-length array', '9f01ff', 'CBOR_INDEFINITE_LENGTH'],
      ['an indefinite-length byte string', '5f4101ff', 'CBOR_INDEFINITE_LENGTH'],
      ['a half float', 'f93c00', 'CBOR_UNSUPPORTED'],
      ['a double float', 'fb3ff199999999999a', 'CBOR_UNSUPPORTED'],
      ['undefined', 'f7', 'CBOR_UNSUPPORTED'],
      ['a reserved additional info', '1c', 'CBOR_UNSUPPORTED'],
      ['map keys out of order', 'a203040102', 'CBOR_MAP_KEY'],
      ['a duplicate map key', 'a201020103', 'CBOR_MAP_KEY'],
      ['a byte-string map key', 'a1410001', 'CBOR_MAP_KEY'],
      ['a truncated byte string', '4401', 'CBOR_TOO_LARGE'],
      ['an array longer than the input', '9a00010000', 'CBOR_TOO_LARGE'],
      ['a truncated head', '19', 'CBOR_TRUNCATED'],
      ['an array longer than what remains', '8301', 'CBOR_TOO_LARGE'],
      ['a truncated item inside an array', '821901', 'CBOR_TRUNCATED'],
      ['empty input', '', 'CBOR_TRUNCATED'],
      ['trailing bytes', '0000', 'CBOR_TRAILING_BYTES'],
      ['invalid UTF-8 text', '62c328', 'CBOR_INVALID_UTF8'],
      ['nesting beyond the cap', '81'.repeat(17) + '00', 'CBOR_TOO_DEEP'],
    ];
    for (const [what, h, code] of cases) {
      it(`rejects ${what} with ${code}`, () => {
        expect(codeOf(() => decodeCbor(hex(h)))).toBe(code);
      });
    }

    it('accepts nesting up to the cap', () => {
      expect(codeOf(() => decodeCbor(hex('81'.repeat(16) + '00')))).toBe('ok');
      expect(codeOf(() => decodeCbor(hex('81'.repeat(4) + '00'), { maxDepth: 3 }))).toBe('CBOR_TOO_DEEP');
    });

    it('does not allocate for a length it has not got (2^32 - 1 element array in 5 bytes)', () => {
      expect(codeOf(() => decodeCbor(hex('9affffffff')))).toBe('CBOR_TOO_LARGE');
    });
  });

  describe('when encoding values outside the subset', () => {
    it('throws CBOR_ENCODE for a float', () => {
      expect(codeOf(() => encodeCbor(1.5))).toBe('CBOR_ENCODE');
    });
    it('throws CBOR_ENCODE for an unsafe integer', () => {
      expect(codeOf(() => encodeCbor(2 ** 53))).toBe('CBOR_ENCODE');
    });
    it('sorts map keys into deterministic order whatever the insertion order', () => {
      const m = new Map<string | number, CborValue>([['b', 1], [10, 2], [-1, 3], ['a', 4], [1, 5]]);
      expect(toHex(encodeCbor(m))).toBe('a5' + '0105' + '0a02' + '2003' + '616104' + '616201');
    });
  });

  describe('against cbor-x as an independent oracle', () => {
    const oracle = new Encoder({ useRecords: false, mapsAsObjects: false });
    const arbValue: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.maxSafeInteger(),
        fc.string(),
        fc.uint8Array({ maxLength: 40 }),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('v'), { maxLength: 4 }),
        fc
          .uniqueArray(fc.tuple(fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.string({ maxLength: 4 })), tie('v')), {
            maxLength: 4,
            selector: ([k]) => k,
          })
          .map((e) => new Map(e)),
      ),
    })).v;

    it('cbor-x decodes what we encode to the same value', () => {
      fc.assert(
        fc.property(arbValue, (v) => {
          const bytes = encodeCbor(v);
          expect(normalise(oracle.decode(Buffer.from(bytes)))).toEqual(normalise(v));
          expect(decodeCbor(bytes)).toEqual(v);
          expect(encodeCbor(decodeCbor(bytes))).toEqual(bytes);
        }),
        { numRuns: 300 },
      );
    });

    it('whatever we accept, cbor-x reads the same', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
          let v: CborValue;
          try {
            v = decodeCbor(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError);
            return;
          }
          // cbor-x gives meaning to tags (dates, ...); the raw-structure comparison skips them.
          if (!hasTag(v)) expect(normalise(oracle.decode(Buffer.from(bytes)) as unknown)).toEqual(normalise(v));
        }),
        { numRuns: 5000 },
      );
    });
  });

  describe('fed random or mutated bytes', () => {
    it('returns a value or throws ProtocolError, never another exception', () => {
      const valid = encodeCbor([1, new Map<string | number, CborValue>([[1, 'x'], ['k', Uint8Array.of(1, 2)]]), new CborTag(18, [-5, null])]);
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 32 }), fc.nat(valid.length), fc.integer({ min: 0, max: 255 }), (junk, at, x) => {
          const mutated = Uint8Array.from(valid);
          mutated[at % valid.length] = x;
          for (const input of [junk, mutated, mutated.subarray(0, at)]) {
            try {
              decodeCbor(input);
            } catch (e) {
              expect(e).toBeInstanceOf(ProtocolError);
            }
          }
        }),
        { numRuns: 3000 },
      );
    });
  });
});

/** Maps cbor-x's and our representations to one comparable shape. */
function normalise(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Uint8Array) return { bytes: toHex(v) };
  if (Array.isArray(v)) return v.map(normalise);
  if (v instanceof Map) {
    const entries = [...v.entries()].map(([k, x]) => [JSON.stringify(k), normalise(x)] as const);
    return { map: entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) };
  }
  if (v instanceof CborTag) return { tag: v.tag, value: normalise(v.value) };
  if (v !== null && typeof v === 'object' && 'tag' in v && 'value' in v) {
    const t = v as { tag: number; value: unknown };
    return { tag: t.tag, value: normalise(t.value) };
  }
  return v;
}

function hasTag(v: CborValue): boolean {
  if (v instanceof CborTag) return true;
  if (Array.isArray(v)) return v.some(hasTag);
  if (v instanceof Map) return [...v.values()].some(hasTag);
  return false;
}
