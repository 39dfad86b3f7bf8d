/**
 * One-off generator for test/vectors/identity.json (docs/protocol.md §3.10). Run with
 * `npx tsx test/vectors/identity.gen.ts`. It reuses the TEST-ONLY keys already in the file (so
 * key ids stay stable when vectors are added) and creates missing ones. Expected values are derived
 * from the inputs (pack serials, kid = SHA-256(prefix ‖ raw key)[0..16]) or fixed by construction
 * (error codes), then every vector is checked against the verifier before the file is written.
 * External inputs: RFC 8410 §10.1–§10.3 (Ed25519 key, example certificate, private key) and
 * RFC 9052 §C.7.1 (P-256 key "11").
 */
import { createHash, webcrypto } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { toHex } from '../../protocol/bytes.js';
import { isProtocolError } from '../../protocol/errors.js';
import {
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  encodeTrustBundle,
  TrustStore,
  type TrustBundle,
} from '../../protocol/identity.js';
import { rawCert, serialOf, type TestCa } from '../../protocol/identity-testkit.js';
import { x509 } from '../../protocol/identity-x509.js';

type Alg = 'Ed25519' | 'ES256';
const OUT = join(dirname(fileURLToPath(import.meta.url)), 'identity.json');
const NB = new Date('2025-01-01T00:00:00Z');
const NA = new Date('2125-01-01T00:00:00Z');
const CRL_NEXT = new Date('2100-01-01T00:00:00Z');
const NOW = '2026-06-01T00:00:00Z';
const hex = (b: Uint8Array): string => toHex(b);
const unhex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

// RFC 8410 §10.1 public key, §10.3 private key, §10.2 example X25519 certificate signed by it.
const RFC8410_SPKI = 'MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=';
const RFC8410_PKCS8 = 'MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC';
const RFC8410_CERT =
  'MIIBLDCB36ADAgECAghWAUdKKo3DMDAFBgMrZXAwGTEXMBUGA1UEAwwOSUVURiBUZXN0IERlbW8wHhcNMTYwODAxMTIxOTI0WhcNNDAxMjMxMjM1OTU5WjAZMRcwFQYDVQQD' +
  'DA5JRVRGIFRlc3QgRGVtbzAqMAUGAytlbgMhAIUg8AmJMKdUdIt93LQ+91oNvzoNJjga9OukqY6qm05qo0UwQzAPBgNVHRMBAf8EBTADAQEAMA4GA1UdDwEBAAQEAwIDCDAg' +
  'BgNVHQ4BAQAEFgQUmx9e7e0EM4Xk97xiPFl1uQvIuzswBQYDK2VwA0EAryMB/t3J5v/BzKc9dNZIpDmAgs3babFOTQbs+BolzlDUwsPrdGxO3YNGhW7Ibz3OGhhlxXrCe1Cg' +
  'w1AH9efZBw==';
// RFC 9052 §C.7.1 / §C.7.2: P-256 key with kid "11".
const RFC9052_X = 'bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a86d6a09eff';
const RFC9052_Y = '20138bf82dc1b6d562be0fa54ab7804a3a64b6d72ccfed6b6fb6ed28bbfc117e';
const RFC9052_D = '57c92077664146e876760c9520d054aa93c3afb04e306705db6090308507b4d3';

const PREFIX = { Ed25519: '302a300506032b6570032100', ES256: '3059301306072a8648ce3d020106082a8648ce3d030107034200' };

interface Keys {
  ca: Record<string, string>;
  devices: Record<string, string>;
}
const old = existsSync(OUT) ? (JSON.parse(readFileSync(OUT, 'utf8')) as { testOnlyPrivateKeys?: Keys }).testOnlyPrivateKeys : undefined;
const keys: Keys = { ca: { ...old?.ca }, devices: { ...old?.devices } };

async function importPair(pkcs8: Uint8Array, alg: Alg): Promise<webcrypto.CryptoKeyPair> {
  const algorithm = alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, true, ['sign']);
  const { d: _d, key_ops: _ops, ...pub } = await webcrypto.subtle.exportKey('jwk', privateKey);
  const publicKey = await webcrypto.subtle.importKey('jwk', pub, algorithm, true, ['verify']);
  return { privateKey, publicKey };
}

