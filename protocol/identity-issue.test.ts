import { X509Certificate, webcrypto } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { toHex } from './bytes.js';
import { importPublicKey, sha256, spkiOf } from './crypto.js';
import {
  canonicalSpki,
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  decodeCrlNumber,
  encodeCrlNumber,
  keyFingerprint,
  keyId,
  normaliseSerial,
  parseCertificate,
  parseCrl,
} from './identity.js';
import {
  CRL_NEXT_UPDATE,
  NOT_AFTER,
  NOT_BEFORE,
  caKeys,
  deviceKeys,
  issuerOf,
  makeIntermediate,
  makeRoot,
  rawCert,
  type TestCa,
} from './identity-testkit.js';
import { x509 } from './identity-x509.js';
import { codeOfAsync } from './testing.js';


let root: TestCa;
let line: TestCa;

beforeAll(async () => {
  root = await makeRoot('ES256');
  line = await makeIntermediate(root, 'Ed25519');
});

const dates = { notBefore: NOT_BEFORE, notAfter: NOT_AFTER };

describe('createRootCa', () => {
  it('issues a self-signed CA with critical basicConstraints (pathLen 1) and keyUsage keyCertSign|cRLSign, and an SKI', () => {
    const pc = new x509.X509Certificate(root.cert);
    const bc = pc.getExtension(x509.BasicConstraintsExtension);
    const ku = pc.getExtension(x509.KeyUsagesExtension);
    expect([bc?.ca, bc?.pathLength, bc?.critical]).toEqual([true, 1, true]);
    expect([ku?.usages, ku?.critical]).toEqual([x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true]);
    expect(pc.getExtension(x509.SubjectKeyIdentifierExtension)).not.toBeNull();
    expect(pc.subject).toBe('CN=Test Root ES256, O=Packchain Test');
    const node = new X509Certificate(root.cert);
    expect(node.verify(node.publicKey)).toBe(true);
  });

  it('uses a random positive 16-byte serial number by default', async () => {
    const serials = [root.cert, (await makeRoot('Ed25519')).cert].map((c) => new x509.X509Certificate(c).serialNumber);
    for (const s of serials) {
      expect(s).toMatch(/^[0-7][0-9a-f]{31}$/);
    }
    expect(serials[0]).not.toBe(serials[1]);
  });

  it('uses the given serial number', async () => {
    const keys = await caKeys('Ed25519');
    const cert = await createRootCa({ name: 'R', keys, alg: 'Ed25519', ...dates, serialNumber: '00ff' });
    expect(parseCertificate(cert).serial).toBe('FF');
  });

  it('throws CERT_ISSUE for keys that do not match alg, bad dates, bad names or bad serials', async () => {
    const keys = await caKeys('Ed25519');
    const base = { name: 'R', keys, alg: 'Ed25519' as const, ...dates };
    expect(await codeOfAsync(() => createRootCa({ ...base, alg: 'ES256' }))).toBe('CERT_ISSUE');
    expect(await codeOfAsync(() => createRootCa({ ...base, notAfter: NOT_BEFORE }))).toBe('CERT_ISSUE');
    expect(await codeOfAsync(() => createRootCa({ ...base, notBefore: new Date(NaN) }))).toBe('CERT_ISSUE');
    expect(await codeOfAsync(() => createRootCa({ ...base, name: '' }))).toBe('CERT_ISSUE');
    expect(await codeOfAsync(() => createRootCa({ ...base, name: 'x'.repeat(65) }))).toBe('CERT_ISSUE');
    expect(await codeOfAsync(() => createRootCa({ ...base, org: 'a\nb' }))).toBe('CERT_ISSUE');
    for (const serialNumber of ['xyz', '0', '00', 'f'.repeat(41), '8'.padEnd(40, '0')]) {
      expect(await codeOfAsync(() => createRootCa({ ...base, serialNumber }))).toBe('CERT_ISSUE');
    }
    expect(await codeOfAsync(() => createRootCa({ ...base, serialNumber: '7'.padEnd(40, 'f') }))).toBe('ok');
  });
});

