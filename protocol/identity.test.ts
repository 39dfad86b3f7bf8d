import { X509Certificate, webcrypto } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { concatBytes } from './bytes.js';
import { verifySignature, type SignatureAlg } from './crypto.js';
import { isProtocolError } from './errors.js';
import { canonicalSpki, keyId, TrustStore, type TrustBundle, type VerifiedDevice } from './identity.js';
import {
  NOT_BEFORE,
  NOW,
  caKeys,
  issueDevice,
  makeCrl,
  makeIntermediate,
  makeRoot,
  rawCert,
  serialOf,
  type TestCa,
  type TestDevice,
} from './identity-testkit.js';
import { x509 } from './identity-x509.js';
import { codeOf } from './testing.js';

const ALGS: readonly SignatureAlg[] = ['Ed25519', 'ES256'];
const at = (iso: string): Date => new Date(iso);


interface World {
  root: TestCa;
  line: TestCa;
  revokedLine: TestCa;
  device: TestDevice;
  revokedDevice: TestDevice;
  deviceUnderRevokedLine: TestDevice;
  bundle: TrustBundle;
  store: TrustStore;
}

/** One hierarchy per CA algorithm: root → line → devices, with CRLs that revoke one device and one line CA. */
async function world(alg: SignatureAlg): Promise<World> {
  const root = await makeRoot(alg);
  const line = await makeIntermediate(root, alg);
  const revokedLine = await makeIntermediate(root, alg, `Revoked Line ${alg}`);
  const device = await issueDevice(line, alg === 'Ed25519' ? 'ES256' : 'Ed25519', 'PACK-0001');
  const revokedDevice = await issueDevice(line, alg, 'PACK-0666');
  const deviceUnderRevokedLine = await issueDevice(revokedLine, alg, 'PACK-0777');
  const rootCrl = await makeCrl(root, [{ serialHex: serialOf(revokedLine.cert), date: NOT_BEFORE, reason: 'cACompromise' }]);
  const lineCrl = await makeCrl(line, [{ serialHex: serialOf(revokedDevice.cert), date: NOT_BEFORE, reason: 'keyCompromise' }]);
  const revokedLineCrl = await makeCrl(revokedLine);
  const bundle: TrustBundle = { roots: [root.cert], intermediates: [line.cert, revokedLine.cert], crls: [rootCrl, lineCrl, revokedLineCrl] };
  return { root, line, revokedLine, device, revokedDevice, deviceUnderRevokedLine, bundle, store: await TrustStore.create(bundle) };
}

let W: Record<SignatureAlg, World>;
let foreign: { root: TestCa; line: TestCa; device: TestDevice };

