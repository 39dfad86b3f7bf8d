import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { encode as cborxEncode } from 'cbor-x';
import fc from 'fast-check';
import { p256 } from '@noble/curves/nist.js';
import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex, toHex } from './bytes.js';
import { CborTag, encodeCbor } from './cbor.js';
import { buildSign1, coseKid, COSE_MAX_BYTES, parseSign1, parseSign1Generic } from './cose-sign1.js';
import { signSign1, verifySign1GenericPortable, verifySign1Portable } from './cose-portable.js';
import { verifySign1, verifySign1Generic } from './cose.js';
import { fromKeyObject, importPublicKey, sha256, spkiOf, type PublicKey, type SignatureAlg } from './crypto.js';
import { importPublicKeyPortable, sha256Portable, spkiPortable, type PortablePublicKey } from './crypto-portable.js';
import { decodeFrame } from './frame.js';
import { codeOf } from './testing.js';

interface TestKey {
  alg: SignatureAlg;
  publicKey: string;
  kid: string;
  secretKey?: string;
  spki?: string;
}
interface CoseVector {
  name: string;
  expect: string;
  key?: string;
  cose?: string;
  payload?: string;
  signer?: string;
  path?: 'generic';
  expectProfile?: string;
  externalAad?: string;
  toBeSigned?: string;
  alg?: SignatureAlg;
  publicKey?: string;
  source?: string;
}
const file = JSON.parse(readFileSync(new URL('../test/vectors/cose.json', import.meta.url), 'utf8')) as {
  testKeys: Record<string, TestKey>;
  vectors: CoseVector[];
};


interface Keys {
  node: { publicKey: PublicKey; kid: Uint8Array };
  portable: { publicKey: PortablePublicKey; kid: Uint8Array };
  secretKey: Uint8Array;
}
const keys = (name: string): Keys => {
  const k = file.testKeys[name];
  if (!k) throw new Error(`no test key ${name}`);
  const kid = fromHex(k.kid);
  return {
    node: { publicKey: importPublicKey(k.alg, fromHex(k.publicKey)), kid },
    portable: { publicKey: importPublicKeyPortable(k.alg, fromHex(k.publicKey)), kid },
    secretKey: fromHex(k.secretKey ?? ''),
  };
};
const ED = keys('test-ed25519');
const P = keys('test-p256');
const profile = file.vectors.filter((v) => v.path === undefined && v.cose !== undefined);
const keyImports = file.vectors.filter((v) => v.publicKey !== undefined);
const generic = file.vectors.filter((v) => v.path === 'generic');
const typicalPayload = fromHex(profile[0]!.payload!);

describe('COSE vectors (test/vectors/cose.json)', () => {
  it('cover every COSE error code and the outside examples', () => {
    const codes = new Set(file.vectors.map((v) => v.expect));
    for (const c of ['ok', 'COSE_TOO_LARGE', 'COSE_MALFORMED', 'COSE_TAG', 'COSE_HEADER', 'COSE_ALG_UNKNOWN', 'COSE_ALG_MISMATCH', 'COSE_KID_MISMATCH', 'COSE_KEY', 'COSE_SIGNATURE']) {
      expect(codes.has(c), c).toBe(true);
    }
    expect(generic.length).toBeGreaterThanOrEqual(14);
  });

  it('publish kids that are coseKid of the published SubjectPublicKeyInfo', () => {
    for (const name of ['test-ed25519', 'test-p256']) {
      const k = file.testKeys[name]!;
      expect(toHex(coseKid(fromHex(k.spki!)))).toBe(k.kid);
      expect(toHex(spkiOf(importPublicKey(k.alg, fromHex(k.publicKey))))).toBe(k.spki);
    }
  });

  describe.each(profile)('profile: $name', (v) => {
    const bytes = fromHex(v.cose!);
    const k = keys(v.key!);
    it(`verifySign1 (node:crypto) gives ${v.expect}`, () => {
      expect(codeOf(() => verifySign1(bytes, k.node))).toBe(v.expect);
    });
    it(`verifySign1Portable (@noble) gives ${v.expect}`, () => {
      expect(codeOf(() => verifySign1Portable(bytes, k.portable))).toBe(v.expect);
    });
    if (v.expect === 'ok') {
      it('returns the payload as received, a valid frame', () => {
        expect(toHex(verifySign1(bytes, k.node).payload)).toBe(v.payload);
        expect(toHex(verifySign1Portable(bytes, k.portable).payload)).toBe(v.payload);
        decodeFrame(verifySign1(bytes, k.node).payload);
      });
    }
    if (v.signer === 'signSign1') {
      it('is reproduced byte for byte by signSign1 (deterministic signatures)', () => {
        const alg = k.node.publicKey.alg;
        expect(toHex(signSign1({ alg, kid: k.node.kid, payload: fromHex(v.payload!), secretKey: k.secretKey }))).toBe(v.cose);
      });
    }
  });

  describe.each(keyImports)('key import: $name', (v) => {
    it('throws COSE_KEY from importPublicKey and importPublicKeyPortable', () => {
      expect(codeOf(() => importPublicKey(v.alg!, fromHex(v.publicKey!)))).toBe(v.expect);
      expect(codeOf(() => importPublicKeyPortable(v.alg!, fromHex(v.publicKey!)))).toBe(v.expect);
    });
  });

  describe.each(generic)('outside example: $name', (v) => {
    const bytes = fromHex(v.cose!);
    const opts = v.externalAad === undefined ? {} : { externalAad: fromHex(v.externalAad) };
    const k = v.key === undefined ? undefined : file.testKeys[v.key]!;
    it(`generic verification gives ${v.expect} with node:crypto and with @noble`, () => {
      const run = (verify: (key: PublicKey | PortablePublicKey, kid: Uint8Array) => unknown): string => {
        if (k === undefined) return codeOf(() => parseSign1Generic(bytes, opts));
        return codeOf(() => verify(importPublicKey(k.alg, fromHex(k.publicKey)), fromHex(k.kid)));
      };
      expect(run((publicKey, kid) => verifySign1Generic(bytes, { publicKey: publicKey as PublicKey, kid }, opts))).toBe(v.expect);
      expect(run((publicKey, kid) => verifySign1GenericPortable(bytes, { publicKey, kid }, opts))).toBe(v.expect);
    });
    it(`the packchain profile parser rejects it with ${v.expectProfile ?? ''}`, () => {
      expect(codeOf(() => parseSign1(bytes))).toBe(v.expectProfile);
    });
    if (v.toBeSigned !== undefined) {
      it('rebuilds the published Sig_structure (ToBeSign)', () => {
        expect(toHex(parseSign1Generic(bytes, opts).toBeSigned)).toBe(v.toBeSigned);
      });
    }
  });
});

