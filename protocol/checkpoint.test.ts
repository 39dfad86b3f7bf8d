import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from './bytes.js';
import {
  checkConsistentCheckpoints,
  formatCheckpoint,
  gatewayOrigin,
  openCheckpoint,
  parseCheckpoint,
  signCheckpoint,
} from './checkpoint.js';
import { MemoryHashStore, proveTree, treeHash } from './merkle.js';
import { parseVerifierKey } from './note-keys.js';
import { createCosigner, createNoteSigner, verifierOf } from './note-signer.js';
import { addSignatures } from './note.js';
import { codeOf } from './testing.js';

interface Vector {
  name: string;
  kind: 'parse' | 'open' | 'consistency';
  expect: string;
  [k: string]: unknown;
}
const { vectors } = JSON.parse(readFileSync(new URL('../test/vectors/checkpoint.json', import.meta.url), 'utf8')) as { vectors: Vector[] };


describe('checkpoint vectors (test/vectors/checkpoint.json)', () => {
  for (const v of vectors) {
    it(`${v.name} → ${v.expect}`, () => {
      switch (v.kind) {
        case 'parse': {
          const body = v.body as string;
          expect(codeOf(() => parseCheckpoint(body))).toBe(v.expect);
          if (v.expect !== 'ok') break;
          const c = parseCheckpoint(body);
          expect({ origin: c.origin, size: c.size, rootHash: toHex(c.rootHash), extensions: c.extensions }).toEqual({
            origin: v.origin,
            size: v.size,
            rootHash: v.rootHash,
            extensions: v.extensions,
          });
          expect(formatCheckpoint(c)).toBe(body); // round trip
          break;
        }
        case 'open': {
          const opts = {
            origin: v.origin as string,
            verifiers: (v.verifierKeys as string[]).map((k) => parseVerifierKey(k)),
            witnesses: (v.witnessKeys as string[]).map((k) => parseVerifierKey(k)),
            requiredWitnesses: (v.requiredWitnesses as number | undefined) ?? 0,
          };
          expect(codeOf(() => openCheckpoint(v.note as string, opts))).toBe(v.expect);
          if (v.expect !== 'ok') break;
          const c = openCheckpoint(v.note as string, opts);
          expect(c.size).toBe(v.size);
          expect(toHex(c.rootHash)).toBe(v.rootHash);
          expect(c.witnesses.map((w) => ({ name: w.name, keyHash: w.keyHash.toString(16).padStart(8, '0'), timestamp: w.timestamp }))).toEqual(v.witnesses);
          break;
        }
        case 'consistency': {
          const proof = (v.proof as string[]).map((p) => fromHex(p));
          expect(codeOf(() => { checkConsistentCheckpoints(v.older as string, v.newer as string, proof); })).toBe(v.expect);
          break;
        }
      }
    });
  }
});

const origin = gatewayOrigin('line-7');
const log = createNoteSigner(origin, new Uint8Array(32).fill(9));
const w1 = createCosigner('w1.example/witness', new Uint8Array(32).fill(10), () => 1_767_225_600);
const w2 = createCosigner('w2.example/witness', new Uint8Array(32).fill(11), () => 1_767_225_601);
const store = new MemoryHashStore();
for (let i = 0; i < 20; i++) store.append(utf8(`frame ${i}`));

describe('signCheckpoint / openCheckpoint', () => {
  const body = { origin, size: 20, rootHash: treeHash(20, store) };
  const signed = addSignatures(signCheckpoint(body, [log]), [w1, w2]);
  const opts = { origin, verifiers: [verifierOf(log)], witnesses: [verifierOf(w1), verifierOf(w2)] };

  it('reports which witnesses cosigned, in note order', () => {
    const c = openCheckpoint(signed, { ...opts, requiredWitnesses: 2 });
    expect(c.witnesses.map((w) => [w.name, w.timestamp])).toEqual([
      [w1.name, 1_767_225_600],
      [w2.name, 1_767_225_601],
    ]);
    expect(c.note.sigs.every((s) => s.verified)).toBe(true);
  });

  describe('when more witnesses are required than cosigned', () => {
    it('throws CHECKPOINT_WITNESSES', () => {
      expect(codeOf(() => openCheckpoint(signed, { ...opts, witnesses: [verifierOf(w1)], requiredWitnesses: 2 }))).toBe('CHECKPOINT_WITNESSES');
    });
  });

  describe('when the log key is unknown but a witness cosigned', () => {
    it('throws NOTE_UNVERIFIED (a cosignature alone does not make a checkpoint)', () => {
      expect(codeOf(() => openCheckpoint(signed, { ...opts, verifiers: [] }))).toBe('NOTE_UNVERIFIED');
    });
  });

  describe('when the origin differs', () => {
    it('throws CHECKPOINT_ORIGIN before checking signatures', () => {
      expect(codeOf(() => openCheckpoint(signed, { ...opts, origin: gatewayOrigin('line-8'), verifiers: [] }))).toBe('CHECKPOINT_ORIGIN');
    });
  });

  describe('when fed random or mutated input', () => {
    const outcomes = ['ok', 'NOTE_MALFORMED', 'NOTE_SIGNATURE', 'NOTE_UNVERIFIED', 'CHECKPOINT_MALFORMED', 'CHECKPOINT_ORIGIN', 'CHECKPOINT_WITNESSES'];
    it('returns a checkpoint or throws a NOTE_* / CHECKPOINT_* ProtocolError', () => {
      const bytes = utf8(signed);
      fc.assert(
        fc.property(fc.oneof(fc.string({ maxLength: 200 }).map((s) => utf8(s)), fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([at, b]) => {
          const m = Uint8Array.from(bytes);
          m[at % m.length] = b;
          return m;
        })), (input) => {
          const got = codeOf(() => openCheckpoint(input, { ...opts, requiredWitnesses: 1 }));
          expect(outcomes).toContain(got);
          if (got === 'ok') expect(openCheckpoint(input, opts).size).toBe(20);
        }),
        { numRuns: 1500 },
      );
    });
  });
});