async function caPair(name: string, alg: Alg): Promise<webcrypto.CryptoKeyPair> {
  const have = keys.ca[name];
  if (have !== undefined) return importPair(unhex(have), alg);
  const algorithm = alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
  const pair = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  keys.ca[name] = hex(new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey)));
  return pair;
}

function deviceSecret(serial: string, alg: Alg): Uint8Array {
  const have = keys.devices[serial];
  const sk = have !== undefined ? unhex(have) : alg === 'Ed25519' ? ed25519.utils.randomSecretKey() : p256.utils.randomSecretKey();
  keys.devices[serial] = hex(sk);
  return sk;
}

const sha = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
const kidOf = (alg: Alg, rawUncompressed: Uint8Array): string => hex(sha(unhex(PREFIX[alg] + hex(rawUncompressed))).subarray(0, 16));

async function root(name: string, alg: Alg, cn: string): Promise<TestCa> {
  const k = await caPair(name, alg);
  return { cert: await createRootCa({ name: cn, org: 'Packchain Vectors', keys: k, alg, notBefore: NB, notAfter: NA, serialNumber: '01' }), keys: k, alg };
}

async function line(name: string, alg: Alg, cn: string, issuer: TestCa, serialNumber: string): Promise<TestCa> {
  const k = await caPair(name, alg);
  const cert = await createIntermediateCa({ name: cn, org: 'Packchain Vectors', keys: k, alg, notBefore: NB, notAfter: NA, serialNumber, issuer: { cert: issuer.cert, privateKey: issuer.keys.privateKey } });
  return { cert, keys: k, alg };
}

interface Dev {
  cert: Uint8Array;
  serial: string;
  alg: Alg;
  raw: Uint8Array;
  sign(m: Uint8Array): Uint8Array;
}

async function device(issuer: TestCa, alg: Alg, serial: string, certSerial: string): Promise<Dev> {
  const sk = deviceSecret(serial, alg);
  const pub = alg === 'Ed25519' ? ed25519.getPublicKey(sk) : p256.getPublicKey(sk, false);
  const cert = await createDeviceCert({
    packSerial: serial, model: 'BMU-V1', org: 'Packchain Vectors', devicePublicKey: pub, deviceAlg: alg,
    issuer: { cert: issuer.cert, privateKey: issuer.keys.privateKey }, notBefore: NB, notAfter: NA, serialNumber: certSerial,
  });
  return { cert, serial, alg, raw: pub, sign: (m) => (alg === 'Ed25519' ? ed25519.sign(m, sk) : p256.sign(m, sk)) };
}

const crl = (ca: TestCa, revoked: { serialHex: string; date: Date }[], crlNumber = 1): Promise<Uint8Array> =>
  createCrl({ issuer: { cert: ca.cert, privateKey: ca.keys.privateKey }, crlNumber, thisUpdate: NB, nextUpdate: CRL_NEXT, revoked });

// --- the world -------------------------------------------------------------------------------
const rootA = await root('root-ed25519', 'Ed25519', 'Vector Root Ed25519');
const lineA = await line('line-ed25519', 'Ed25519', 'Vector Line Ed25519', rootA, '0a01');
const rootB = await root('root-es256', 'ES256', 'Vector Root ES256');
const lineB = await line('line-es256', 'ES256', 'Vector Line ES256', rootB, '0b01');
const lineB2 = await line('line2-es256', 'ES256', 'Vector Revoked Line ES256', rootB, '0b02');
const foreignRoot = await root('foreign-root', 'Ed25519', 'Vector Foreign Root');
const foreignLine = await line('foreign-line', 'Ed25519', 'Vector Foreign Line', foreignRoot, '0f01');

const dAed = await device(lineA, 'Ed25519', 'PACK-V-A-ED', '1001');
const dAes = await device(lineA, 'ES256', 'PACK-V-A-ES', '1002');
const dArev = await device(lineA, 'Ed25519', 'PACK-V-A-REV', '1003');
const dBed = await device(lineB, 'Ed25519', 'PACK-V-B-ED', '2001');
const dBes = await device(lineB, 'ES256', 'PACK-V-B-ES', '2002');
const dB2 = await device(lineB2, 'ES256', 'PACK-V-B2-ES', '2101');
const dForeign = await device(foreignLine, 'Ed25519', 'PACK-V-F-ED', '3001');

