import { webcrypto } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { DeviceKeyCache, deviceKeyWire, TrustStore, type TrustBundle } from './identity.js';
import {
  NOT_AFTER,
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
import { codeOf, codeOfAsync } from './testing.js';



interface Hierarchy {
  root: TestCa;
  line: TestCa;
  device: TestDevice;
  bundle: TrustBundle;
}

async function hierarchy(alg: 'Ed25519' | 'ES256'): Promise<Hierarchy> {
  const root = await makeRoot(alg);
  const line = await makeIntermediate(root, alg);
  const device = await issueDevice(line, alg);
  return { root, line, device, bundle: { roots: [root.cert], intermediates: [line.cert], crls: [await makeCrl(root), await makeCrl(line)] } };
}

let A: Hierarchy;
let B: Hierarchy;
let foreign: { root: TestCa; line: TestCa };

beforeAll(async () => {
  A = await hierarchy('Ed25519');
  B = await hierarchy('ES256');
  const root = await makeRoot('Ed25519', 'Foreign Root');
  foreign = { root, line: await makeIntermediate(root, 'Ed25519', 'Foreign Line') };
});

describe('DeviceKeyCache', () => {
  it('imports a device key once per certificate and evicts the least recently used beyond its size', async () => {
    const a = deviceKeyWire((await TrustStore.create(A.bundle)).verifyChain([A.device.cert, A.line.cert], NOW));
    const b = deviceKeyWire((await TrustStore.create(B.bundle)).verifyChain([B.device.cert, B.line.cert], NOW));
    const cache = new DeviceKeyCache(1);
    const key = cache.get(a);
    expect(key).toMatchObject({ packSerial: a.packSerial, kid: a.kid, publicKey: { alg: 'Ed25519' } });
    expect(cache.get(a)).toBe(key);
    expect(cache.imports).toBe(1);
    expect(cache.get(b).publicKey.alg).toBe('ES256');
    expect(cache.get(a)).not.toBe(key); // evicted by b, imported again
    expect(cache.imports).toBe(3);
  });

  it('when the raw key is not a key of its algorithm › throws COSE_KEY and caches nothing', async () => {
    const a = deviceKeyWire((await TrustStore.create(A.bundle)).verifyChain([A.device.cert, A.line.cert], NOW));
    const cache = new DeviceKeyCache();
    expect(codeOf(() => cache.get({ ...a, raw: new Uint8Array(5) }))).toBe('COSE_KEY');
    expect(cache.get(a).publicKey.alg).toBe('Ed25519');
    expect(cache.imports).toBe(1);
  });
});

describe('TrustStore.create', () => {
  it('builds a store that verifies the bundle’s devices (control)', async () => {
    const store = await TrustStore.create(A.bundle);
    expect(store.verifyChain([A.device.cert, A.line.cert], NOW).packSerial).toBe('PACK-0001');
  });

  it('reports the earliest CRL nextUpdate, or none without CRLs', async () => {
    const soon = new Date('2030-01-01T00:00:00Z');
    const store = await TrustStore.create({ ...A.bundle, crls: [A.bundle.crls[0] ?? new Uint8Array(), await makeCrl(A.line, [], { nextUpdate: soon })] });
    expect(store.crlsValidUntil).toEqual(soon);
    expect((await TrustStore.create({ ...A.bundle, crls: [] })).crlsValidUntil).toBeUndefined();
  });

  it('throws TRUST_BUNDLE for a root that is not self-signed', async () => {
    const w = A;
    expect(await codeOfAsync(() => TrustStore.create({ roots: [w.line.cert], intermediates: [], crls: [] }))).toBe('TRUST_BUNDLE');
  });

  it('throws TRUST_BUNDLE for an intermediate that does not chain to a bundled root', async () => {
    const w = A;
    const b = { roots: [w.root.cert], intermediates: [foreign.line.cert], crls: [] };
    expect(await codeOfAsync(() => TrustStore.create(b))).toBe('TRUST_BUNDLE');
  });

  it('links intermediates whatever their order', async () => {
    // root (pathLen 2) → mid (pathLen 1) → line (pathLen 0) → device; the bundle lists line before mid.
    const keys = await caKeys('ES256');
    const caExt = (pathLen: number) => [
      new x509.BasicConstraintsExtension(true, pathLen, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ];
    const rootCert = await x509.X509CertificateGenerator.createSelfSigned({
      name: [{ CN: ['Deep Root'] }], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, notBefore: NOT_BEFORE, notAfter: NOT_AFTER, extensions: caExt(2),
    });
    const root: TestCa = { cert: new Uint8Array(rootCert.rawData), keys, alg: 'ES256' };
    const midKeys = await caKeys('ES256');
    const midSpki = new Uint8Array(await webcrypto.subtle.exportKey('spki', midKeys.publicKey));
    const mid: TestCa = { cert: await rawCert({ subject: [{ CN: ['Mid'] }], issuer: root, publicKey: midSpki, extensions: caExt(1) }), keys: midKeys, alg: 'ES256' };
    const line = await makeIntermediate(mid, 'ES256', 'Deep Line');
    const device = await issueDevice(line, 'Ed25519', 'PACK-DEEP');
    for (const intermediates of [[line.cert, mid.cert], [mid.cert, line.cert]]) {
      const store = await TrustStore.create({ roots: [root.cert], intermediates, crls: [] }, { requireCrl: false });
      expect(store.verifyChain([device.cert], NOW).packSerial).toBe('PACK-DEEP');
    }
  });

  it('throws TRUST_BUNDLE for a CRL whose issuer is not in the bundle', async () => {
    const w = A;
    const b = { roots: [w.root.cert], intermediates: [], crls: [await makeCrl(foreign.root)] };
    expect(await codeOfAsync(() => TrustStore.create(b))).toBe('TRUST_BUNDLE');
  });

  it('throws CRL_SIGNATURE for a CRL signed by another key under the same name', async () => {
    const w = A;
    const impostor = await makeRoot('Ed25519'); // same default name as w.root
    const b = { roots: [w.root.cert], intermediates: [], crls: [await makeCrl(impostor)] };
    expect(await codeOfAsync(() => TrustStore.create(b))).toBe('CRL_SIGNATURE');
  });

  it('throws CERT_PARSE and CRL_PARSE for unreadable entries', async () => {
    const w = A;
    expect(await codeOfAsync(() => TrustStore.create({ roots: [Uint8Array.of(1, 2)], intermediates: [], crls: [] }))).toBe('CERT_PARSE');
    expect(await codeOfAsync(() => TrustStore.create({ roots: [w.root.cert], intermediates: [], crls: [Uint8Array.of(0x30, 0)] }))).toBe('CRL_PARSE');
  });

  it('uses the CRL with the highest cRLNumber whatever the order', async () => {
    const w = B;
    const old = await makeCrl(w.line, [], { crlNumber: 1 });
    const newer = await makeCrl(w.line, [{ serialHex: serialOf(w.device.cert), date: NOW }], { crlNumber: 2 });
    for (const crls of [[old, newer], [newer, old]]) {
      const store = await TrustStore.create({ ...w.bundle, crls: [...crls, ...w.bundle.crls.slice(0, 1)] });
      expect(codeOf(() => store.verifyChain([w.device.cert, w.line.cert], NOW))).toBe('CERT_REVOKED');
    }
  });
});