describe('createIntermediateCa', () => {
  it('issues a CA with pathLen 0 whose AKI is the issuer’s SKI', () => {
    const pc = new x509.X509Certificate(line.cert);
    expect(pc.getExtension(x509.BasicConstraintsExtension)?.pathLength).toBe(0);
    const ski = new x509.X509Certificate(root.cert).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    expect(pc.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(ski);
    expect(new X509Certificate(line.cert).checkIssued(new X509Certificate(root.cert))).toBe(true);
  });

  it('throws CERT_ISSUE when the issuer is a line CA (pathLenConstraint 0)', async () => {
    const keys = await caKeys('Ed25519');
    const p = { name: 'Sub', keys, alg: 'Ed25519' as const, ...dates, issuer: issuerOf(line) };
    expect(await codeOfAsync(() => createIntermediateCa(p))).toBe('CERT_ISSUE');
  });

  it('throws CERT_ISSUE when the issuer private key does not belong to the issuer certificate', async () => {
    const keys = await caKeys('Ed25519');
    const wrong = await caKeys('ES256');
    const p = { name: 'L', keys, alg: 'Ed25519' as const, ...dates, issuer: { cert: root.cert, privateKey: wrong.privateKey } };
    expect(await codeOfAsync(() => createIntermediateCa(p))).toBe('CERT_ISSUE');
  });

  it('throws CERT_PARSE for an unreadable issuer certificate', async () => {
    const keys = await caKeys('Ed25519');
    const p = { name: 'L', keys, alg: 'Ed25519' as const, ...dates, issuer: { cert: Uint8Array.of(0x30, 1, 0), privateKey: root.keys.privateKey } };
    expect(await codeOfAsync(() => createIntermediateCa(p))).toBe('CERT_PARSE');
  });
});

describe('createDeviceCert', () => {
  const device = (over: Partial<Parameters<typeof createDeviceCert>[0]> = {}) => {
    const k = deviceKeys('ES256');
    return createDeviceCert({ packSerial: 'PACK-0042', model: 'BMU-7', org: 'Acme', devicePublicKey: k.publicKey, deviceAlg: 'ES256', issuer: issuerOf(line), ...dates, ...over });
  };

  it('writes CN, serialNumber (2.5.4.5), OU and O, and the device profile extensions', async () => {
    const pc = new x509.X509Certificate(await device());
    expect(pc.subject).toBe('CN=PACK-0042, 2.5.4.5=PACK-0042, OU=BMU-7, O=Acme');
    expect(pc.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(pc.getExtension(x509.KeyUsagesExtension)?.critical).toBe(true);
    const bc = pc.getExtension(x509.BasicConstraintsExtension);
    expect([bc?.ca, bc?.critical]).toEqual([false, true]);
    expect(pc.getExtension(x509.AuthorityKeyIdentifierExtension)).not.toBeNull();
    expect(pc.getExtension(x509.SubjectKeyIdentifierExtension)).not.toBeNull();
  });

  it('stores a compressed P-256 key as the canonical uncompressed SPKI', async () => {
    const k = deviceKeys('ES256');
    expect(k.publicKey).toHaveLength(33);
    const info = parseCertificate(await createDeviceCert({ packSerial: 'P1', devicePublicKey: k.publicKey, deviceAlg: 'ES256', issuer: issuerOf(line), ...dates }));
    expect(info.spki).toEqual(canonicalSpki(k.publicKey));
    expect(info.spki).toHaveLength(91);
  });

  it('accepts the device key as SPKI DER', async () => {
    const k = deviceKeys('Ed25519');
    const info = parseCertificate(await createDeviceCert({ packSerial: 'P2', devicePublicKey: canonicalSpki(k.publicKey), deviceAlg: 'Ed25519', issuer: issuerOf(line), ...dates }));
    expect(info.spki).toEqual(canonicalSpki(k.publicKey));
  });

  it('throws CERT_ISSUE for a pack serial outside the pattern', async () => {
    for (const packSerial of ['', 'PACK 1', '-PACK', 'PACK_1', 'x'.repeat(65), 'PÄCK']) {
      expect(await codeOfAsync(() => device({ packSerial }))).toBe('CERT_ISSUE');
    }
  });

  it('throws COSE_KEY for a key of the wrong size, off the curve, or not matching deviceAlg', async () => {
    expect(await codeOfAsync(() => device({ devicePublicKey: new Uint8Array(31) }))).toBe('COSE_KEY');
    expect(await codeOfAsync(() => device({ devicePublicKey: Uint8Array.of(2, ...new Uint8Array(32).fill(0xff)) }))).toBe('COSE_KEY');
    expect(await codeOfAsync(() => device({ devicePublicKey: deviceKeys('Ed25519').publicKey }))).toBe('COSE_KEY');
  });

  it('throws CERT_ISSUE when the issuer is not a CA', async () => {
    const keys = await caKeys('ES256');
    const spki = canonicalSpki(importPublicKey('ES256', p256.getPublicKey(p256.utils.randomSecretKey())));
    const notCa = await rawCert({ subject: [{ CN: ['X'] }], issuer: line, publicKey: spki, extensions: [] });
    expect(await codeOfAsync(() => device({ issuer: { cert: notCa, privateKey: keys.privateKey } }))).toBe('CERT_ISSUE');
  });
});

describe('createCrl', () => {
  it('writes cRLNumber, nextUpdate, the revoked serials and their reasons', async () => {
    const der = await createCrl({
      issuer: issuerOf(line),
      crlNumber: 300n,
      thisUpdate: NOT_BEFORE,
      nextUpdate: CRL_NEXT_UPDATE,
      revoked: [
        { serialHex: '00ABCD', date: NOT_BEFORE, reason: 'keyCompromise' },
        { serialHex: '8000', date: NOT_BEFORE },
      ],
    });
    const info = parseCrl(der);
    expect(info.crlNumber).toBe(300n);
    expect(info.nextUpdate).toEqual(CRL_NEXT_UPDATE);
    expect([...info.revoked].sort()).toEqual(['8000', 'ABCD']);
    const entries = new x509.X509Crl(der).entries;
    expect(entries.map((e) => e.reason)).toEqual([x509.X509CrlReason.keyCompromise, undefined]);
  });

  it('omits crlEntryExtensions for an entry without a reason (RFC 5280 §5.1: SIZE (1..MAX))', async () => {
    for (const issuer of [line, root]) {
      const serial = '11223344556677881122334455667788';
      const der = await createCrl({ issuer: issuerOf(issuer), crlNumber: 1, thisUpdate: NOT_BEFORE, nextUpdate: CRL_NEXT_UPDATE, revoked: [{ serialHex: serial, date: NOT_BEFORE }] });
      const at = Buffer.from(der).indexOf(Buffer.from(`0210${serial}`, 'hex'));
      // entry = SEQUENCE { INTEGER (18 bytes), UTCTime (15 bytes) } and nothing else
      expect([der[at - 2], der[at - 1]]).toEqual([0x30, 18 + 15]);
      expect(await new x509.X509Crl(der).verify({ publicKey: await x509.PublicKey.create(new X509Certificate(issuer.cert).publicKey.export({ format: 'der', type: 'spki' })) })).toBe(true);
    }
  });

  it('throws CERT_ISSUE for a duplicate serial, a negative number, or bad dates', async () => {
    const base = { issuer: issuerOf(line), crlNumber: 1, thisUpdate: NOT_BEFORE, nextUpdate: CRL_NEXT_UPDATE, revoked: [] };
    const dup = [{ serialHex: 'AB', date: NOT_BEFORE }, { serialHex: '00ab', date: NOT_BEFORE }];
    expect(await codeOfAsync(() => createCrl({ ...base, revoked: dup }))).toBe('CERT_ISSUE');
    expect(await codeOfAsync(() => createCrl({ ...base, crlNumber: -1 }))).toBe('CERT_ISSUE');
    expect(await codeOfAsync(() => createCrl({ ...base, crlNumber: 1.5 }))).toBe('CERT_ISSUE');
    expect(await codeOfAsync(() => createCrl({ ...base, nextUpdate: NOT_BEFORE }))).toBe('CERT_ISSUE');
  });

  it('throws CERT_ISSUE when the issuer lacks cRLSign', async () => {
    const keys = await caKeys('Ed25519');
    const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    const ca = await rawCert({
      subject: [{ CN: ['Cert-only CA'] }],
      issuer: root,
      publicKey: spki,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    const p = { issuer: { cert: ca, privateKey: keys.privateKey }, crlNumber: 1, thisUpdate: NOT_BEFORE, nextUpdate: CRL_NEXT_UPDATE, revoked: [] };
    expect(await codeOfAsync(() => createCrl(p))).toBe('CERT_ISSUE');
  });
});

describe('keyId and keyFingerprint', () => {
  it('give the same value for a raw key, its compressed form and its SPKI', () => {
    const k = deviceKeys('ES256');
    const uncompressed = p256.Point.fromBytes(k.publicKey).toBytes(false);
    const spki = canonicalSpki(k.publicKey);
    for (const form of [k.publicKey, uncompressed, spki, importPublicKey('ES256', k.publicKey)]) {
      expect(keyFingerprint(form)).toBe(toHex(sha256(spki)));
      expect(keyId(form)).toEqual(sha256(spki).subarray(0, 16));
    }
  });

  it('equal the first 16 bytes of SHA-256 over spkiOf(key), the definition the COSE layer uses', () => {
    for (const alg of ['Ed25519', 'ES256'] as const) {
      const pk = importPublicKey(alg, deviceKeys(alg).publicKey);
      expect(keyId(pk)).toEqual(sha256(spkiOf(pk)).subarray(0, 16));
    }
  });

  it('give the same value for an SPKI holding the compressed point', () => {
    const k = deviceKeys('ES256');
    const compressedSpki = Uint8Array.from([...Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), ...k.publicKey]);
    expect(keyId(compressedSpki)).toEqual(keyId(k.publicKey));
    expect(canonicalSpki(compressedSpki)).toHaveLength(91);
  });

  it('hash the RFC 8410 §4 SPKI for Ed25519', () => {
    const k = deviceKeys('Ed25519');
    expect(toHex(canonicalSpki(k.publicKey))).toBe(`302a300506032b6570032100${toHex(k.publicKey)}`);
  });

  it('throw COSE_KEY for a key of another size or a non-key', () => {
    for (const bad of [new Uint8Array(31), new Uint8Array(64), Uint8Array.of(0x30, 0x00), new Uint8Array(300)]) {
      expect(() => keyId(bad)).toThrow(expect.objectContaining({ code: 'COSE_KEY' }));
    }
  });
});

describe('cRLNumber and serial encoding', () => {
  it('round-trips cRLNumber values through minimal DER INTEGERs', () => {
    for (const n of [0n, 127n, 128n, 255n, 256n, 2n ** 64n, 2n ** 158n]) {
      expect(decodeCrlNumber(encodeCrlNumber(n))).toBe(n);
    }
    expect(toHex(encodeCrlNumber(128n))).toBe('02020080');
  });

  it('throws CRL_PARSE for negative, non-minimal or malformed numbers', () => {
    for (const hex of ['0201ff', '02020001', '0400', '02', '020201']) {
      expect(() => decodeCrlNumber(Uint8Array.from(Buffer.from(hex, 'hex')))).toThrow(expect.objectContaining({ code: 'CRL_PARSE' }));
    }
  });

  it('normalises serials to uppercase hex without leading zeros', () => {
    expect([normaliseSerial('00ab'), normaliseSerial('AB'), normaliseSerial('0000'), normaliseSerial('0a0')]).toEqual(['AB', 'AB', '0', 'A0']);
  });
});

describe('parseCertificate', () => {
  it('reads the same fields as @peculiar/x509 for every certificate kind we issue', async () => {
    const dev = await createDeviceCert({ packSerial: 'PACK-X9', model: 'M', org: 'O', devicePublicKey: deviceKeys('Ed25519').publicKey, deviceAlg: 'Ed25519', issuer: issuerOf(line), ...dates });
    for (const der of [root.cert, line.cert, dev]) {
      const mine = parseCertificate(der);
      const pc = new x509.X509Certificate(der);
      const bc = pc.getExtension(x509.BasicConstraintsExtension);
      expect(mine.serial).toBe(normaliseSerial(pc.serialNumber));
      expect(mine.subjectDer).toEqual(new Uint8Array(pc.subjectName.toArrayBuffer()));
      expect(mine.issuerDer).toEqual(new Uint8Array(pc.issuerName.toArrayBuffer()));
      expect(mine.spki).toEqual(new Uint8Array(pc.publicKey.rawData));
      expect(mine.keyUsage).toBe(pc.getExtension(x509.KeyUsagesExtension)?.usages);
      expect([mine.isCa, mine.pathLen]).toEqual([bc?.ca ?? false, bc?.pathLength]);
      expect(mine.commonNames).toEqual(pc.subjectName.getField('CN'));
      expect(mine.serialNumbers).toEqual(pc.subjectName.getField('2.5.4.5'));
      expect(mine.notBefore).toEqual(pc.notBefore);
      expect(mine.notAfter).toEqual(pc.notAfter);
      expect(mine.unhandledCritical).toEqual([]);
    }
  });

  it('lists critical extensions it does not process', async () => {
    const der = await rawCert({
      subject: [{ CN: ['X'] }],
      issuer: line,
      publicKey: canonicalSpki(deviceKeys('Ed25519').publicKey),
      extensions: [new x509.Extension('1.2.840.113549.1.9.99', true, Uint8Array.of(5, 0)), new x509.Extension('2.5.29.32', false, Uint8Array.of(0x30, 0))],
    });
    expect(parseCertificate(der).unhandledCritical).toEqual(['1.2.840.113549.1.9.99']);
  });

  it('throws CERT_PARSE for an extension that appears twice', async () => {
    const ku = () => new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true);
    const der = await rawCert({ subject: [{ CN: ['X'] }], issuer: line, publicKey: canonicalSpki(deviceKeys('Ed25519').publicKey), extensions: [ku(), ku()] });
    expect(await codeOfAsync(() => Promise.resolve(parseCertificate(der)))).toBe('CERT_PARSE');
  });
});