describe('parseSign1', () => {
  const msg = signSign1({ alg: 'ES256', kid: P.node.kid, payload: typicalPayload, secretKey: P.secretKey });
  const parsed = parseSign1(msg);

  it('returns alg, kid, the protected bytes and payload as received, and the signature', () => {
    expect(parsed.alg).toBe('ES256');
    expect(parsed.kid).toEqual(P.node.kid);
    expect(toHex(parsed.protectedBytes)).toBe(`a2012604 50${toHex(P.node.kid)}`.replace(' ', ''));
    expect(parsed.payload).toEqual(typicalPayload);
    expect(parsed.signature.length).toBe(64);
  });

  it('builds the Sig_structure exactly as an independent CBOR encoder does (cbor-x)', () => {
    const oracle = cborxEncode(['Signature1', Buffer.from(parsed.protectedBytes), Buffer.alloc(0), Buffer.from(parsed.payload)]);
    expect(toHex(parsed.toBeSigned)).toBe(toHex(oracle));
  });

  it('returns views into the input (no copy of the payload)', () => {
    expect(parsed.payload.buffer).toBe(msg.buffer);
  });
});

describe('coseKid', () => {
  it('is the first 16 bytes of SHA-256 over the SubjectPublicKeyInfo DER, identical on node and portable paths', () => {
    const spki = spkiOf(ED.node.publicKey);
    expect(coseKid(spki)).toEqual(sha256(spki).subarray(0, 16));
    expect(spkiPortable(ED.portable.publicKey)).toEqual(spki);
    expect(spkiPortable(P.portable.publicKey)).toEqual(spkiOf(P.node.publicKey));
    expect(sha256Portable(spki)).toEqual(sha256(spki));
  });
});

describe('ES256 high-S signatures', () => {
  const n = p256.Point.Fn.ORDER;
  const msg = signSign1({ alg: 'ES256', kid: P.node.kid, payload: typicalPayload, secretKey: P.secretKey });
  const sig = msg.subarray(msg.length - 64);
  const s = BigInt(`0x${toHex(sig.subarray(32))}`);
  const twin = concatBytes(msg.subarray(0, msg.length - 32), fromHex((n - s).toString(16).padStart(64, '0')));

  it('the signer emits low-S, so the twin is genuinely high-S and rejected by noble\'s default policy', () => {
    expect(s <= n / 2n).toBe(true);
    const tbs = parseSign1(twin).toBeSigned;
    expect(p256.verify(twin.subarray(twin.length - 64), tbs, P.portable.publicKey.raw)).toBe(false);
  });

  it('verifies with node:crypto and with @noble (lowS: false)', () => {
    expect(verifySign1(twin, P.node).payload).toEqual(typicalPayload);
    expect(verifySign1Portable(twin, P.portable).payload).toEqual(typicalPayload);
  });
});