describe('parseCheckpoint', () => {
  describe('when fed random text', () => {
    it('returns a checkpoint that re-formats identically, or throws CHECKPOINT_MALFORMED', () => {
      const line = fc.string({ maxLength: 20 });
      const body = fc.oneof(
        fc.string({ maxLength: 120 }),
        fc.tuple(line, fc.oneof(fc.nat().map(String), line), fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64')), line), fc.array(line, { maxLength: 3 }))
          .map(([o, s, r, e]) => [o, s, r, ...e].join('\n') + '\n'),
      );
      fc.assert(
        fc.property(body, (b) => {
          const got = codeOf(() => parseCheckpoint(b));
          expect(['ok', 'CHECKPOINT_MALFORMED']).toContain(got);
          if (got === 'ok') expect(formatCheckpoint(parseCheckpoint(b))).toBe(b);
        }),
        { numRuns: 2000 },
      );
    });
  });
});

describe('formatCheckpoint', () => {
  const rootHash = treeHash(1, store);
  it('throws CHECKPOINT_MALFORMED for an origin or extension with a newline, an unsafe size or a short root', () => {
    expect(codeOf(() => formatCheckpoint({ origin: 'a\nb', size: 1, rootHash }))).toBe('CHECKPOINT_MALFORMED');
    expect(codeOf(() => formatCheckpoint({ origin: '', size: 1, rootHash }))).toBe('CHECKPOINT_MALFORMED');
    expect(codeOf(() => formatCheckpoint({ origin: 'a', size: 2 ** 53, rootHash }))).toBe('CHECKPOINT_MALFORMED');
    expect(codeOf(() => formatCheckpoint({ origin: 'a', size: -1, rootHash }))).toBe('CHECKPOINT_MALFORMED');
    expect(codeOf(() => formatCheckpoint({ origin: 'a', size: 1, rootHash: rootHash.subarray(1) }))).toBe('CHECKPOINT_MALFORMED');
    expect(codeOf(() => formatCheckpoint({ origin: 'a', size: 1, rootHash, extensions: [''] }))).toBe('CHECKPOINT_MALFORMED');
  });
  it('writes extension lines after the root', () => {
    expect(formatCheckpoint({ origin: 'a', size: 1, rootHash, extensions: ['x y'] }).split('\n')).toHaveLength(5);
  });
});

describe('gatewayOrigin', () => {
  it('prefixes packchain.gateway/ to a valid gateway name', () => {
    expect(gatewayOrigin('line-3')).toBe('packchain.gateway/line-3');
  });
  it('throws CHECKPOINT_ORIGIN for names with spaces, slashes, "+" or over 63 characters', () => {
    for (const bad of ['', 'a b', 'a/b', 'a+b', '-a', 'x'.repeat(64)]) expect(codeOf(() => gatewayOrigin(bad))).toBe('CHECKPOINT_ORIGIN');
  });
});

describe('checkConsistentCheckpoints', () => {
  const cp = (n: number) => ({ origin, size: n, rootHash: treeHash(n, store), extensions: [] });
  it('accepts every older size with its consistency proof, and rejects a proof for another size', () => {
    for (let m = 0; m <= 20; m++) {
      checkConsistentCheckpoints(cp(m), cp(20), proveTree(20, m, store));
      if (m > 0 && m < 19) expect(codeOf(() => { checkConsistentCheckpoints(cp(m), cp(19), proveTree(20, m, store)); })).toBe('MERKLE_PROOF');
    }
  });
  it('accepts bodies as text', () => {
    checkConsistentCheckpoints(formatCheckpoint(cp(5)), formatCheckpoint(cp(20)), proveTree(20, 5, store));
  });
});
