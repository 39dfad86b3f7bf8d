// checkSelfTest: a self-test frame built with protocol's own signer (signSign1 over encodeFrame)
// under a throw-away root → line CA → device chain; each check is shown to pass and to fail first.
import { randomBytes, webcrypto } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ALARM_BITS,
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  encodeCbor,
  encodeFrame,
  keyId,
  parseCertificate,
  publicKeyFromSecretPortable,
  signSign1,
  TrustStore,
  type Issuer,
  type RevokedCert,
  type SignatureAlg,
  type SohFrame,
} from '../protocol/index.js';
import { checkSelfTest, type SelfTestResult } from './selftest.js';

const NOW = new Date('2026-06-01T00:00:00Z');
const validity = { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2046-01-01T00:00:00Z') };

interface Ca {
  root: Uint8Array;
  rootIssuer: Issuer;
  line: Uint8Array;
  lineIssuer: Issuer;
}

async function makeCa(alg: SignatureAlg): Promise<Ca> {
  const algo = alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
  const rk = (await webcrypto.subtle.generateKey(algo, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const lk = (await webcrypto.subtle.generateKey(algo, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const root = await createRootCa({ name: 'Selftest Root', keys: rk, alg, ...validity });
  const rootIssuer = { cert: root, privateKey: rk.privateKey };
  const line = await createIntermediateCa({ name: 'Selftest Line', keys: lk, alg, ...validity, issuer: rootIssuer });
  return { root, rootIssuer, line, lineIssuer: { cert: line, privateKey: lk.privateKey } };
}

async function trustOf(ca: Ca, revoked: readonly RevokedCert[] = []): Promise<TrustStore> {
  const crl = (issuer: Issuer, r: readonly RevokedCert[]) => createCrl({ issuer, crlNumber: 1, thisUpdate: validity.notBefore, nextUpdate: validity.notAfter, revoked: r });
  return TrustStore.create({ roots: [ca.root], intermediates: [ca.line], crls: [await crl(ca.lineIssuer, revoked), await crl(ca.rootIssuer, [])] });
}

interface Pack {
  alg: SignatureAlg;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  chain: Uint8Array[];
}

function secretFor(alg: SignatureAlg): Uint8Array {
  for (;;) {
    const sk = new Uint8Array(randomBytes(32));
    try {
      publicKeyFromSecretPortable(alg, sk);
      return sk;
    } catch {
      // an invalid P-256 scalar: draw again
    }
  }
}

async function makePack(ca: Ca, alg: SignatureAlg, serial = 'PK-0001'): Promise<Pack> {
  const secretKey = secretFor(alg);
  const publicKey = publicKeyFromSecretPortable(alg, secretKey).raw;
  const cert = await createDeviceCert({ packSerial: serial, devicePublicKey: publicKey, deviceAlg: alg, issuer: ca.lineIssuer, ...validity });
  return { alg, secretKey, publicKey, chain: [cert, ca.line] };
}

function frameOf(over: Partial<SohFrame> = {}): SohFrame {
  return {
    v: 1, serial: 'PK-0001', counter: 0, time: NOW.getTime(), soc: 500, soh: 1000, voltage: 4 * 3300, current: 0,
    tempMin: 200, tempMax: 250, cycles: 0, cells: [3300, 3300, 3300, 3300], remainingCapacity: 50_000, resistance: 4000,
    alarms: 0, firmware: '1.0.0', ...over,
  };
}

function sign(pack: Pack, payload: Uint8Array, secretKey = pack.secretKey): Uint8Array {
  return signSign1({ alg: pack.alg, kid: keyId(pack.publicKey), payload, secretKey });
}

const expected = { serial: 'PK-0001', firmware: '1.0.0' };

function failed(r: SelfTestResult): { check: string; reason: string } {
  if (r.ok) throw new Error('expected the self-test to fail');
  return { check: r.check, reason: r.reason };
}

describe('checkSelfTest', () => {
  let ca: Ca;
  let trust: TrustStore;
  let pack: Pack;
  beforeAll(async () => {
    ca = await makeCa('ES256');
    trust = await trustOf(ca);
    pack = await makePack(ca, 'ES256');
  });

  for (const alg of ['ES256', 'Ed25519'] as const) {
    describe(`when a ${alg} pack returns a genuine frame`, () => {
      it('passes and returns the verified device and frame', async () => {
        const c = await makeCa(alg === 'ES256' ? 'Ed25519' : 'ES256');
        const p = await makePack(c, alg);
        const r = checkSelfTest(sign(p, encodeFrame(frameOf())), p.chain, await trustOf(c), { ...expected, publicKey: p.publicKey }, NOW);
        expect(r.ok).toBe(true);
        if (r.ok) {
          expect(r.device.packSerial).toBe('PK-0001');
          expect(r.device.alg).toBe(alg);
          expect(r.frame.cells).toHaveLength(4);
        }
      });
    });
  }

  describe('when the device certificate is on the line CRL', () => {
    it('fails check "chain" with CERT_REVOKED', async () => {
      const serialHex = parseCertificate(pack.chain[0]!).serial;
      const revokedTrust = await trustOf(ca, [{ serialHex, date: validity.notBefore, reason: 'cessationOfOperation' }]);
      const r = failed(checkSelfTest(sign(pack, encodeFrame(frameOf())), pack.chain, revokedTrust, expected, NOW));
      expect(r.check).toBe('chain');
      expect(r.reason).toContain('CERT_REVOKED');
    });
  });

  describe('when the chain comes from another factory', () => {
    it('fails check "chain" with CHAIN_UNTRUSTED', async () => {
      const other = await makeCa('ES256');
      const foreign = await makePack(other, 'ES256');
      const r = failed(checkSelfTest(sign(foreign, encodeFrame(frameOf())), foreign.chain.slice(0, 1), trust, expected, NOW));
      expect(r.check).toBe('chain');
      expect(r.reason).toContain('CHAIN_UNTRUSTED');
    });
  });

  describe('when the certificate does not carry the key the pack reported', () => {
    it('fails check "key"', () => {
      const other = publicKeyFromSecretPortable('ES256', secretFor('ES256')).raw;
      expect(failed(checkSelfTest(sign(pack, encodeFrame(frameOf())), pack.chain, trust, { ...expected, publicKey: other }, NOW)).check).toBe('key');
    });
  });

  describe('when the frame is signed by another key', () => {
    it('fails check "signature"', () => {
      const r = failed(checkSelfTest(sign(pack, encodeFrame(frameOf()), secretFor('ES256')), pack.chain, trust, expected, NOW));
      expect(r.check).toBe('signature');
      expect(r.reason).toContain('COSE_SIGNATURE');
    });
  });

  describe('when the bytes are not a COSE_Sign1', () => {
    it('fails check "signature"', () => {
      expect(failed(checkSelfTest(Uint8Array.of(1, 2, 3), pack.chain, trust, expected, NOW)).check).toBe('signature');
    });
  });

  describe('when the signed payload is not a frame', () => {
    it('fails check "frame"', () => {
      const r = failed(checkSelfTest(sign(pack, encodeCbor(new Map([[0, 2]]))), pack.chain, trust, expected, NOW));
      expect(r.check).toBe('frame');
      expect(r.reason).toContain('FRAME_VERSION');
    });
  });

  const cases: [string, Partial<SohFrame>, string, Partial<typeof expected>?][] = [
    ['the frame carries another serial', { serial: 'PK-0002' }, 'serial'],
    ['the firmware differs from the hello', {}, 'firmware', { firmware: '1.0.1' }],
    ['a cell reads 900 mV', { cells: [3300, 3300, 3300, 900], voltage: 3 * 3300 + 900 }, 'cells'],
    ['a cell reads 4600 mV', { cells: [3300, 3300, 3300, 4600], voltage: 3 * 3300 + 4600 }, 'cells'],
    ['the pack voltage is 10 % above the sum of the cells', { voltage: Math.round(4 * 3300 * 1.1) }, 'voltage'],
    ['the highest temperature is 90 °C', { tempMax: 900 }, 'temperature'],
    ['the lowest temperature is −45 °C', { tempMin: -450 }, 'temperature'],
    ['the internal-fault alarm is set', { alarms: ALARM_BITS.internalFault }, 'alarms'],
    ['the deep-discharge alarm is set', { alarms: ALARM_BITS.deepDischarge | ALARM_BITS.cellImbalance }, 'alarms'],
  ];
  for (const [what, over, check, exp] of cases) {
    describe(`when ${what}`, () => {
      it(`fails check "${check}"`, () => {
        expect(failed(checkSelfTest(sign(pack, encodeFrame(frameOf(over))), pack.chain, trust, { ...expected, ...exp }, NOW)).check).toBe(check);
      });
    });
  }

  describe('when only non-critical alarms are set (imbalance, over-current)', () => {
    it('passes', () => {
      const alarms = ALARM_BITS.cellImbalance | ALARM_BITS.overCurrentCharge | ALARM_BITS.overCurrentDischarge;
      expect(checkSelfTest(sign(pack, encodeFrame(frameOf({ alarms }))), pack.chain, trust, expected, NOW).ok).toBe(true);
    });
  });

  describe('when the pack voltage is within 5 % of the sum of the cells', () => {
    it('passes', () => {
      expect(checkSelfTest(sign(pack, encodeFrame(frameOf({ voltage: Math.round(4 * 3300 * 1.04) }))), pack.chain, trust, expected, NOW).ok).toBe(true);
    });
  });
});
