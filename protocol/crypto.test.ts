import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from './bytes.js';
import { sha256, sha256Streamed } from './crypto.js';
import { sha256Portable } from './crypto-portable.js';

describe('sha256', () => {
  it('matches the FIPS 180-2 test vectors, whole and split into parts', () => {
    expect(toHex(sha256())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(toHex(sha256(utf8('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHex(sha256(utf8('a'), new Uint8Array(0), utf8('bc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('gives the streamed and the portable digest for any parts, short or beyond the one-shot size', () => {
    const parts = fc.array(fc.oneof(fc.uint8Array({ maxLength: 70 }), fc.uint8Array({ minLength: 1000, maxLength: 3000 })), { maxLength: 4 });
    fc.assert(
      fc.property(parts, (ps) => {
        const whole = Uint8Array.from(ps.flatMap((p) => [...p]));
        const d = sha256(...ps);
        expect(toHex(d)).toBe(toHex(sha256Streamed(ps)));
        expect(toHex(d)).toBe(toHex(sha256Portable(whole)));
      }),
      { numRuns: 300 },
    );
  });

  it('returns a plain Uint8Array that owns its 32-byte buffer and is not overwritten by later calls', () => {
    const a = sha256(utf8('x'), utf8('y'));
    const b = sha256(utf8('xy'));
    expect(Object.getPrototypeOf(a)).toBe(Uint8Array.prototype);
    expect(Object.getPrototypeOf(b)).toBe(Uint8Array.prototype);
    expect(a.buffer.byteLength).toBe(32);
    expect(b.buffer.byteLength).toBe(32);
    const before = toHex(a);
    sha256(new Uint8Array(64).fill(9), new Uint8Array(1));
    expect(toHex(a)).toBe(before);
    expect(toHex(a)).toBe(toHex(b));
  });
});