// A device certificate whose key is a WebCrypto key, so it can sign another "device" (CHAIN_NOT_CA).
const fakeCaKeys = await caPair('device-as-ca', 'Ed25519');
const fakeCaSpki = new Uint8Array(await webcrypto.subtle.exportKey('spki', fakeCaKeys.publicKey));
const fakeCa = await createDeviceCert({
  packSerial: 'PACK-V-A-FAKECA', devicePublicKey: fakeCaSpki, deviceAlg: 'Ed25519', issuer: { cert: lineA.cert, privateKey: lineA.keys.privateKey },
  notBefore: NB, notAfter: NA, serialNumber: '1004',
});
const DS = new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true);
const leafUnderDevice = await rawCert({
  subject: [{ CN: ['PACK-V-LEAF'] }, { '2.5.4.5': ['PACK-V-LEAF'] }],
  issuer: { cert: fakeCa, keys: fakeCaKeys, alg: 'Ed25519' },
  publicKey: unhex(PREFIX.Ed25519 + hex(dAed.raw)),
  extensions: [DS],
});
const noSerialAttr = await rawCert({ subject: [{ CN: ['PACK-V-NOSN'] }], issuer: lineA, publicKey: unhex(PREFIX.Ed25519 + hex(dAed.raw)), extensions: [DS] });

const rootACrl = await crl(rootA, []);
const lineACrl = await crl(lineA, [{ serialHex: serialOf(dArev.cert), date: NB }], 2);
const rootBCrl = await crl(rootB, [{ serialHex: serialOf(lineB2.cert), date: NB }]);
const lineBCrl = await crl(lineB, []);
const lineB2Crl = await crl(lineB2, []);

const main: TrustBundle = { roots: [rootA.cert, rootB.cert], intermediates: [lineA.cert, lineB.cert, lineB2.cert], crls: [rootACrl, lineACrl, rootBCrl, lineBCrl, lineB2Crl] };
const nocrl: TrustBundle = { ...main, crls: [] };

// RFC 8410: a root named like the example certificate's issuer (UTF8String "IETF Test Demo") with the
// §10.1 key, made from the §10.3 private key, so the published signature can be checked by our verifier.
const rfcPair = await importPair(Buffer.from(RFC8410_PKCS8, 'base64'), 'Ed25519');
const rfcRoot = await x509.X509CertificateGenerator.createSelfSigned({
  serialNumber: '01', name: new x509.Name([{ CN: [{ utf8String: 'IETF Test Demo' }] }]), keys: rfcPair, signingAlgorithm: { name: 'Ed25519' },
  notBefore: new Date('2016-01-01T00:00:00Z'), notAfter: NA,
  extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
});
const rfcBundle: TrustBundle = { roots: [new Uint8Array(rfcRoot.rawData)], intermediates: [], crls: [] };
const rfcCert = Uint8Array.from(Buffer.from(RFC8410_CERT, 'base64'));
const rfcCertBadSig = Uint8Array.from(rfcCert);
rfcCertBadSig[rfcCertBadSig.length - 1] = (rfcCertBadSig[rfcCertBadSig.length - 1] ?? 0) ^ 1;

const bundles = { main: encodeTrustBundle(main), nocrl: encodeTrustBundle(nocrl), rfc8410: encodeTrustBundle(rfcBundle) };

// --- vectors ---------------------------------------------------------------------------------
const MSG = new TextEncoder().encode('packchain identity vector');
type V = Record<string, unknown> & { name: string; expect: string };
const vectors: V[] = [];
const ok = (name: string, d: Dev, chain: Uint8Array[], extra: Record<string, unknown> = {}): void => {
  const uncompressed = d.alg === 'Ed25519' ? d.raw : p256.Point.fromBytes(d.raw).toBytes(false);
  vectors.push({
    name, kind: 'chain', expect: 'ok', bundle: 'main', now: NOW, chain: chain.map(hex), packSerial: d.serial, alg: d.alg,
    kid: kidOf(d.alg, uncompressed), devicePublicKey: hex(d.raw), certSha256: hex(sha(d.cert)), message: hex(MSG), signature: hex(d.sign(MSG)), ...extra,
  });
};
const err = (name: string, code: string, chain: Uint8Array[], extra: Record<string, unknown> = {}): void => {
  vectors.push({ name, kind: 'chain', expect: code, bundle: 'main', now: NOW, chain: chain.map(hex), ...extra });
};

