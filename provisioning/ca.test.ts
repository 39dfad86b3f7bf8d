/**
 * StationCa against real files and the real openssl binary: what `ca init` writes (modes, encrypted
 * keys that openssl opens only with the right passphrase, no key material anywhere else), the
 * fingerprints it reports, the refusals (second init, wrong passphrase, missing or mismatched
 * files), device certificates and CRLs that `openssl verify` / `openssl crl -verify` accept, and CRL
 * numbering that only goes up — also across two processes' instances on one directory.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, parseCertificate, parseCrl, toPem, type RevokedCert, type SignatureAlg } from '../protocol/index.js';
import { refreshRootCrl, StationCa, type CaSummary } from './ca.js';
import { caPaths } from './ca-store.js';
import { deviceKey, LINE_PASS, openssl, ROOT_PASS, tempDir } from './ca-testkit.js';
import { encryptPrivateKeyPem } from './ca-keys.js';
import { isProvisioningError } from './errors.js';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

function newDir(): string {
  const t = tempDir('ca');
  cleanups.push(t.remove);
  return t.dir;
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (isProvisioningError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

const mode = (path: string): number => statSync(path).mode & 0o777;

for (const alg of ['ES256', 'Ed25519'] as const satisfies readonly SignatureAlg[]) {
  describe(`StationCa.init (${alg})`, () => {
    let dir: string;
    let summary: CaSummary;
    const p = () => caPaths(dir);

    beforeAll(async () => {
      dir = join(newDir(), 'station'); // does not exist yet: init creates it
      summary = await StationCa.init({ dir, linePassphrase: LINE_PASS, rootPassphrase: ROOT_PASS, org: 'Acme Packs', alg });
    });

    it('writes the CA files with keys and state 0600, public files 0644 and directories 0700', () => {
      expect(readdirSync(p().ca).sort()).toEqual(['line.crl.pem', 'line.crt.pem', 'line.key.pem', 'root.crl.pem', 'root.crt.pem', 'root.key.pem', 'state.json']);
      expect(mode(dir)).toBe(0o700);
      expect(mode(p().ca)).toBe(0o700);
      for (const f of [p().rootKey, p().lineKey, p().state]) expect(mode(f)).toBe(0o600);
      for (const f of [p().rootCert, p().lineCert, p().rootCrl, p().lineCrl]) expect(mode(f)).toBe(0o644);
    });

    it('stores both keys encrypted: openssl opens each only with its own passphrase', () => {
      for (const [file, pass, other] of [
        [p().lineKey, LINE_PASS, ROOT_PASS],
        [p().rootKey, ROOT_PASS, LINE_PASS],
      ] as const) {
        const text = readFileSync(file, 'utf8');
        expect(text.startsWith('-----BEGIN ENCRYPTED PRIVATE KEY-----\n')).toBe(true);
        expect(openssl(dir, 'pkey', '-in', file, '-passin', `pass:${pass}`, '-noout').status).toBe(0);
        const wrong = openssl(dir, 'pkey', '-in', file, '-passin', `pass:${other}`, '-noout');
        expect(wrong.status).not.toBe(0);
        expect(wrong.out).toContain('bad decrypt');
      }
    });

    it('encrypts with PBES2, PBKDF2-HMAC-SHA256 at 600,000 iterations and AES-256-CBC', () => {
      const asn1 = openssl(dir, 'asn1parse', '-in', p().lineKey).out;
      expect(asn1).toContain(':PBES2');
      expect(asn1).toContain(':PBKDF2');
      expect(asn1).toContain(':hmacWithSHA256');
      expect(asn1).toContain(':aes-256-cbc');
      expect(asn1).toMatch(/INTEGER\s+:0927C0/); // 600000
    });

    it('reports the fingerprints openssl computes', () => {
      for (const [file, s] of [
        [p().rootCert, summary.root],
        [p().lineCert, summary.line],
      ] as const) {
        expect(openssl(dir, 'x509', '-in', file, '-noout', '-fingerprint', '-sha256').out.trim()).toBe(`sha256 Fingerprint=${s.fingerprint}`);
      }
      expect(summary.root.subject).toBe('CN=Acme Packs Root CA, O=Acme Packs');
      expect(summary.alg).toBe(alg);
    });

    it('issues a line CA that openssl verifies under the root, and CRLs number 1 that verify', () => {
      expect(openssl(dir, 'verify', '-CAfile', p().rootCert, p().lineCert).status).toBe(0);
      for (const [crl, ca] of [
        [p().rootCrl, p().rootCert],
        [p().lineCrl, p().lineCert],
      ] as const) {
        const r = openssl(dir, 'crl', '-in', crl, '-CAfile', ca, '-noout', '-verify', '-text');
        expect(r.out).toContain('verify OK');
        expect(r.out).toMatch(/X509v3 CRL Number: \n\s+1\n/);
      }
    });

    it('writes no private key material outside the encrypted key files, and reports none', () => {
      const secrets: Buffer[] = [];
      for (const [file, pass] of [
        [p().lineKey, LINE_PASS],
        [p().rootKey, ROOT_PASS],
      ] as const) {
        const key = createPrivateKey({ key: readFileSync(file, 'utf8'), format: 'pem', passphrase: pass });
        secrets.push(...keyMaterial(key));
      }
      const outputs = [JSON.stringify(summary), ...readdirSync(p().ca).map((f) => readFileSync(join(p().ca, f), 'latin1'))];
      for (const s of secrets) {
        for (const text of outputs) {
          expect(text.includes(s.toString('latin1'))).toBe(false);
          expect(text.includes(s.toString('base64'))).toBe(false);
          expect(text.toLowerCase().includes(s.toString('hex'))).toBe(false);
        }
      }
    });

    it('refuses a second init and leaves the CA untouched (CA_EXISTS)', async () => {
      const before = readFileSync(p().lineKey, 'utf8');
      expect(await codeOf(StationCa.init({ dir, linePassphrase: LINE_PASS }))).toBe('CA_EXISTS');
      expect(readFileSync(p().lineKey, 'utf8')).toBe(before);
      expect(readdirSync(dir).filter((f) => f.startsWith('.ca-init-'))).toEqual([]);
    });
  });
}

/** The PKCS#8 DER and the raw private scalar / seed of a key, as they must never appear in output. */
function keyMaterial(key: KeyObject): Buffer[] {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  const d = fromBase64Url(key.export({ format: 'jwk' }).d ?? '', 'COSE_KEY');
  return [der, Buffer.from(d)];
}

