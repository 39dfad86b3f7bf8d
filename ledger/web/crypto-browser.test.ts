/**
 * The browser stand-ins agree with node:crypto (OpenSSL) — the server side of the one verifier:
 * SHA-256, Ed25519 (RFC 8032 §7.1 vector), ES256 with low-S and high-S signatures, key import in
 * every accepted form, and the X509Certificate stand-in against node's on a real issued chain
 * (signature checks, issuer checks, dates, keys, trailing bytes). Also the verifier's report in
 * Node: a good bundle passes every check, failures land on the right check.
 */
import { generateKeyPairSync, sign as nodeSign, X509Certificate as NodeX509 } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as protocol from '../../protocol/index.js';
import { fromHex } from '../../protocol/index.js';
import * as browser from './crypto-browser.js';
import { certificateParts } from './der-lite.js';
import { X509Certificate as BrowserX509 } from './node-crypto-browser.js';
import { checkOfCode, verifyProof } from './verifier.js';
import { makeWebFixture, PACKS, proofOf, TAMPERED_COUNTER } from './web-testkit.js';

const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

// RFC 8032 §7.1 TEST 2 (one-byte message 0x72).
const RFC8032 = {
  pub: fromHex('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c'),
  msg: fromHex('72'),
  sig: fromHex('92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'),
};

function es256Pair(): { raw: Uint8Array; lowS: Uint8Array; highS: Uint8Array; msg: Uint8Array } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const msg = new TextEncoder().encode('packchain frame');
  const sig = new Uint8Array(nodeSign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
  const r = sig.subarray(0, 32);
  const s = BigInt(`0x${protocol.toHex(sig.subarray(32))}`);
  const other = P256_N - s;
  const low = s <= P256_N / 2n ? s : other;
  const high = s <= P256_N / 2n ? other : s;
  const enc = (v: bigint): Uint8Array => fromHex(v.toString(16).padStart(64, '0'));
  return { raw: protocol.fromKeyObject(publicKey).raw, lowS: protocol.concatBytes(r, enc(low)), highS: protocol.concatBytes(r, enc(high)), msg };
}