ok('Ed25519 device under Ed25519 line CA', dAed, [dAed.cert, lineA.cert]);
ok('ES256 device under Ed25519 line CA', dAes, [dAes.cert, lineA.cert]);
ok('Ed25519 device under ES256 line CA', dBed, [dBed.cert, lineB.cert]);
ok('ES256 device under ES256 line CA, root included', dBes, [dBes.cert, lineB.cert, rootB.cert]);
ok('device certificate alone; line CA from the bundle', dAed, [dAed.cert]);
ok('no CRLs in the bundle and requireCrl false', dAes, [dAes.cert, lineA.cert], { bundle: 'nocrl', requireCrl: false });
ok('valid at exactly notBefore', dBed, [dBed.cert, lineB.cert], { now: '2025-01-01T00:00:00Z' });
err('device revoked by the line CA CRL', 'CERT_REVOKED', [dArev.cert, lineA.cert]);
err('line CA revoked by the root CRL', 'CERT_REVOKED', [dB2.cert, lineB2.cert]);
err('one second after notAfter', 'CERT_EXPIRED', [dAed.cert, lineA.cert], { now: '2125-01-01T00:00:01Z' });
err('one second before notBefore', 'CERT_NOT_YET_VALID', [dAed.cert, lineA.cert], { now: '2024-12-31T23:59:59Z' });
err('after the CRL nextUpdate', 'CRL_STALE', [dBes.cert, lineB.cert], { now: '2100-01-01T00:00:01Z' });
err('no CRLs in the bundle', 'CRL_MISSING', [dAed.cert, lineA.cert], { bundle: 'nocrl' });
err('empty chain', 'CHAIN_EMPTY', []);
err('five certificates', 'CHAIN_TOO_LONG', [dAed.cert, lineA.cert, lineA.cert, lineA.cert, rootA.cert]);
err('garbage DER', 'CERT_PARSE', [unhex('3003020101')]);
err('device certificate with a trailing byte', 'CERT_PARSE', [unhex(hex(dAed.cert) + '00'), lineA.cert]);
const flipped = Uint8Array.from(dAes.cert);
flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 1;
err('flipped signature byte', 'CHAIN_SIGNATURE', [flipped, lineA.cert]);
err('wrong line CA presented', 'CHAIN_BROKEN', [dAed.cert, lineB.cert]);
err('foreign hierarchy', 'CHAIN_UNTRUSTED', [dForeign.cert, foreignLine.cert, foreignRoot.cert]);
err('self-signed certificate as device', 'CHAIN_UNTRUSTED', [foreignRoot.cert]);
err('issued by a device certificate', 'CHAIN_NOT_CA', [leafUnderDevice, fakeCa, lineA.cert]);
err('no subject serialNumber attribute', 'CERT_PROFILE', [noSerialAttr, lineA.cert]);
err('RFC 8410 §10.2 example certificate: signature verifies, X25519 key is outside the profile', 'CERT_PROFILE', [rfcCert], {
  bundle: 'rfc8410', requireCrl: false, now: '2030-01-01T00:00:00Z',
});
err('RFC 8410 §10.2 example certificate with a flipped signature byte', 'CHAIN_SIGNATURE', [rfcCertBadSig], {
  bundle: 'rfc8410', requireCrl: false, now: '2030-01-01T00:00:00Z',
});