describe('noble ⇄ node:crypto', () => {
  for (const alg of ['Ed25519', 'ES256'] as const) {
    describe(`with ${alg}`, () => {
      it('verifies signSign1 (@noble) messages with verifySign1 (node:crypto)', () => {
        const k = alg === 'Ed25519' ? ED : P;
        const msg = signSign1({ alg, kid: k.node.kid, payload: typicalPayload, secretKey: k.secretKey });
        expect(verifySign1(msg, k.node).alg).toBe(alg);
      });

      it('verifies node:crypto-signed messages with verifySign1Portable (@noble), high-S included', () => {
        const pair = alg === 'Ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const publicKey = fromKeyObject(pair.publicKey);
        const kid = coseKid(spkiOf(publicKey));
        const portable = { publicKey: importPublicKeyPortable(alg, publicKey.raw), kid };
        let highS = 0;
        for (let i = 0; i < (alg === 'ES256' ? 24 : 4); i++) {
          const msg = buildSign1({ alg, kid, payload: typicalPayload }, (tbs) =>
            new Uint8Array(nodeSign(alg === 'Ed25519' ? null : 'sha256', tbs, { key: pair.privateKey, dsaEncoding: 'ieee-p1363' })),
          );
          if (alg === 'ES256' && BigInt(`0x${toHex(msg.subarray(msg.length - 32))}`) > p256.Point.Fn.ORDER / 2n) highS++;
          expect(verifySign1Portable(msg, portable).payload).toEqual(typicalPayload);
          expect(verifySign1(msg, { publicKey, kid }).payload).toEqual(typicalPayload);
        }
        // OpenSSL does not normalise S: 24 signatures without a high-S one would be a 2^-24 event.
        if (alg === 'ES256') expect(highS).toBeGreaterThan(0);
      });
    });
  }
});

describe('signSign1 / buildSign1', () => {
  it('throws COSE_HEADER for a kid that is not 16 bytes', () => {
    expect(codeOf(() => signSign1({ alg: 'Ed25519', kid: new Uint8Array(15), payload: typicalPayload, secretKey: ED.secretKey }))).toBe('COSE_HEADER');
  });

  it('throws COSE_TOO_LARGE before signing when the message would exceed 768 bytes', () => {
    let called = false;
    // 94 bytes of envelope around a payload of 256..65535 bytes: 675 gives 769.
    const payload = new Uint8Array(COSE_MAX_BYTES - 93);
    expect(codeOf(() => buildSign1({ alg: 'Ed25519', kid: ED.node.kid, payload }, () => ((called = true), new Uint8Array(64))))).toBe('COSE_TOO_LARGE');
    expect(called).toBe(false);
  });

  it('accepts a payload that makes the message exactly 768 bytes', () => {
    const payload = new Uint8Array(COSE_MAX_BYTES - 94);
    const msg = signSign1({ alg: 'Ed25519', kid: ED.node.kid, payload, secretKey: ED.secretKey });
    expect(msg.length).toBe(COSE_MAX_BYTES);
    expect(verifySign1(msg, ED.node).payload).toEqual(payload);
  });

  it('throws COSE_KEY for an invalid P-256 secret key', () => {
    expect(codeOf(() => signSign1({ alg: 'ES256', kid: P.node.kid, payload: typicalPayload, secretKey: new Uint8Array(32) }))).toBe('COSE_KEY');
  });
});

