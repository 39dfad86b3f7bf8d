import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { encodeCbor, type CborValue } from './cbor.js';
import { ProtocolError } from './errors.js';
import { decodeLeaf, encodeLeaf, type LogLeaf } from './leaf.js';
import { codeOf } from './testing.js';

const leaf: LogLeaf = {
  receivedAt: 1764079200123,
  source: 'serial:/dev/ttyUSB0',
  certSha256: new Uint8Array(32).fill(0xab),
  frame: Uint8Array.from([0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40]),
};


const mapOf = (entries: [number, CborValue][]) => encodeCbor(new Map(entries));

describe('encodeLeaf / decodeLeaf', () => {
  it('round-trips byte-identically', () => {
    const data = encodeLeaf(leaf);
    expect(decodeLeaf(data)).toEqual(leaf);
    expect(toHex(encodeLeaf(decodeLeaf(data)))).toBe(toHex(data));
  });

  it('encodes the documented layout (docs/protocol.md vector)', () => {
    expect(toHex(encodeLeaf(leaf))).toBe(
      'a5' + '0001' + '011b0000019abb50677b' + '02' + '73' + toHex(new TextEncoder().encode('serial:/dev/ttyUSB0')) + '035820' + 'ab'.repeat(32) + '0446d28440a04040',
    );
  });

  it('writes the same bytes as the generic deterministic encoder for any valid leaf', () => {
    const anyLeaf = fc.record({
      receivedAt: fc.oneof(fc.integer({ min: 0, max: 0x1_0001 }), fc.constantFrom(0xffff_ffff, 0x1_0000_0000), fc.maxSafeNat()),
      source: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((s) => s.length <= 128),
      certSha256: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      frame: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 30 }), fc.uint8Array({ minLength: 250, maxLength: 768 })),
    });
    fc.assert(
      fc.property(anyLeaf, (l) => {
        const generic = mapOf([
          [0, 1],
          [1, l.receivedAt],
          [2, l.source],
          [3, l.certSha256],
          [4, l.frame],
        ]);
        expect(toHex(encodeLeaf(l))).toBe(toHex(generic));
      }),
      { numRuns: 500 },
    );
  });

  describe('when the leaf is malformed', () => {
    const good: [number, CborValue][] = [
      [0, 1],
      [1, leaf.receivedAt],
      [2, leaf.source],
      [3, leaf.certSha256],
      [4, leaf.frame],
    ];
    const cases: [string, Uint8Array, string][] = [
      ['an unknown version', mapOf(good.map(([k, v]) => [k, k === 0 ? 2 : v])), 'LEAF_MALFORMED'],
      ['a missing field', mapOf(good.slice(0, 4)), 'LEAF_MALFORMED'],
      ['an extra field', mapOf([...good, [5, 0]]), 'LEAF_MALFORMED'],
      ['a short certificate hash', mapOf(good.map(([k, v]) => [k, k === 3 ? new Uint8Array(31) : v])), 'LEAF_MALFORMED'],
      ['a negative receive time', mapOf(good.map(([k, v]) => [k, k === 1 ? -1 : v])), 'LEAF_MALFORMED'],
      ['an empty source', mapOf(good.map(([k, v]) => [k, k === 2 ? '' : v])), 'LEAF_MALFORMED'],
      ['a frame beyond the cap', mapOf(good.map(([k, v]) => [k, k === 4 ? new Uint8Array(769) : v])), 'LEAF_MALFORMED'],
      ['not a map', encodeCbor([1, 2]), 'LEAF_MALFORMED'],
      ['data beyond 1024 bytes', new Uint8Array(1025), 'LEAF_MALFORMED'],
      ['non-deterministic CBOR (non-minimal version)', fromHex('a1' + '1800' + '01'), 'CBOR_NON_MINIMAL'],
    ];
    for (const [what, data, code] of cases) {
      it(`rejects ${what} with ${code}`, () => {
        expect(codeOf(() => decodeLeaf(data))).toBe(code);
      });
    }
  });

  it('fed random or mutated bytes, throws only ProtocolError', () => {
    const valid = encodeLeaf(leaf);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(), fc.integer({ min: 0, max: 255 }), (junk, at, x) => {
        const mutated = Uint8Array.from(valid);
        mutated[at % valid.length] = x;
        for (const input of [junk, mutated]) {
          try {
            decodeLeaf(input);
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