const rfc8410Spki = Uint8Array.from(Buffer.from(RFC8410_SPKI, 'base64'));
vectors.push({
  name: 'keyId of the RFC 8410 §10.1 Ed25519 public key', kind: 'keyId', expect: 'ok', publicKey: hex(rfc8410Spki),
  kid: hex(sha(rfc8410Spki).subarray(0, 16)), fingerprint: hex(sha(rfc8410Spki)),
});
const p256Raw = unhex(`04${RFC9052_X}${RFC9052_Y}`);
if (hex(p256.getPublicKey(unhex(RFC9052_D), false)) !== hex(p256Raw)) throw new Error('RFC 9052 key does not match its private key');
for (const [form, bytes] of [['uncompressed point', p256Raw], ['compressed point', p256.Point.fromBytes(p256Raw).toBytes(true)], ['SPKI', unhex(PREFIX.ES256 + hex(p256Raw))]] as const) {
  vectors.push({
    name: `keyId of the RFC 9052 §C.7.1 P-256 key "11" given as ${form}`, kind: 'keyId', expect: 'ok', publicKey: hex(bytes),
    kid: kidOf('ES256', p256Raw), fingerprint: hex(sha(unhex(PREFIX.ES256 + hex(p256Raw)))),
  });
}
vectors.push({ name: 'keyId of a 31-byte key', kind: 'keyId', expect: 'COSE_KEY', publicKey: hex(new Uint8Array(31)) });
vectors.push({ name: 'the main trust bundle', kind: 'bundle', expect: 'ok', text: bundles.main });
vectors.push({ name: 'trust bundle with another format', kind: 'bundle', expect: 'TRUST_BUNDLE', text: bundles.main.replace('packchain-trust/v1', 'packchain-trust/v0') });
vectors.push({ name: 'trust bundle with a "BEGIN CRL" label', kind: 'bundle', expect: 'TRUST_BUNDLE', text: bundles.main.replaceAll('X509 CRL', 'CRL') });
vectors.push({ name: 'line CA CRL revoking PACK-V-A-REV', kind: 'crl', expect: 'ok', der: hex(lineACrl), crlNumber: '2', revoked: [serialOf(dArev.cert).toUpperCase()] });
vectors.push({ name: 'CRL with a trailing byte', kind: 'crl', expect: 'CRL_PARSE', der: `${hex(lineACrl)}00` });

// --- check every vector with the verifier before writing ---------------------------------------
const stores = new Map<string, TrustStore>();
for (const v of vectors.filter((x) => x.kind === 'chain')) {
  const b = v.bundle as keyof typeof bundles;
  const bundle = b === 'main' ? main : b === 'nocrl' ? nocrl : rfcBundle;
  const requireCrl = v.requireCrl !== false;
  const key = `${b}:${String(requireCrl)}`;
  const store = stores.get(key) ?? (await TrustStore.create(bundle, { requireCrl }));
  stores.set(key, store);
  let got: string;
  try {
    const r = store.verifyChain((v.chain as string[]).map(unhex), new Date(v.now as string));
    got = r.packSerial === v.packSerial && hex(r.kid) === v.kid ? 'ok' : `ok with ${r.packSerial}/${hex(r.kid)}`;
  } catch (e) {
    got = isProtocolError(e) ? e.code : String(e);
  }
  if (got !== v.expect) throw new Error(`vector "${v.name}": expected ${v.expect}, got ${got}`);
}

const doc = {
  description:
    'X.509 device identity (docs/protocol.md §3): device chains verified against trust bundles at `now` (kind "chain": ok with packSerial/kid/alg, or an error code), ' +
    'key ids (kind "keyId"), trust bundle files (kind "bundle") and CRLs (kind "crl"). Certificates and CRLs are DER hex; bundles are packchain-trust/v1 text. ' +
    'External inputs: RFC 8410 §10.1-10.3 (Ed25519 key and the example certificate it signed; bytes as in bcgit/bc-java EdECTest) and RFC 9052 §C.7.1 (P-256 key "11"). ' +
    'Generated by test/vectors/identity.gen.ts.',
  testOnlyPrivateKeys: {
    WARNING: 'TEST ONLY. These keys are public; they exist so the vectors can be regenerated. Never use them for anything else.',
    ...keys,
  },
  bundles,
  vectors,
};
writeFileSync(OUT, `${JSON.stringify(doc, null, 2)}\n`);
console.log(`wrote ${vectors.length} vectors to ${OUT}`);