describe('StationCa.init refusals', () => {
  it('refuses a passphrase shorter than 12 characters and writes nothing (USAGE)', async () => {
    const dir = newDir();
    expect(await codeOf(StationCa.init({ dir, linePassphrase: 'short pass' }))).toBe('USAGE');
    expect(await codeOf(StationCa.init({ dir, linePassphrase: LINE_PASS, rootPassphrase: 'eleven char' }))).toBe('USAGE');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('accepts an empty ca/ directory, and uses the line passphrase for the root when none is given', async () => {
    const dir = newDir();
    mkdirSync(join(dir, 'ca'));
    await StationCa.init({ dir, linePassphrase: LINE_PASS });
    expect(openssl(dir, 'pkey', '-in', caPaths(dir).rootKey, '-passin', `pass:${LINE_PASS}`, '-noout').status).toBe(0);
  });
});

describe('StationCa.open', () => {
  let dir: string;
  beforeAll(async () => {
    dir = newDir();
    await StationCa.init({ dir, linePassphrase: LINE_PASS, rootPassphrase: ROOT_PASS });
  });

  it('when the passphrase is wrong › throws CA_PASSPHRASE', async () => {
    expect(await codeOf(StationCa.open({ dir, passphrase: ROOT_PASS }))).toBe('CA_PASSPHRASE');
  });

  it('when there is no CA › throws CA_MISSING', async () => {
    expect(await codeOf(StationCa.open({ dir: newDir(), passphrase: LINE_PASS }))).toBe('CA_MISSING');
    expect(await codeOf(() => StationCa.summary(newDir()))).toBe('CA_MISSING');
  });

  describe('when a file was swapped or damaged', () => {
    const copyCa = (): string => {
      const d = newDir();
      mkdirSync(join(d, 'ca'));
      for (const f of readdirSync(caPaths(dir).ca)) copyFileSync(join(caPaths(dir).ca, f), join(d, 'ca', f));
      return d;
    };

    it('the line certificate of another CA › throws CA_CORRUPT', async () => {
      const other = newDir();
      await StationCa.init({ dir: other, linePassphrase: LINE_PASS });
      const d = copyCa();
      copyFileSync(caPaths(other).lineCert, caPaths(d).lineCert);
      expect(await codeOf(StationCa.open({ dir: d, passphrase: LINE_PASS }))).toBe('CA_CORRUPT');
    });

    it('the root key in place of the line key › throws CA_CORRUPT', async () => {
      const d = copyCa();
      const root = createPrivateKey({ key: readFileSync(caPaths(d).rootKey, 'utf8'), format: 'pem', passphrase: ROOT_PASS });
      writeFileSync(caPaths(d).lineKey, encryptPrivateKeyPem(root, LINE_PASS, 1000));
      expect(await codeOf(StationCa.open({ dir: d, passphrase: LINE_PASS }))).toBe('CA_CORRUPT');
    });

    it('an unencrypted line key › throws CA_CORRUPT and does not use it', async () => {
      const d = copyCa();
      const key = createPrivateKey({ key: readFileSync(caPaths(d).lineKey, 'utf8'), format: 'pem', passphrase: LINE_PASS });
      writeFileSync(caPaths(d).lineKey, key.export({ format: 'pem', type: 'pkcs8' }));
      expect(await codeOf(StationCa.open({ dir: d, passphrase: LINE_PASS }))).toBe('CA_CORRUPT');
    });

    it('a truncated state file or a line CRL signed by the root › throws CA_CORRUPT', async () => {
      const d = copyCa();
      writeFileSync(caPaths(d).state, '{"version":1,');
      expect(await codeOf(StationCa.open({ dir: d, passphrase: LINE_PASS }))).toBe('CA_CORRUPT');
      const e = copyCa();
      copyFileSync(caPaths(e).rootCrl, caPaths(e).lineCrl); // the line then has no CRL of its own
      expect(await codeOf(StationCa.open({ dir: e, passphrase: LINE_PASS }))).toBe('CA_CORRUPT');
    });
  });
});

describe('StationCa.issueDevice and issueLineCrl', () => {
  let dir: string;
  let ca: StationCa;
  const issued: { serialHex: string; file: string }[] = [];
  const p = () => caPaths(dir);

  beforeAll(async () => {
    dir = newDir();
    await StationCa.init({ dir, linePassphrase: LINE_PASS, rootPassphrase: ROOT_PASS, org: 'Acme Packs' });
    ca = await StationCa.open({ dir, passphrase: LINE_PASS });
    for (const [i, alg] of (['ES256', 'Ed25519'] as const).entries()) {
      const r = await ca.issueDevice({ packSerial: `PK-2026-000${i + 1}`, model: 'BMU-48V', publicKey: deviceKey(alg).publicKey, alg });
      const file = join(dir, `device-${i}.pem`);
      writeFileSync(file, toPem(r.cert, 'CERTIFICATE'));
      issued.push({ serialHex: r.serialHex, file });
      expect(r.chain).toEqual([r.cert, ca.lineCert]);
    }
  });

  it('issues certificates openssl verifies to the root, also with both CRLs checked', () => {
    for (const { file } of issued) {
      const plain = openssl(dir, 'verify', '-CAfile', p().rootCert, '-untrusted', p().lineCert, file);
      expect(plain.out).toContain(': OK');
      const crl = openssl(dir, 'verify', '-crl_check_all', '-CRLfile', p().rootCrl, '-CRLfile', p().lineCrl, '-CAfile', p().rootCert, '-untrusted', p().lineCert, file);
      expect(crl.out).toContain(': OK');
      expect(crl.status).toBe(0);
    }
  });

  it('puts the pack serial, model and org in the subject and stays within the line CA validity', () => {
    const info = parseCertificate(readPemDer(issued[0]!.file));
    expect(info.subject).toBe('CN=PK-2026-0001, serialNumber=PK-2026-0001, OU=BMU-48V, O=Acme Packs');
    const line = parseCertificate(ca.lineCert);
    expect(info.notAfter.getTime()).toBeLessThanOrEqual(line.notAfter.getTime());
    expect(info.notBefore.getTime()).toBeGreaterThanOrEqual(line.notBefore.getTime());
    expect(info.notBefore.getTime()).toBeLessThan(Date.now() - 30 * 60_000); // backdated for lagging gateway clocks
  });

  it('refuses a bad pack serial (USAGE) and a key that is not of the declared algorithm (DEVICE_ERROR)', async () => {
    expect(await codeOf(ca.issueDevice({ packSerial: 'PK 0001', publicKey: deviceKey('ES256').publicKey, alg: 'ES256' }))).toBe('USAGE');
    expect(await codeOf(ca.issueDevice({ packSerial: 'PK-1', publicKey: deviceKey('Ed25519').publicKey, alg: 'ES256' }))).toBe('DEVICE_ERROR');
    const offCurve = new Uint8Array(65).fill(7);
    offCurve[0] = 4;
    expect(await codeOf(ca.issueDevice({ packSerial: 'PK-1', publicKey: offCurve, alg: 'ES256' }))).toBe('DEVICE_ERROR');
  });

  it('issues line CRLs with increasing numbers that openssl verifies, and openssl then reports the certificate revoked', async () => {
    const revoked: RevokedCert[] = [{ serialHex: issued[0]!.serialHex, date: new Date(), reason: 'keyCompromise' }];
    const a = await ca.issueLineCrl(revoked);
    const b = await ca.issueLineCrl(revoked);
    expect([a.number, b.number]).toEqual([2, 3]);
    const text = openssl(dir, 'crl', '-in', p().lineCrl, '-CAfile', p().lineCert, '-noout', '-verify', '-text').out;
    expect(text).toContain('verify OK');
    expect(text).toMatch(/X509v3 CRL Number: \n\s+3\n/);
    expect(text).toContain('Key Compromise');
    const r = openssl(dir, 'verify', '-crl_check_all', '-CRLfile', p().rootCrl, '-CRLfile', p().lineCrl, '-CAfile', p().rootCert, '-untrusted', p().lineCert, issued[0]!.file);
    expect(r.out).toContain('certificate revoked');
    expect(r.status).not.toBe(0);
    expect(openssl(dir, 'verify', '-crl_check_all', '-CRLfile', p().rootCrl, '-CRLfile', p().lineCrl, '-CAfile', p().rootCert, '-untrusted', p().lineCert, issued[1]!.file).status).toBe(0);
    expect(JSON.parse(readFileSync(p().state, 'utf8'))).toMatchObject({ lineCrlNumber: 3, rootCrlNumber: 1 });
  });

  it('refuses a CRL that would drop a revoked serial (REGISTRY) and keeps the current one', async () => {
    expect(await codeOf(ca.issueLineCrl([]))).toBe('REGISTRY');
    expect(parseCrl(ca.currentCrls().line).crlNumber).toBe(3n);
  });

  it('continues the numbering another instance advanced on disk (two processes on one station)', async () => {
    const other = await StationCa.open({ dir, passphrase: LINE_PASS });
    const revoked: RevokedCert[] = [{ serialHex: issued[0]!.serialHex, date: new Date() }];
    expect((await other.issueLineCrl(revoked)).number).toBe(4);
    expect((await ca.issueLineCrl(revoked)).number).toBe(5);
  });
});

function readPemDer(file: string): Uint8Array {
  const b64 = readFileSync(file, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

describe('refreshRootCrl', () => {
  it('re-issues the root CRL with the next number, which openssl verifies; a wrong root passphrase is CA_PASSPHRASE', async () => {
    const dir = newDir();
    await StationCa.init({ dir, linePassphrase: LINE_PASS, rootPassphrase: ROOT_PASS, alg: 'Ed25519' });
    expect(await codeOf(refreshRootCrl(dir, LINE_PASS))).toBe('CA_PASSPHRASE');
    // The ceremony keeps the root key offline: the line CA works without it, a root CRL needs it back.
    const offline = join(newDir(), 'root.key.pem');
    renameSync(caPaths(dir).rootKey, offline);
    expect(await codeOf(refreshRootCrl(dir, ROOT_PASS))).toBe('CA_MISSING');
    await StationCa.open({ dir, passphrase: LINE_PASS });
    renameSync(offline, caPaths(dir).rootKey);
    expect(await refreshRootCrl(dir, ROOT_PASS)).toBe(2);
    const r = openssl(dir, 'crl', '-in', caPaths(dir).rootCrl, '-CAfile', caPaths(dir).rootCert, '-noout', '-verify', '-text');
    expect(r.out).toContain('verify OK');
    expect(r.out).toMatch(/X509v3 CRL Number: \n\s+2\n/);
    const ca = await StationCa.open({ dir, passphrase: LINE_PASS });
    expect(ca.crlSummaries().root.number).toBe(2);
  });
});
