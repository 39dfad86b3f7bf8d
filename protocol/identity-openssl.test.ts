/**
 * Interoperability with the real `openssl` binary (DESIGN.md decision 2: "openssl verify must
 * accept what the station issues"), in both directions: OpenSSL verifies our certificates and
 * CRLs, and our TrustStore verifies a device certificate OpenSSL issued under our line CA.
 * openssl is installed by scripts/setup-machine.sh; these tests do not skip without it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignatureAlg } from './crypto.js';
import { fromPem, keyId, toPem, TrustStore } from './identity.js';
import {
  NOT_BEFORE,
  issueDevice,
  makeCrl,
  makeIntermediate,
  makeRoot,
  privateKeyPem,
  serialOf,
  type TestCa,
  type TestDevice,
} from './identity-testkit.js';

let dir: string;

function openssl(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function write(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return name;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'packchain-identity-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const COMBOS: readonly [SignatureAlg, SignatureAlg][] = [
  ['Ed25519', 'Ed25519'],
  ['Ed25519', 'ES256'],
  ['ES256', 'Ed25519'],
  ['ES256', 'ES256'],
];

describe('openssl and the certificates we issue', () => {
  for (const [caAlg, devAlg] of COMBOS) {
    describe(`with a ${caAlg} CA and a ${devAlg} device`, () => {
      let root: TestCa;
      let line: TestCa;
      let device: TestDevice;
      const p = `${caAlg}-${devAlg}`;

      beforeAll(async () => {
        root = await makeRoot(caAlg);
        line = await makeIntermediate(root, caAlg);
        device = await issueDevice(line, devAlg, `PACK-${p}`);
        write(`root-${p}.pem`, toPem(root.cert, 'CERTIFICATE'));
        write(`line-${p}.pem`, toPem(line.cert, 'CERTIFICATE'));
        write(`device-${p}.pem`, toPem(device.cert, 'CERTIFICATE'));
      });

      it('openssl verify accepts the chain', () => {
        const r = openssl('verify', '-CAfile', `root-${p}.pem`, '-untrusted', `line-${p}.pem`, `device-${p}.pem`);
        expect(r.out).toContain(`device-${p}.pem: OK`);
        expect(r.status).toBe(0);
      });

      it('openssl verify refuses the chain under a foreign root', async () => {
        const other = await makeRoot(caAlg, 'Other Root');
        write(`other-${p}.pem`, toPem(other.cert, 'CERTIFICATE'));
        const r = openssl('verify', '-CAfile', `other-${p}.pem`, '-untrusted', `line-${p}.pem`, `device-${p}.pem`);
        expect(r.status).not.toBe(0);
      });

      it('openssl shows the serialNumber attribute and Digital Signature key usage', () => {
        expect(openssl('x509', '-in', `device-${p}.pem`, '-noout', '-subject').out).toMatch(
          new RegExp(`serialNumber ?= ?PACK-${p}`),
        );
        const text = openssl('x509', '-in', `device-${p}.pem`, '-noout', '-text').out;
        expect(text).toContain('Digital Signature');
        expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
        expect(openssl('x509', '-in', `line-${p}.pem`, '-noout', '-text').out).toMatch(/CA:TRUE, pathlen:0/);
      });

      it('openssl verifies our CRL and, with -crl_check, reports the revoked device (error 23)', async () => {
        const crl = await makeCrl(
          line,
          [
            { serialHex: serialOf(device.cert), date: NOT_BEFORE }, // no reason: no entry extensions
            { serialHex: '7ffe', date: NOT_BEFORE, reason: 'keyCompromise' },
          ],
          { crlNumber: 3 },
        );
        const crlPem = toPem(crl, 'X509 CRL');
        expect(crlPem.startsWith('-----BEGIN X509 CRL-----\n')).toBe(true);
        write(`crl-${p}.pem`, crlPem);
        const v = openssl('crl', '-in', `crl-${p}.pem`, '-CAfile', `line-${p}.pem`, '-noout', '-verify');
        expect(v.out).toContain('verify OK');
        expect(openssl('crl', '-in', `crl-${p}.pem`, '-noout', '-text').out).toMatch(/X509v3 CRL Number:\s+3/);
        const r = openssl('verify', '-crl_check', '-CRLfile', `crl-${p}.pem`, '-CAfile', `root-${p}.pem`, '-untrusted', `line-${p}.pem`, `device-${p}.pem`);
        expect(r.out).toMatch(/error 23 at 0 depth lookup: certificate revoked/);
        expect(r.status).not.toBe(0);
      });

      it('openssl -crl_check_all accepts the chain with empty CRLs from both CAs', async () => {
        write(`rootcrl-${p}.pem`, toPem(await makeCrl(root), 'X509 CRL'));
        write(`linecrl-${p}.pem`, toPem(await makeCrl(line), 'X509 CRL'));
        const both = `${readFileSync(join(dir, `rootcrl-${p}.pem`), 'utf8')}${readFileSync(join(dir, `linecrl-${p}.pem`), 'utf8')}`;
        write(`crls-${p}.pem`, both);
        const r = openssl('verify', '-crl_check_all', '-CRLfile', `crls-${p}.pem`, '-CAfile', `root-${p}.pem`, '-untrusted', `line-${p}.pem`, `device-${p}.pem`);
        expect(r.out).toContain(`device-${p}.pem: OK`);
      });
    });
  }
});

describe('TrustStore and a device certificate openssl issued', () => {
  for (const [caAlg, devAlg] of COMBOS) {
    it(`verifies an openssl-issued ${devAlg} device certificate under our ${caAlg} line CA`, async () => {
      const p = `ossl-${caAlg}-${devAlg}`;
      const root = await makeRoot(caAlg);
      const line = await makeIntermediate(root, caAlg);
      write(`line-${p}.pem`, toPem(line.cert, 'CERTIFICATE'));
      write(`line-${p}.key`, await privateKeyPem(line));
      // The device key: generated by openssl this time, not by us.
      const genArgs = devAlg === 'Ed25519' ? ['-algorithm', 'ed25519'] : ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
      expect(openssl('genpkey', ...genArgs, '-out', `dev-${p}.key`).status).toBe(0);
      write(
        `ext-${p}.cnf`,
        '[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n',
      );
      const req = openssl('req', '-new', '-key', `dev-${p}.key`, '-subj', `/CN=PACK-OSSL-1/serialNumber=PACK-OSSL-1/O=Packchain Test`, '-out', `dev-${p}.csr`);
      expect(req.status).toBe(0);
      const sign = openssl(
        'x509', '-req', '-in', `dev-${p}.csr`, '-CA', `line-${p}.pem`, '-CAkey', `line-${p}.key`, '-set_serial', '0x1234567890abcdef',
        '-days', '3650', '-extfile', `ext-${p}.cnf`, '-extensions', 'v3', '-out', `dev-${p}.pem`,
      );
      expect(sign.status, sign.out).toBe(0);
      const der = fromPem(readFileSync(join(dir, `dev-${p}.pem`), 'utf8'))[0]?.der;
      expect(der).toBeDefined();
      const pub = openssl('pkey', '-in', `dev-${p}.key`, '-pubout', '-outform', 'DER', '-out', `dev-${p}.spki`);
      expect(pub.status).toBe(0);
      const spki = new Uint8Array(readFileSync(join(dir, `dev-${p}.spki`)));
      const store = await TrustStore.create(
        { roots: [root.cert], intermediates: [line.cert], crls: [await makeCrl(root), await makeCrl(line)] },
      );
      // openssl dates the certificate from the machine clock, so verify at the machine's time.
      const now = new Date();
      const r = store.verifyChain([der ?? new Uint8Array(), line.cert], now);
      expect(r.packSerial).toBe('PACK-OSSL-1');
      expect(r.alg).toBe(devAlg);
      expect(r.kid).toEqual(keyId(spki));
      // and revoking openssl's serial works with our CRL
      const crl = await makeCrl(line, [{ serialHex: '1234567890ABCDEF', date: NOT_BEFORE }], { crlNumber: 2 });
      const revokedStore = await TrustStore.create({ roots: [root.cert], intermediates: [line.cert], crls: [await makeCrl(root), crl] });
      expect(() => revokedStore.verifyChain([der ?? new Uint8Array(), line.cert], now)).toThrow(
        expect.objectContaining({ code: 'CERT_REVOKED' }),
      );
    });
  }

});
