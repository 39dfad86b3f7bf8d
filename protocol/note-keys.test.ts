import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from './bytes.js';
import {
  cosignatureMessage,
  cosignatureTimestamp,
  createNoteVerifier,
  formatVerifierKey,
  isValidKeyName,
  parseVerifierKey,
} from './note-keys.js';
import { createCosigner, createNoteSigner, formatSignerKey, parseSignerKey, signerFromKey, verifierOf } from './note-signer.js';
import { codeOf } from './testing.js';

// Published keys from golang/mod sumdb/note/note_test.go.
const PETER_V = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_S = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';


/** Go's TestNewVerifier / TestNewSigner manglings: every proper substring, every byte + 1. */
function manglings(key: string): string[] {
  const b = Buffer.from(key);
  const out: string[] = [];
  for (let i = 0; i <= b.length; i++) {
    for (let j = i + 1; j <= b.length; j++) if (i !== 0 || j !== b.length) out.push(b.subarray(i, j).toString('latin1'));
  }
  for (let i = 0; i < b.length; i++) {
    const c = Buffer.from(b);
    c[i] = ((c[i] ?? 0) + 1) & 0xff;
    out.push(c.toString('latin1'));
  }
  return out;
}

describe('parseVerifierKey', () => {
  describe('when the Go vector key is mangled in any way (golang/mod TestNewVerifier)', () => {
    it('throws NOTE_KEY for every substring and every incremented byte', () => {
      const bad = manglings(PETER_V).filter((k) => codeOf(() => parseVerifierKey(k)) !== 'NOTE_KEY');
      // Incrementing a hex digit's case-insensitive twin is the only way to stay valid: none exist here.
      expect(bad).toEqual([]);
    });
  });

  describe('when fed arbitrary strings', () => {
    it('returns a verifier or throws NOTE_KEY', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string({ maxLength: 120 }), fc.string({ unit: 'binary', maxLength: 80 }), fc.constant('a+00000000+' + 'A'.repeat(2000))), (s) => {
          expect(['ok', 'NOTE_KEY']).toContain(codeOf(() => parseVerifierKey(s)));
        }),
        { numRuns: 1000 },
      );
    });
  });
});

describe('parseSignerKey', () => {
  describe('when the Go vector key is mangled in any way (golang/mod TestNewSigner)', () => {
    it('throws NOTE_KEY for every substring and every incremented byte', () => {
      const bad = manglings(PETER_S).filter((k) => codeOf(() => parseSignerKey(k)) !== 'NOTE_KEY');
      expect(bad).toEqual([]);
    });
  });

  describe('when fed arbitrary strings after the prefix', () => {
    it('returns a key or throws NOTE_KEY', () => {
      fc.assert(
        fc.property(fc.string({ maxLength: 120 }), (s) => {
          expect(['ok', 'NOTE_KEY']).toContain(codeOf(() => parseSignerKey('PRIVATE+KEY+' + s)));
        }),
        { numRuns: 500 },
      );
    });
  });

  it('keeps key material out of error messages', () => {
    const secret = PETER_S.slice(PETER_S.lastIndexOf('+') + 1);
    try {
      parseSignerKey(PETER_S.replace('c74f20a3', 'c74f20a4'));
    } catch (e) {
      expect((e as Error).message).not.toContain(secret);
    }
    expect.assertions(1);
  });
});

describe('key round trips', () => {
  it('formats and parses its own keys for both signature types', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constantFrom('ed25519' as const, 'cosignature' as const), (seed, kind) => {
        const skey = formatSignerKey('example.com/k', seed, kind);
        const parsed = parseSignerKey(skey);
        expect(parsed.kind).toBe(kind);
        expect(Buffer.from(parsed.seed).equals(Buffer.from(seed))).toBe(true);
        const signer = kind === 'ed25519' ? createNoteSigner('example.com/k', seed) : createCosigner('example.com/k', seed, () => 1);
        const vkey = formatVerifierKey('example.com/k', signer.publicKey, kind);
        const v = parseVerifierKey(vkey);
        expect([v.name, v.keyHash, v.kind]).toEqual([signer.name, signer.keyHash, signer.kind]);
        expect(parsed.keyHash).toBe(signer.keyHash);
      }),
      { numRuns: 50 },
    );
  });
});

describe('createCosigner', () => {
  it('signs timestamp ‖ Ed25519(cosignature/v1 message) with the clock read at signing time', () => {
    let now = 1_700_000_000;
    const seed = new Uint8Array(32).fill(7);
    const c = createCosigner('w.example/1', seed, () => now);
    const v = verifierOf(c);
    const body = utf8('o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n');
    const s1 = c.sign(body);
    now += 5;
    const s2 = c.sign(body);
    expect(s1.length).toBe(72);
    expect([cosignatureTimestamp(s1), cosignatureTimestamp(s2)]).toEqual([1_700_000_000, 1_700_000_005]);
    expect(v.verify(body, s1) && v.verify(body, s2)).toBe(true);
    // The Ed25519 part is a plain signature over the cosignature message (tlog-cosignature).
    const plain = createNoteVerifier('w.example/1', c.publicKey, 'ed25519');
    expect(plain.verify(cosignatureMessage(1_700_000_000, body), s1.subarray(8))).toBe(true);
    expect(v.verify(utf8('o\n2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n'), s1)).toBe(false);
  });

  describe('when the clock returns a non-integer', () => {
    it('fails an invariant', () => {
      const c = createCosigner('w', new Uint8Array(32), () => 1.5);
      expect(() => c.sign(utf8('x\n'))).toThrow(/invariant/);
    });
  });
});

describe('signerFromKey', () => {
  it('makes an Ed25519 signer from a 0x01 key whose key ID matches the Go vector', () => {
    expect(signerFromKey(PETER_S).keyHash).toBe(0xc74f20a3);
  });
  describe('when a 0x04 key has no clock', () => {
    it('throws NOTE_KEY', () => {
      const skey = formatSignerKey('w', new Uint8Array(32), 'cosignature');
      expect(codeOf(() => signerFromKey(skey))).toBe('NOTE_KEY');
      expect(signerFromKey(skey, () => 0).kind).toBe('cosignature');
    });
  });
});

describe('createNoteSigner / createNoteVerifier arguments', () => {
  it('throw NOTE_KEY for a bad name or a key that is not 32 bytes', () => {
    expect(codeOf(() => createNoteSigner('a b', new Uint8Array(32)))).toBe('NOTE_KEY');
    expect(codeOf(() => createNoteSigner('a', new Uint8Array(31)))).toBe('NOTE_KEY');
    expect(codeOf(() => createNoteVerifier('a+b', new Uint8Array(32), 'ed25519'))).toBe('NOTE_KEY');
    expect(codeOf(() => createNoteVerifier('a', new Uint8Array(33), 'ed25519'))).toBe('NOTE_KEY');
  });
});

describe('isValidKeyName', () => {
  it('rejects empty names, Unicode spaces, "+" and control characters', () => {
    for (const bad of ['', 'a b', 'a\u00a0b', 'a\u2003b', 'a\u3000', 'a+b', 'a\u0001', '\ud800x']) expect(isValidKeyName(bad)).toBe(false);
    for (const good of ['a', 'example.com/log42', 'packchain.gateway/line-3', 'oid/1.3.6.1.4.1', 'é—ü']) expect(isValidKeyName(good)).toBe(true);
  });
});
