/**
 * Checks every vector in test/vectors/identity.json (docs/protocol.md §3.10), and that every
 * valid artefact round-trips: certificate DER ↔ PEM, trust bundle text → decode → encode.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { verifySignature } from './crypto.js';
import { isProtocolError } from './errors.js';
import {
  decodeTrustBundle,
  encodeTrustBundle,
  fromPem,
  keyFingerprint,
  keyId,
  parseCertificate,
  parseCrl,
  toPem,
  TrustStore,
} from './identity.js';

interface Vector {
  name: string;
  kind: 'chain' | 'keyId' | 'bundle' | 'crl';
  expect: string;
  [k: string]: unknown;
}
interface VectorFile {
  description: string;
  bundles: Record<string, string>;
  vectors: Vector[];
}

const file = JSON.parse(readFileSync(new URL('../test/vectors/identity.json', import.meta.url), 'utf8')) as VectorFile;
const str = (v: Vector, k: string): string => {
  const x = v[k];
  if (typeof x !== 'string') throw new Error(`vector "${v.name}": ${k} must be a string`);
  return x;
};
const bytes = (v: Vector, k: string): Uint8Array => fromHex(str(v, k));

function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    return isProtocolError(e) ? e.code : `not a ProtocolError: ${String(e)}`;
  }
}

const stores = new Map<string, Promise<TrustStore>>();
function storeFor(v: Vector): Promise<TrustStore> {
  const requireCrl = v.requireCrl !== false;
  const key = `${str(v, 'bundle')}:${String(requireCrl)}`;
  let s = stores.get(key);
  if (s === undefined) {
    const text = file.bundles[str(v, 'bundle')];
    if (text === undefined) throw new Error(`vector "${v.name}": unknown bundle`);
    s = TrustStore.create(decodeTrustBundle(text), { requireCrl });
    stores.set(key, s);
  }
  return s;
}

describe('identity vectors', () => {
  it('has positive and negative vectors of every kind', () => {
    for (const kind of ['chain', 'keyId', 'bundle', 'crl']) {
      const of = file.vectors.filter((v) => v.kind === kind);
      expect(of.some((v) => v.expect === 'ok'), kind).toBe(true);
      expect(of.some((v) => v.expect !== 'ok'), kind).toBe(true);
    }
  });

  for (const v of file.vectors) {
    describe(`${v.kind}: ${v.name}`, () => {
      if (v.kind === 'chain') {
        it(v.expect === 'ok' ? 'verifies with the expected pack serial, kid and key' : `throws ${v.expect}`, async () => {
          const store = await storeFor(v);
          const chain = (v.chain as string[]).map((h) => fromHex(h));
          const now = new Date(str(v, 'now'));
          expect(outcome(() => store.verifyChain(chain, now))).toBe(v.expect);
          if (v.expect !== 'ok') return;
          const r = store.verifyChain(chain, now);
          expect(r.packSerial).toBe(v.packSerial);
          expect(r.alg).toBe(v.alg);
          expect(toHex(r.kid)).toBe(v.kid);
          expect(toHex(r.kid)).toBe(toHex(keyId(bytes(v, 'devicePublicKey'))));
          expect(toHex(r.certSha256)).toBe(v.certSha256);
          expect(verifySignature(r.publicKey, bytes(v, 'message'), bytes(v, 'signature'))).toBe(true);
          for (const der of chain) {
            expect(parseCertificate(der).der).toEqual(der);
            expect(fromPem(toPem(der, 'CERTIFICATE'))).toEqual([{ label: 'CERTIFICATE', der }]);
          }
        });
      } else if (v.kind === 'keyId') {
        it(v.expect === 'ok' ? 'gives the expected kid and fingerprint' : `throws ${v.expect}`, () => {
          const key = bytes(v, 'publicKey');
          expect(outcome(() => keyId(key))).toBe(v.expect);
          if (v.expect !== 'ok') return;
          expect(toHex(keyId(key))).toBe(v.kid);
          expect(keyFingerprint(key)).toBe(v.fingerprint);
        });
      } else if (v.kind === 'bundle') {
        it(v.expect === 'ok' ? 'decodes and re-encodes to the same text' : `throws ${v.expect}`, () => {
          const text = str(v, 'text');
          expect(outcome(() => decodeTrustBundle(text))).toBe(v.expect);
          if (v.expect === 'ok') expect(encodeTrustBundle(decodeTrustBundle(text))).toBe(text);
        });
      } else {
        it(v.expect === 'ok' ? 'parses with the expected number and revoked serials' : `throws ${v.expect}`, () => {
          const der = bytes(v, 'der');
          expect(outcome(() => parseCrl(der))).toBe(v.expect);
          if (v.expect !== 'ok') return;
          const info = parseCrl(der);
          expect(String(info.crlNumber)).toBe(v.crlNumber);
          expect([...info.revoked]).toEqual(v.revoked);
          expect(fromPem(toPem(der, 'X509 CRL'))).toEqual([{ label: 'X509 CRL', der }]);
        });
      }
    });
  }

  it('every named bundle round-trips', () => {
    for (const text of Object.values(file.bundles)) expect(encodeTrustBundle(decodeTrustBundle(text))).toBe(text);
  });
});
