import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromBase64, fromHex, toHex, utf8 } from './bytes.js';
import { cosignatureMessage, cosignatureTimestamp, formatVerifierKey, parseVerifierKey, type NoteKeyKind } from './note-keys.js';
import { createCosigner, createNoteSigner, formatSignerKey, parseSignerKey, signerFromKey, verifierOf } from './note-signer.js';
import { MAX_NOTE_SIGNATURES, addSignatures, openNote, parseNote, signNote } from './note.js';
import { codeOf } from './testing.js';

interface Vector {
  name: string;
  kind: string;
  expect: string;
  [k: string]: unknown;
}
const { vectors } = JSON.parse(readFileSync(new URL('../test/vectors/note.json', import.meta.url), 'utf8')) as { vectors: Vector[] };

const hex8 = (x: number): string => x.toString(16).padStart(8, '0');
const str = (x: unknown): string => x as string;


describe('note vectors (test/vectors/note.json)', () => {
  for (const v of vectors) {
    it(`${v.name} → ${v.expect}`, () => {
      switch (v.kind) {
        case 'verifierKey': {
          expect(codeOf(() => parseVerifierKey(str(v.vkey)))).toBe(v.expect);
          if (v.expect !== 'ok') break;
          const k = parseVerifierKey(str(v.vkey));
          expect([k.name, hex8(k.keyHash), k.kind]).toEqual([v.keyName, v.keyHash, v.keyKind]);
          // Round trip: formatting the decoded key gives the (canonical) string back.
          expect(formatVerifierKey(str(v.keyName), fromHex(str(v.publicKey)), v.keyKind as NoteKeyKind)).toBe(v.canonical ?? v.vkey);
          break;
        }
        case 'signerKey': {
          expect(codeOf(() => parseSignerKey(str(v.skey)))).toBe(v.expect);
          if (v.expect !== 'ok') break;
          const k = parseSignerKey(str(v.skey));
          expect([k.name, hex8(k.keyHash), k.kind]).toEqual([v.keyName, v.keyHash, v.keyKind]);
          expect(formatSignerKey(k.name, k.seed, k.kind)).toBe(v.skey);
          const s = signerFromKey(str(v.skey), () => 0);
          expect(toHex(s.publicKey)).toBe(v.publicKey);
          expect(formatVerifierKey(s.name, s.publicKey, s.kind)).toBe(v.vkey);
          break;
        }
        case 'sign': {
          const signer = signerFromKey(str(v.skey));
          expect(codeOf(() => signNote(str(v.text), [signer]))).toBe(v.expect);
          // Ed25519 is deterministic: byte-identical to Go's note.Sign.
          if (v.expect === 'ok') expect(signNote(str(v.text), [signer])).toBe(v.signed);
          break;
        }
        case 'open': {
          const note = typeof v.noteHex === 'string' ? fromHex(v.noteHex) : str(v.note);
          const verifiers = (v.verifierKeys as string[]).map((k) => parseVerifierKey(k));
          expect(codeOf(() => openNote(note, verifiers))).toBe(v.expect);
          if (v.expect !== 'ok') break;
          const opened = openNote(note, verifiers);
          expect(opened.text).toBe(v.text);
          expect(opened.sigs.map((s) => ({ name: s.name, keyHash: hex8(s.keyHash), verified: s.verified, kind: s.kind, ...(s.timestamp === undefined ? {} : { timestamp: s.timestamp }) }))).toEqual(v.sigs);
          break;
        }
        case 'parse': {
          const parsed = parseNote(str(v.note));
          expect(parsed.text).toBe(v.text);
          const want = v.sigs as { name: string; keyHash: string; cosignatureTimestamp?: number }[];
          expect(parsed.sigs.map((s) => ({ name: s.name, keyHash: hex8(s.keyHash) }))).toEqual(want.map(({ name, keyHash }) => ({ name, keyHash })));
          want.forEach((w, i) => {
            if (w.cosignatureTimestamp !== undefined) expect(cosignatureTimestamp(parsed.sigs[i]!.signature)).toBe(w.cosignatureTimestamp);
          });
          // Round trip: a parsed note re-assembles to the same bytes.
          expect(addSignatures(str(v.note), [])).toBe(v.note);
          break;
        }
        case 'cosignatureTimestamp':
          expect(cosignatureTimestamp(fromBase64(str(v.base64), 'NOTE_MALFORMED').subarray(4))).toBe(v.timestamp);
          break;
        case 'cosignatureMessage':
          expect(Buffer.from(cosignatureMessage(v.timestamp as number, utf8(str(v.body)))).toString()).toBe(v.message);
          break;
        default:
          throw new Error(`unknown vector kind ${v.kind}`);
      }
    });
  }
});

const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_V = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const alice = createNoteSigner('alice.example/log', new Uint8Array(32).fill(1));
const bob = createNoteSigner('bob.example/log', new Uint8Array(32).fill(2));
const witness = createCosigner('witness.example/w', new Uint8Array(32).fill(3), () => 1_767_225_600);

describe('interoperability with Go sumdb/note key strings', () => {
  it('a note we sign with a fresh key verifies with its vkey string, parsed as Go would', () => {
    const vkey = formatVerifierKey(alice.name, alice.publicKey);
    // base64(0x01 ‖ 32-byte key): 44 characters, the first two encode the type byte 0x01.
    expect(vkey).toMatch(/^alice\.example\/log\+[0-9a-f]{8}\+A[Q-Za-f][A-Za-z0-9+/]{42}$/);
    const opened = openNote(signNote(TEXT, [alice]), [parseVerifierKey(vkey)]);
    expect(opened.sigs).toHaveLength(1);
    expect(opened.sigs[0]?.verified).toBe(true);
  });

  it('a note we sign with the Go vector signer key verifies with the Go vector verifier key', () => {
    const note = signNote('packchain\n', [signerFromKey('PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz')]);
    expect(openNote(note, [parseVerifierKey(PETER_V)]).sigs[0]?.verified).toBe(true);
  });
});