describe('COSE_Sign1 parsers and verifiers on hostile input', () => {
  const messages = {
    Ed25519: signSign1({ alg: 'Ed25519', kid: ED.node.kid, payload: typicalPayload, secretKey: ED.secretKey }),
    ES256: signSign1({ alg: 'ES256', kid: P.node.kid, payload: typicalPayload, secretKey: P.secretKey }),
  };
  const keyFor = (alg: SignatureAlg): Keys => (alg === 'Ed25519' ? ED : P);
  /** Every entry point; each must return or throw ProtocolError (codeOf rethrows anything else). */
  const all = (bytes: Uint8Array, k: Keys, portable = true): void => {
    codeOf(() => parseSign1(bytes));
    codeOf(() => parseSign1Generic(bytes));
    codeOf(() => verifySign1(bytes, k.node));
    codeOf(() => verifySign1Generic(bytes, k.node));
    if (portable) {
      codeOf(() => verifySign1Portable(bytes, k.portable));
      codeOf(() => verifySign1GenericPortable(bytes, k.portable));
    }
  };
  const mutate = (seed: Uint8Array, at: number, byte: number, op: string): Uint8Array => {
    const i = at % seed.length;
    const b = Array.from(seed);
    if (op === 'set') b[i] = byte;
    else if (op === 'insert') b.splice(i, 0, byte);
    else if (op === 'delete') b.splice(i, 1);
    else b.length = i;
    return Uint8Array.from(b);
  };
  const arbMutation = fc.record({
    alg: fc.constantFrom<SignatureAlg>('Ed25519', 'ES256'),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
    op: fc.constantFrom('set', 'insert', 'delete', 'truncate'),
  });

  it('throw only ProtocolError for random bytes, bare or behind a COSE_Sign1 head', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 800 }), fc.boolean(), fc.constantFrom<SignatureAlg>('Ed25519', 'ES256'), (tail, head, alg) => {
        all(head ? concatBytes(Uint8Array.of(0xd2, 0x84), tail) : tail, keyFor(alg));
      }),
      { numRuns: 2000 },
    );
  });

  it('throw only ProtocolError for well-formed CBOR of the wrong shape', () => {
    const arbItem = fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.uint8Array({ maxLength: 70 }), fc.constant(null), fc.boolean());
    const arbHeader = fc.uniqueArray(fc.tuple(fc.integer({ min: -3, max: 40 }), arbItem), { maxLength: 4, selector: (e) => e[0] });
    fc.assert(
      fc.property(arbHeader, arbHeader, fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 70 }), fc.boolean(), (prot, unprot, payload, sig, tagged) => {
        const body = [encodeCbor(new Map(prot)), new Map(unprot), payload, sig];
        const bytes = encodeCbor(tagged ? new CborTag(18, body) : body);
        all(bytes, ED);
        all(bytes, P);
      }),
      { numRuns: 1500 },
    );
  });

  it('throw only ProtocolError for mutated valid messages (node:crypto)', () => {
    fc.assert(
      fc.property(arbMutation, ({ alg, at, byte, op }) => {
        all(mutate(messages[alg], at, byte, op), keyFor(alg), false);
      }),
      { numRuns: 2000 },
    );
  });

  it('throw only ProtocolError for mutated valid messages (@noble)', () => {
    fc.assert(
      fc.property(arbMutation, ({ alg, at, byte, op }) => {
        all(mutate(messages[alg], at, byte, op), keyFor(alg));
      }),
      { numRuns: 200 },
    );
  });

  describe('when any single byte of a valid signed frame is changed', () => {
    const arbFlip = fc.record({ alg: fc.constantFrom<SignatureAlg>('Ed25519', 'ES256'), at: fc.nat(), delta: fc.integer({ min: 1, max: 255 }) });
    const flipped = (alg: SignatureAlg, at: number, delta: number): Uint8Array => {
      const m = Uint8Array.from(messages[alg]);
      const i = at % m.length;
      m[i] = (m[i]! + delta) & 0xff;
      return m;
    };

    it('never verifies with node:crypto: every position, every bit', () => {
      for (const alg of ['Ed25519', 'ES256'] as const) {
        for (let i = 0; i < messages[alg].length; i++) {
          for (let bit = 0; bit < 8; bit++) {
            const m = Uint8Array.from(messages[alg]);
            m[i] = m[i]! ^ (1 << bit);
            expect(codeOf(() => verifySign1(m, keyFor(alg).node)), `${alg} byte ${i} bit ${bit}`).not.toBe('ok');
          }
        }
      }
    });

    it('never verifies with node:crypto: any replacement value', () => {
      fc.assert(
        fc.property(arbFlip, ({ alg, at, delta }) => {
          expect(codeOf(() => verifySign1(flipped(alg, at, delta), keyFor(alg).node))).not.toBe('ok');
        }),
        { numRuns: 2000 },
      );
    });

    it('never verifies with @noble: any replacement value', () => {
      fc.assert(
        fc.property(arbFlip, ({ alg, at, delta }) => {
          expect(codeOf(() => verifySign1Portable(flipped(alg, at, delta), keyFor(alg).portable))).not.toBe('ok');
        }),
        { numRuns: 300 },
      );
    });
  });
});

describe('the portable modules (browser, firmware)', () => {
  it('import no node: module at runtime, directly or transitively', () => {
    const seen = new Set<string>();
    const visit = (name: string): void => {
      if (seen.has(name)) return;
      seen.add(name);
      const src = readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');
      // `import type` is erased (verbatimModuleSyntax), so only value imports count.
      for (const m of src.matchAll(/^import\s+(?!type\s)[^;]*?from\s+'([^']+)';/gms)) {
        const spec = m[1]!;
        expect(spec.startsWith('node:'), `${name} imports ${spec}`).toBe(false);
        if (spec.startsWith('./')) visit(spec.slice(2).replace(/\.js$/, '.ts'));
      }
    };
    visit('cose-portable.ts');
    visit('frame.ts');
    expect([...seen]).toEqual(expect.arrayContaining(['cose-sign1.ts', 'crypto-portable.ts', 'cbor.ts', 'bytes.ts']));
  });
});