beforeAll(async () => {
  W = { Ed25519: await world('Ed25519'), ES256: await world('ES256') };
  const root = await makeRoot('Ed25519', 'Foreign Root');
  const line = await makeIntermediate(root, 'Ed25519', 'Foreign Line');
  foreign = { root, line, device: await issueDevice(line, 'Ed25519', 'PACK-F001') };
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('TrustStore.verifyChain', () => {
  describe('when the chain is valid', () => {
    for (const caAlg of ALGS) {
      for (const devAlg of ALGS) {
        it(`verifies a ${devAlg} device under a ${caAlg} CA and returns a key that verifies its noble signatures`, async () => {
          const w = W[caAlg];
          const device = await issueDevice(w.line, devAlg, `PACK-${caAlg}-${devAlg}`);
          const r: VerifiedDevice = w.store.verifyChain([device.cert, w.line.cert], NOW);
          expect(r.packSerial).toBe(`PACK-${caAlg}-${devAlg}`);
          expect(r.alg).toBe(devAlg);
          expect(r.kid).toEqual(keyId(device.publicKey));
          expect(r.issuerChain.map((c) => c.der)).toEqual([w.line.cert, w.root.cert]);
          const msg = new TextEncoder().encode('soh frame');
          expect(verifySignature(r.publicKey, msg, device.sign(msg))).toBe(true);
          expect(verifySignature(r.publicKey, new TextEncoder().encode('other'), device.sign(msg))).toBe(false);
        });
      }
    }

    it('accepts the device certificate alone when its line CA is in the bundle', () => {
      const w = W.Ed25519;
      expect(w.store.verifyChain([w.device.cert], NOW).packSerial).toBe('PACK-0001');
    });

    it('accepts a chain that includes the root', () => {
      const w = W.ES256;
      expect(w.store.verifyChain([w.device.cert, w.line.cert, w.root.cert], NOW).packSerial).toBe('PACK-0001');
    });

    it('reports the effective validity window of the whole path', async () => {
      const w = W.Ed25519;
      const shortLine = await makeIntermediate(w.root, 'Ed25519', 'Short Line', { notAfter: at('2030-01-01T00:00:00Z') });
      const device = await issueDevice(shortLine, 'Ed25519');
      const store = await TrustStore.create({ ...w.bundle, crls: [] }, { requireCrl: false });
      const r = store.verifyChain([device.cert, shortLine.cert], NOW);
      expect(r.notBefore).toEqual(NOT_BEFORE);
      expect(r.notAfter).toEqual(at('2030-01-01T00:00:00Z'));
    });

    it('accepts a presented intermediate that chains to a trusted root, and only then', async () => {
      const w = W.Ed25519;
      const newLine = await makeIntermediate(w.root, 'Ed25519', 'New Line');
      const device = await issueDevice(newLine, 'Ed25519', 'PACK-NEW1');
      const store = await TrustStore.create({ roots: [w.root.cert], intermediates: [], crls: [] }, { requireCrl: false });
      expect(codeOf(() => store.verifyChain([device.cert], NOW))).toBe('CHAIN_UNTRUSTED');
      expect(store.verifyChain([device.cert, newLine.cert], NOW).packSerial).toBe('PACK-NEW1');
    });
  });

  describe('when the same chain is verified again', () => {
    it('does not redo the signature checks', () => {
      const w = W.ES256;
      const store = w.store;
      const spy = vi.spyOn(X509Certificate.prototype, 'verify');
      const chain = [w.device.cert, w.line.cert];
      const first = store.verifyChain(chain, NOW);
      const calls = spy.mock.calls.length;
      expect(calls).toBeGreaterThan(0);
      expect(store.verifyChain(chain, NOW)).toBe(first);
      expect(spy.mock.calls.length).toBe(calls);
    });

    it('redoes them when caching is off (cacheSize 0)', async () => {
      const w = W.Ed25519;
      const store = await TrustStore.create(w.bundle, { cacheSize: 0 });
      const spy = vi.spyOn(X509Certificate.prototype, 'verify');
      store.verifyChain([w.device.cert, w.line.cert], NOW);
      const calls = spy.mock.calls.length;
      store.verifyChain([w.device.cert, w.line.cert], NOW);
      expect(spy.mock.calls.length).toBe(2 * calls);
      expect(store.cachedChains).toBe(0);
    });

    it('still checks the cached chain against the new time', () => {
      const w = W.Ed25519;
      const chain = [w.device.cert, w.line.cert];
      expect(w.store.verifyChain(chain, NOW).packSerial).toBe('PACK-0001');
      expect(codeOf(() => w.store.verifyChain(chain, at('2126-01-01T00:00:00Z')))).toBe('CERT_EXPIRED');
      expect(codeOf(() => w.store.verifyChain(chain, at('2024-01-01T00:00:00Z')))).toBe('CERT_NOT_YET_VALID');
      expect(codeOf(() => w.store.verifyChain(chain, at('2101-01-01T00:00:00Z')))).toBe('CRL_STALE');
      expect(w.store.verifyChain(chain, NOW).packSerial).toBe('PACK-0001');
    });

    it('still refuses a revoked device on every call', () => {
      const w = W.ES256;
      const chain = [w.revokedDevice.cert, w.line.cert];
      expect(codeOf(() => w.store.verifyChain(chain, NOW))).toBe('CERT_REVOKED');
      expect(codeOf(() => w.store.verifyChain(chain, NOW))).toBe('CERT_REVOKED');
    });

    it('does not let the same bytes split differently hit the cache', () => {
      const w = W.Ed25519;
      w.store.verifyChain([w.device.cert, w.line.cert], NOW);
      expect(codeOf(() => w.store.verifyChain([concatBytes(w.device.cert, w.line.cert)], NOW))).toBe('CERT_PARSE');
    });

    it('evicts the least recently used chain beyond cacheSize', async () => {
      const w = W.ES256;
      const store = await TrustStore.create(w.bundle, { cacheSize: 1 });
      store.verifyChain([w.device.cert, w.line.cert], NOW);
      store.verifyChain([w.device.cert], NOW);
      expect(store.cachedChains).toBe(1);
    });
  });

  describe('when the chain is empty', () => {
    it('throws CHAIN_EMPTY', () => {
      expect(codeOf(() => W.Ed25519.store.verifyChain([], NOW))).toBe('CHAIN_EMPTY');
    });
  });

  describe('when the chain is too long', () => {
    it('throws CHAIN_TOO_LONG for more than 4 certificates', () => {
      const w = W.Ed25519;
      const chain = [w.device.cert, w.line.cert, w.line.cert, w.line.cert, w.root.cert];
      expect(codeOf(() => w.store.verifyChain(chain, NOW))).toBe('CHAIN_TOO_LONG');
    });

    it("throws CHAIN_TOO_LONG when a CA's pathLenConstraint is exceeded", async () => {
      const w = W.Ed25519;
      const keys = await caKeys('Ed25519');
      // The line CA has pathLen 0 but signs another CA: the builder refuses, so it is made raw.
      const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
      const subCert = await rawCert({
        subject: [{ CN: ['Sub Line'] }],
        issuer: w.line,
        publicKey: spki,
        extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
      });
      const sub: TestCa = { cert: subCert, keys, alg: 'Ed25519' };
      const device = await issueDevice(sub, 'Ed25519');
      const store = await TrustStore.create(w.bundle, { requireCrl: false });
      expect(codeOf(() => store.verifyChain([device.cert, sub.cert, w.line.cert], NOW))).toBe('CHAIN_TOO_LONG');
    });
  });

  describe('when a certificate cannot be parsed', () => {
    it('throws CERT_PARSE for garbage, trailing bytes, or a non-Uint8Array', () => {
      const w = W.ES256;
      expect(codeOf(() => w.store.verifyChain([Uint8Array.of(0x30, 0x03, 1, 2, 3)], NOW))).toBe('CERT_PARSE');
      expect(codeOf(() => w.store.verifyChain([w.device.cert, Uint8Array.of(0xff)], NOW))).toBe('CERT_PARSE');
      expect(codeOf(() => w.store.verifyChain([concatBytes(w.device.cert, Uint8Array.of(0))], NOW))).toBe('CERT_PARSE');
      expect(codeOf(() => w.store.verifyChain(['x' as unknown as Uint8Array], NOW))).toBe('CERT_PARSE');
      expect(codeOf(() => w.store.verifyChain([new Uint8Array(20_000)], NOW))).toBe('CERT_PARSE');
    });
  });

  describe('when a certificate was tampered with', () => {
    it('throws CHAIN_SIGNATURE for a flipped signature byte', () => {
      for (const alg of ALGS) {
        const w = W[alg];
        const bad = Uint8Array.from(w.device.cert);
        bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 0x01;
        expect(codeOf(() => w.store.verifyChain([bad, w.line.cert], NOW))).toBe('CHAIN_SIGNATURE');
      }
    });

    it('throws CHAIN_SIGNATURE for a changed subject (signed bytes)', () => {
      const w = W.Ed25519;
      const bad = Uint8Array.from(w.device.cert);
      const at0 = Buffer.from(bad).indexOf('PACK-0001');
      bad[at0 + 8] = '2'.charCodeAt(0);
      expect(codeOf(() => w.store.verifyChain([bad, w.line.cert], NOW))).toBe('CHAIN_SIGNATURE');
    });
  });

  describe('when the next certificate did not issue the previous one', () => {
    it('throws CHAIN_BROKEN for a different issuer name', () => {
      const w = W.Ed25519;
      expect(codeOf(() => w.store.verifyChain([w.device.cert, w.revokedLine.cert], NOW))).toBe('CHAIN_BROKEN');
    });

    it('throws CHAIN_BROKEN for the same name with another key (authority key id mismatch)', async () => {
      const w = W.Ed25519;
      const twin = await makeIntermediate(w.root, 'Ed25519'); // same subject name, new key
      expect(codeOf(() => w.store.verifyChain([w.device.cert, twin.cert], NOW))).toBe('CHAIN_BROKEN');
    });
  });

  describe('when an issuer is not a CA', () => {
    it('throws CHAIN_NOT_CA for a device certificate used as issuer', async () => {
      const w = W.ES256;
      const keys = await caKeys('ES256');
      const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
      const fakeCa = await issueDevice(w.line, 'ES256', 'PACK-0100', { devicePublicKey: spki });
      const leaf = await issueDevice({ cert: fakeCa.cert, keys, alg: 'ES256' }, 'ES256', 'PACK-0101').catch((e: unknown) => e);
      // The builder refuses a non-CA issuer, so the leaf is made without profile checks.
      expect(isProtocolError(leaf, 'CERT_ISSUE')).toBe(true);
      const forged = await rawCert({
        subject: [{ CN: ['PACK-0101'] }, { '2.5.4.5': ['PACK-0101'] }],
        issuer: { cert: fakeCa.cert, keys, alg: 'ES256' },
        publicKey: spki,
        extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
      });
      expect(codeOf(() => w.store.verifyChain([forged, fakeCa.cert, w.line.cert], NOW))).toBe('CHAIN_NOT_CA');
    });
  });

  describe('when the chain does not reach a trusted root', () => {
    it('throws CHAIN_UNTRUSTED for a foreign hierarchy, with or without its root', () => {
      const w = W.Ed25519;
      expect(codeOf(() => w.store.verifyChain([foreign.device.cert, foreign.line.cert], NOW))).toBe('CHAIN_UNTRUSTED');
      expect(codeOf(() => w.store.verifyChain([foreign.device.cert, foreign.line.cert, foreign.root.cert], NOW))).toBe('CHAIN_UNTRUSTED');
      expect(codeOf(() => w.store.verifyChain([foreign.device.cert], NOW))).toBe('CHAIN_UNTRUSTED');
    });

    it('throws CHAIN_UNTRUSTED for a self-signed device certificate', () => {
      const w = W.Ed25519;
      expect(codeOf(() => w.store.verifyChain([foreign.root.cert], NOW))).toBe('CHAIN_UNTRUSTED');
      expect(codeOf(() => w.store.verifyChain([w.root.cert], NOW))).toBe('CHAIN_UNTRUSTED');
    });
  });

  describe('when the device certificate is outside the packchain profile', () => {
    const DS = () => new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true);
    const profileCode = async (
      subject: x509.JsonName,
      extensions: x509.Extension[],
      publicKey?: Uint8Array | webcrypto.CryptoKey,
    ): Promise<string> => {
      const w = W.Ed25519;
      const cert = await rawCert({ subject, issuer: w.line, publicKey: publicKey ?? canonicalSpki(w.device.publicKey), extensions });
      return codeOf(() => w.store.verifyChain([cert, w.line.cert], NOW));
    };
    const SUBJECT: x509.JsonName = [{ CN: ['PACK-0200'] }, { '2.5.4.5': ['PACK-0200'] }];

    it('accepts the raw builder’s output when it follows the profile (control)', async () => {
      expect(await profileCode(SUBJECT, [DS()])).toBe('ok');
    });

    it('throws CERT_PROFILE without a subject serialNumber attribute', async () => {
      expect(await profileCode([{ CN: ['PACK-0200'] }], [DS()])).toBe('CERT_PROFILE');
    });

    it('throws CERT_PROFILE when the serialNumber attribute differs from the CN', async () => {
      expect(await profileCode([{ CN: ['PACK-0200'] }, { '2.5.4.5': ['PACK-0201'] }], [DS()])).toBe('CERT_PROFILE');
    });

    it('throws CERT_PROFILE for a pack serial outside the allowed characters', async () => {
      expect(await profileCode([{ CN: ['PACK 0200'] }, { '2.5.4.5': ['PACK 0200'] }], [DS()])).toBe('CERT_PROFILE');
    });

    it('throws CERT_PROFILE for a device certificate that is a CA', async () => {
      expect(await profileCode(SUBJECT, [DS(), new x509.BasicConstraintsExtension(true, 0, true)])).toBe('CERT_PROFILE');
    });

    it('throws CERT_PROFILE without keyUsage digitalSignature', async () => {
      expect(await profileCode(SUBJECT, [])).toBe('CERT_PROFILE');
      expect(await profileCode(SUBJECT, [new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true)])).toBe('CERT_PROFILE');
    });

    it('throws CERT_PROFILE for a critical extension the verifier does not process', async () => {
      expect(await profileCode(SUBJECT, [DS(), new x509.Extension('1.3.6.1.4.1.99999.1', true, Uint8Array.of(5, 0))])).toBe('CERT_PROFILE');
    });

    it('throws CERT_PROFILE for a P-384 key', async () => {
      const k = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']);
      expect(await profileCode(SUBJECT, [DS()], k.publicKey)).toBe('CERT_PROFILE');
    });

    it('throws CERT_PROFILE for a compressed P-256 point in the SPKI', async () => {
      const dev = W.Ed25519.device; // the Ed25519 CA's device has an ES256 key
      expect(dev.alg).toBe('ES256');
      const prefix = Uint8Array.from(Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'));
      expect(dev.publicKey.length).toBe(33);
      expect(await profileCode(SUBJECT, [DS()], concatBytes(prefix, dev.publicKey))).toBe('CERT_PROFILE');
    });
  });

  describe('when a certificate is outside its validity period', () => {
    it('throws CERT_EXPIRED after the device expires and CERT_NOT_YET_VALID before it starts', () => {
      const w = W.ES256;
      expect(codeOf(() => w.store.verifyChain([w.device.cert, w.line.cert], at('2125-01-01T00:00:01Z')))).toBe('CERT_EXPIRED');
      expect(codeOf(() => w.store.verifyChain([w.device.cert, w.line.cert], at('2024-12-31T23:59:59Z')))).toBe('CERT_NOT_YET_VALID');
      expect(w.store.verifyChain([w.device.cert, w.line.cert], NOT_BEFORE).packSerial).toBe('PACK-0001');
    });

    it('throws CERT_EXPIRED when only the intermediate has expired', async () => {
      const w = W.Ed25519;
      const shortLine = await makeIntermediate(w.root, 'Ed25519', 'Short Line', { notAfter: at('2030-01-01T00:00:00Z') });
      const device = await issueDevice(shortLine, 'Ed25519');
      const store = await TrustStore.create(w.bundle, { requireCrl: false });
      expect(codeOf(() => store.verifyChain([device.cert, shortLine.cert], at('2031-01-01T00:00:00Z')))).toBe('CERT_EXPIRED');
    });
  });

  describe('when a certificate is revoked', () => {
    it('throws CERT_REVOKED for a device on its line CA’s CRL', () => {
      for (const alg of ALGS) {
        const w = W[alg];
        expect(codeOf(() => w.store.verifyChain([w.revokedDevice.cert, w.line.cert], NOW))).toBe('CERT_REVOKED');
      }
    });

    it('throws CERT_REVOKED for an intermediate on the root’s CRL', () => {
      for (const alg of ALGS) {
        const w = W[alg];
        expect(codeOf(() => w.store.verifyChain([w.deviceUnderRevokedLine.cert, w.revokedLine.cert], NOW))).toBe('CERT_REVOKED');
      }
    });
  });

  describe('when revocation information is missing or stale', () => {
    it('throws CRL_MISSING without a CRL for an issuing CA, unless requireCrl is false', async () => {
      const w = W.Ed25519;
      const noCrl = await TrustStore.create({ ...w.bundle, crls: [] });
      expect(codeOf(() => noCrl.verifyChain([w.device.cert, w.line.cert], NOW))).toBe('CRL_MISSING');
      const lenient = await TrustStore.create({ ...w.bundle, crls: [] }, { requireCrl: false });
      expect(lenient.verifyChain([w.device.cert, w.line.cert], NOW).packSerial).toBe('PACK-0001');
    });

    it('throws CRL_STALE when nextUpdate has passed', () => {
      const w = W.ES256;
      expect(codeOf(() => w.store.verifyChain([w.device.cert, w.line.cert], at('2100-01-01T00:00:01Z')))).toBe('CRL_STALE');
    });
  });
});