describe('crypto-browser (protocol/crypto.ts on @noble)', () => {
  it('hashes like node:crypto, in one part or several', () => {
    const a = new TextEncoder().encode('abc');
    const b = new Uint8Array(1000).fill(7);
    expect(browser.sha256(a, b)).toEqual(protocol.sha256(a, b));
    expect(protocol.toHex(browser.sha256(a))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('verifies the RFC 8032 Ed25519 vector and refuses it tampered, like node:crypto', () => {
    for (const impl of [browser, protocol]) {
      const key = impl.importPublicKey('Ed25519', RFC8032.pub);
      expect(impl.verifySignature(key, RFC8032.msg, RFC8032.sig)).toBe(true);
      expect(impl.verifySignature(key, fromHex('73'), RFC8032.sig)).toBe(false);
      expect(impl.verifySignature(key, RFC8032.msg, RFC8032.sig.subarray(0, 63))).toBe(false);
    }
  });

  it('accepts ES256 signatures with high S as node:crypto does (secure elements do not normalise S)', () => {
    for (let i = 0; i < 8; i++) {
      const { raw, lowS, highS, msg } = es256Pair();
      for (const impl of [browser, protocol]) {
        const key = impl.importPublicKey('ES256', raw);
        expect(impl.verifySignature(key, msg, lowS)).toBe(true);
        expect(impl.verifySignature(key, msg, highS)).toBe(true);
        const bad = Uint8Array.from(highS);
        bad[63] = (bad[63] ?? 0) ^ 1;
        expect(impl.verifySignature(key, msg, bad)).toBe(false);
      }
    }
  });

  it('imports compressed, uncompressed and SPKI keys to the same raw form as node:crypto', () => {
    const { raw } = es256Pair();
    const compressed = protocol.concatBytes(Uint8Array.of(((raw[64] ?? 0) & 1) === 1 ? 3 : 2), raw.subarray(1, 33));
    const node = protocol.importPublicKey('ES256', compressed);
    expect(browser.importPublicKey('ES256', compressed).raw).toEqual(node.raw);
    expect(browser.importSpki(protocol.spkiOf(node)).raw).toEqual(node.raw);
    expect(browser.fromKeyObject(node.keyObject)).toMatchObject({ alg: 'ES256', raw: node.raw });
    expect(browser.spkiOf(browser.importPublicKey('Ed25519', RFC8032.pub))).toEqual(protocol.spkiOf(protocol.importPublicKey('Ed25519', RFC8032.pub)));
    expect(() => browser.importPublicKey('ES256', new Uint8Array(65))).toThrow(expect.objectContaining({ code: 'COSE_KEY' }));
    expect(() => browser.importSpki(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00))).toThrow(expect.objectContaining({ code: 'COSE_KEY' }));
  });
});

describe('X509Certificate stand-in (node-crypto-browser)', () => {
  it('agrees with node:crypto on issuer checks, signatures, dates and keys of an issued chain', async () => {
    const fx = await makeWebFixture();
    const ed = fx.packs.get(PACKS[0].serial)!.chain; // Ed25519 device, P-256 line CA
    const es = fx.packs.get(PACKS[1].serial)!.chain; // P-256 device
    const root = protocol.decodeTrustBundle(fx.trust.trustBundle).roots[0]!;
    const certs = [ed[0]!, es[0]!, ed[1]!, root];
    for (const child of certs) {
      const [n, b] = [new NodeX509(Buffer.from(child)), new BrowserX509(child)];
      expect(b.raw).toEqual(new Uint8Array(n.raw));
      expect(Date.parse(b.validFrom)).toBe(Date.parse(n.validFrom));
      expect(Date.parse(b.validTo)).toBe(Date.parse(n.validTo));
      expect(browser.fromKeyObject(b.publicKey as never).raw).toEqual(protocol.fromKeyObject(n.publicKey).raw);
      for (const parent of certs) {
        const [np, bp] = [new NodeX509(Buffer.from(parent)), new BrowserX509(parent)];
        expect(b.checkIssued(bp), `checkIssued ${certs.indexOf(child)}←${certs.indexOf(parent)}`).toBe(n.checkIssued(np));
        expect(b.verify(bp.publicKey), `verify ${certs.indexOf(child)}←${certs.indexOf(parent)}`).toBe(n.verify(np.publicKey));
      }
    }
    // A flipped bit in the signed part breaks the signature for both.
    const bad = Uint8Array.from(ed[0]!);
    const tbsStart = bad.length - certificateParts(bad).signature.length - 100;
    bad[tbsStart] = (bad[tbsStart] ?? 0) ^ 0x01;
    const line = ed[1]!;
    expect(new BrowserX509(bad).verify(new BrowserX509(line).publicKey)).toBe(new NodeX509(Buffer.from(bad)).verify(new NodeX509(Buffer.from(line)).publicKey));
    expect(new BrowserX509(bad).verify(new BrowserX509(line).publicKey)).toBe(false);
  });

  it('reports only the first certificate as raw when bytes trail it, and throws for truncated DER', async () => {
    const fx = await makeWebFixture();
    const der = fx.packs.get(PACKS[0].serial)!.chain[0]!;
    expect(new BrowserX509(protocol.concatBytes(der, Uint8Array.of(0, 0))).raw).toEqual(der);
    expect(() => new BrowserX509(der.subarray(0, der.length - 1))).toThrow(/DER/);
    expect(() => new BrowserX509(Uint8Array.of(0x30, 0x85, 1, 2, 3, 4, 5))).toThrow(/DER/);
  });
});

describe('verifyProof (the page verifier, here on node:crypto)', () => {
  it('passes every check for a good bundle and names the failing check for a tampered one', async () => {
    const fx = await makeWebFixture();
    const good = await verifyProof(proofOf(fx, PACKS[0].serial, 3)!, fx.trust);
    expect(good.ok).toBe(true);
    expect(good.checks.map((c) => c.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    expect(good.verified).toMatchObject({ serial: PACKS[0].serial, counter: 3, witnesses: ['ledger.packchain.test'] });
    const bad = await verifyProof(proofOf(fx, PACKS[0].serial, TAMPERED_COUNTER)!, fx.trust);
    expect(bad.ok).toBe(false);
    expect(bad.checks.find((c) => c.status === 'fail')?.check).toBe('inclusion');
  });

  it('fails the witness check when the ledger did not cosign, and the trust check for a broken trust bundle', async () => {
    const fx = await makeWebFixture();
    const text = proofOf(fx, PACKS[0].serial, 3)!;
    const otherWitness = protocol.formatVerifierKey('ledger.packchain.test', new Uint8Array(32).fill(1), 'cosignature');
    const noWitness = await verifyProof(text, { ...fx.trust, witness: otherWitness });
    expect(noWitness.checks.find((c) => c.status === 'fail')).toMatchObject({ check: 'witness' });
    expect(noWitness.code).toBe('CHECKPOINT_WITNESSES');
    const noTrust = await verifyProof(text, { ...fx.trust, trustBundle: '{}' });
    expect(noTrust.checks[0]).toMatchObject({ check: 'trust', status: 'fail' });
    expect(noTrust.checks.slice(1).every((c) => c.status === 'skipped')).toBe(true);
  });

  it('maps each ProtocolError family to the check that raises it', () => {
    expect(checkOfCode('NOTE_SIGNATURE', '')).toBe('checkpoint');
    expect(checkOfCode('CHECKPOINT_WITNESSES', '')).toBe('witness');
    expect(checkOfCode('MERKLE_ROOT', '')).toBe('inclusion');
    expect(checkOfCode('CERT_REVOKED', '')).toBe('chain');
    expect(checkOfCode('BUNDLE_MISMATCH', 'bundle: the leaf names a different device certificate')).toBe('chain');
    expect(checkOfCode('COSE_SIGNATURE', '')).toBe('cose');
    expect(checkOfCode('BUNDLE_MISMATCH', 'bundle: frame serial A is not the certificate’s B')).toBe('serial');
    expect(checkOfCode('BUNDLE_MALFORMED', '')).toBe('bundle');
  });
});