describe('signNote', () => {
  it('writes one line per distinct signer, in order', () => {
    const note = signNote('t\n', [alice, bob, alice]);
    expect(parseNote(note).sigs.map((s) => s.name)).toEqual([alice.name, bob.name]);
  });
  describe('when there is no signer', () => {
    it('throws NOTE_KEY', () => {
      expect(codeOf(() => signNote('t\n', []))).toBe('NOTE_KEY');
    });
  });
  describe('when a signer has a bad name or key ID', () => {
    it('throws NOTE_KEY', () => {
      expect(codeOf(() => signNote('t\n', [{ ...alice, name: 'a b' }]))).toBe('NOTE_KEY');
      expect(codeOf(() => signNote('t\n', [{ ...alice, keyHash: 2 ** 32 }]))).toBe('NOTE_KEY');
    });
  });
  describe('when the text has a lone surrogate', () => {
    it('throws NOTE_MALFORMED', () => {
      expect(codeOf(() => signNote('a\ud800\n', [alice]))).toBe('NOTE_MALFORMED');
    });
  });
  it('keeps blank lines inside the text (the last blank line separates)', () => {
    const note = signNote('a\n\nb\n\n', [alice]);
    expect(openNote(note, [verifierOf(alice)]).text).toBe('a\n\nb\n\n');
  });
});

describe('addSignatures', () => {
  const signed = signNote(TEXT, [alice]);

  it('appends a witness cosignature after the existing lines, which stay byte-identical', () => {
    const cosigned = addSignatures(signed, [witness]);
    expect(cosigned.startsWith(signed)).toBe(true);
    const opened = openNote(cosigned, [verifierOf(alice), verifierOf(witness)]);
    expect(opened.sigs.map((s) => [s.name, s.kind, s.verified, s.timestamp])).toEqual([
      [alice.name, 'ed25519', true, undefined],
      [witness.name, 'cosignature', true, 1_767_225_600],
    ]);
  });

  it('is idempotent: a signer that already has a line is skipped', () => {
    const once = addSignatures(signed, [witness]);
    expect(addSignatures(once, [witness, alice])).toBe(once);
  });

  it('keeps lines of unknown keys and their order', () => {
    const both = signNote(TEXT, [bob, alice]);
    const more = addSignatures(both, [witness]);
    expect(parseNote(more).sigs.map((s) => s.name)).toEqual([bob.name, alice.name, witness.name]);
  });

  describe('when the note already has the maximum number of lines', () => {
    it('throws NOTE_MALFORMED', () => {
      const signers = Array.from({ length: MAX_NOTE_SIGNATURES }, (_, i) => ({ ...alice, name: `k${i}` }));
      const full = signNote('t\n', signers);
      expect(codeOf(() => addSignatures(full, [witness]))).toBe('NOTE_MALFORMED');
    });
  });

  describe('when the input is not a signed note', () => {
    it('throws NOTE_MALFORMED', () => {
      expect(codeOf(() => addSignatures(TEXT, [witness]))).toBe('NOTE_MALFORMED');
    });
  });
});

describe('openNote', () => {
  describe('when a known verifier throws', () => {
    it('throws NOTE_SIGNATURE instead of leaking the exception', () => {
      const v = { ...verifierOf(alice), verify: (): boolean => { throw new TypeError('boom'); } };
      expect(codeOf(() => openNote(signNote(TEXT, [alice]), [v]))).toBe('NOTE_SIGNATURE');
    });
  });

  describe('when a cosignature verifier meets a plain Ed25519 signature of the same key', () => {
    it('treats it as another key (key IDs differ by signature type)', () => {
      const plain = createNoteSigner(witness.name, new Uint8Array(32).fill(3));
      expect(plain.keyHash).not.toBe(witness.keyHash);
      expect(codeOf(() => openNote(signNote('o\n1\nx\n', [plain]), [verifierOf(witness)]))).toBe('NOTE_UNVERIFIED');
    });
  });

  const valid = addSignatures(signNote(TEXT, [alice, bob]), [witness]);
  const verifiers = [verifierOf(alice), verifierOf(witness)];
  const outcomes = ['ok', 'NOTE_MALFORMED', 'NOTE_SIGNATURE', 'NOTE_UNVERIFIED'];

  describe('when fed random text or bytes', () => {
    it('returns a note or throws a NOTE_* ProtocolError', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 100 })), (input) => {
          expect(outcomes).toContain(codeOf(() => openNote(input, verifiers)));
        }),
        { numRuns: 1500 },
      );
    });
  });

  describe('when a valid note is mutated byte by byte', () => {
    it('returns a note or throws a NOTE_* ProtocolError, and never accepts a changed text', () => {
      const bytes = utf8(valid);
      fc.assert(
        fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(2)), { minLength: 1, maxLength: 4 }), (edits) => {
          const b = Array.from(bytes);
          for (const [at, byte, op] of edits) {
            const i = at % (b.length + 1);
            if (op === 0) b[Math.min(i, b.length - 1)] = byte;
            else if (op === 1) b.splice(i, 0, byte);
            else b.splice(i, 1);
          }
          const mutated = Uint8Array.from(b);
          const got = codeOf(() => openNote(mutated, verifiers));
          expect(outcomes).toContain(got);
          if (got === 'ok') expect(openNote(mutated, verifiers).text).toBe(TEXT);
        }),
        { numRuns: 1500 },
      );
    });
  });
});
