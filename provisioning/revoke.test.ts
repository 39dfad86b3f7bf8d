/**
 * Revocation end to end on real files: the registry record is marked, a new line CRL lists it,
 * `openssl verify -crl_check_all` then says "certificate revoked", and a protocol TrustStore built
 * from the exported trust bundle refuses the chain with CERT_REVOKED. Also: refusals (unknown serial,
 * nothing active, bad reason), repair of a revocation whose CRL was never written, and 20 parallel
 * issuances with 5 parallel revocations giving strictly increasing CRL numbers and a final CRL with all 5.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTrustBundle, isProtocolError, keyFingerprint, parseCrl, toHex, toPem, TrustStore, type SignatureAlg } from '../protocol/index.js';
import { readTrustBundle, StationCa } from './ca.js';
import { caPaths } from './ca-store.js';
import { deviceKey, LINE_PASS, openssl, tempDir } from './ca-testkit.js';
import { isProvisioningError } from './errors.js';
import { Registry, type AttemptRecord } from './registry.js';
import { parseRevocationReason, revokeCertificate, revokeSerial } from './revoke.js';

let dir: string;
let ca: StationCa;
let reg: Registry;
let remove: () => void;

beforeAll(async () => {
  ({ dir, remove } = tempDir('revoke'));
  await StationCa.init({ dir, linePassphrase: LINE_PASS });
  ca = await StationCa.open({ dir, passphrase: LINE_PASS });
  reg = await Registry.open(join(dir, 'registry.db'));
});
afterAll(async () => {
  await reg.close();
  remove();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isProvisioningError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

/** What the station records for a PASS: issue the certificate and store it as active. */
async function provisioned(serial: string, alg: SignatureAlg = 'ES256'): Promise<{ record: AttemptRecord; chain: Uint8Array[] }> {
  const key = deviceKey(alg);
  const a = await reg.begin({ serial, model: 'BMU-48V', port: '/dev/ttyUSB0', station: 'line-1', operator: 'ana' });
  const issued = await ca.issueDevice({ packSerial: serial, publicKey: key.publicKey, alg });
  const record = await reg.update(a.id, {
    result: 'PASS',
    alg,
    keyFingerprint: keyFingerprint(key.publicKey),
    certPem: toPem(issued.cert, 'CERTIFICATE'),
    certSerialHex: issued.serialHex,
    certSha256: toHex(issued.certSha256),
    certNotAfter: issued.notAfter.toISOString(),
    certStatus: 'active',
  });
  return { record, chain: issued.chain };
}

async function bundleStore(): Promise<TrustStore> {
  return TrustStore.create(decodeTrustBundle((await readTrustBundle(dir)).text));
}

function verifyCode(store: TrustStore, chain: Uint8Array[]): string {
  try {
    store.verifyChain(chain, new Date());
    return 'OK';
  } catch (e) {
    if (isProtocolError(e)) return e.code;
    throw e;
  }
}

describe('revokeSerial', () => {
  it('revokes the active certificate: new CRL number, openssl and the exported trust bundle both refuse the chain', async () => {
    const { record, chain } = await provisioned('PK-REV-1');
    const device = join(dir, 'rev-1.pem');
    writeFileSync(device, toPem(chain[0]!, 'CERTIFICATE'));
    const p = caPaths(dir);
    const opensslVerify = () => openssl(dir, 'verify', '-crl_check_all', '-CRLfile', p.rootCrl, '-CRLfile', p.lineCrl, '-CAfile', p.rootCert, '-untrusted', p.lineCert, device);
    expect(opensslVerify().status).toBe(0);
    expect(verifyCode(await bundleStore(), chain)).toBe('OK');
    const before = ca.crlSummaries().line.number;

    const r = await revokeSerial(ca, reg, 'PK-REV-1', 'keyCompromise', 'key read out in the field');
    expect(r.serialHex).toBe(record.certSerialHex);
    expect(r.crlNumber).toBe(before + 1);
    expect(r.alreadyRevoked).toBe(false);
    expect(r.record).toMatchObject({ certStatus: 'revoked', revocationReason: 'keyCompromise', revocationNote: 'key read out in the field' });

    const failed = opensslVerify();
    expect(failed.out).toContain('certificate revoked');
    expect(failed.status).not.toBe(0);
    expect(openssl(dir, 'crl', '-in', p.lineCrl, '-CAfile', p.lineCert, '-noout', '-verify').out).toContain('verify OK');
    expect(verifyCode(await bundleStore(), chain)).toBe('CERT_REVOKED');
    expect(verifyCode(await ca.trustStore(), chain)).toBe('CERT_REVOKED');
  });

  it('when the serial is unknown, or has no active certificate any more › throws NOT_FOUND', async () => {
    expect(await codeOf(revokeSerial(ca, reg, 'PK-NOBODY', 'superseded'))).toBe('NOT_FOUND');
    expect(await codeOf(revokeSerial(ca, reg, 'PK-REV-1', 'superseded'))).toBe('NOT_FOUND');
  });

  it('refuses an unknown reason (USAGE) and accepts the RFC 5280 names', () => {
    expect(parseRevocationReason('superseded')).toBe('superseded');
    expect(parseRevocationReason('unspecified')).toBe('unspecified');
    let code = '';
    try {
      parseRevocationReason('lost');
    } catch (e) {
      code = isProvisioningError(e) ? e.code : 'other';
    }
    expect(code).toBe('USAGE');
  });
});

describe('revokeCertificate', () => {
  it('when the registry says revoked but the CRL was never written (crash) › issues a CRL listing it', async () => {
    const { record } = await provisioned('PK-REV-2', 'Ed25519');
    await reg.update(record.id, { certStatus: 'revoked', revokedAt: new Date().toISOString(), revocationReason: 'cessationOfOperation' });
    expect(parseCrl(ca.currentCrls().line).revoked.has(record.certSerialHex!)).toBe(false);
    const r = await revokeCertificate(ca, reg, record, 'superseded');
    expect(r.alreadyRevoked).toBe(true);
    expect(r.record.revocationReason).toBe('cessationOfOperation'); // the first revocation's reason stands
    expect(parseCrl(ca.currentCrls().line).revoked.has(record.certSerialHex!)).toBe(true);
    const again = await revokeCertificate(ca, reg, record, 'superseded');
    expect(again.crlNumber).toBe(r.crlNumber); // nothing left to do: no new CRL
  });

  it('when the attempt has no certificate › throws NOT_FOUND', async () => {
    const a = await reg.begin({ serial: 'PK-REV-3', model: 'BMU-48V', port: '/dev/ttyUSB1', station: 'line-1', operator: 'ana' });
    expect(await codeOf(revokeCertificate(ca, reg, a, 'superseded'))).toBe('NOT_FOUND');
  });
});

describe('concurrent issuance and revocation (line mode)', () => {
  it('20 parallel issuances and 5 parallel revocations give strictly increasing CRL numbers and a final CRL listing all 5', async () => {
    const victims = await Promise.all([1, 2, 3, 4, 5].map((i) => provisioned(`PK-CON-V${i}`)));
    const start = ca.crlSummaries().line.number;
    const completed: number[] = [];
    const issuing = Array.from({ length: 20 }, (_, i) => provisioned(`PK-CON-${String(i).padStart(2, '0')}`, i % 2 === 0 ? 'ES256' : 'Ed25519'));
    const revoking = victims.map(({ record }) =>
      revokeSerial(ca, reg, record.serial, 'privilegeWithdrawn').then((r) => {
        completed.push(r.crlNumber);
        return r;
      }),
    );
    const [issued] = await Promise.all([Promise.all(issuing), Promise.all(revoking)]);
    expect(completed).toEqual([start + 1, start + 2, start + 3, start + 4, start + 5]);
    const final = parseCrl(ca.currentCrls().line);
    expect(final.crlNumber).toBe(BigInt(start + 5));
    for (const { record } of victims) expect(final.revoked.has(record.certSerialHex!)).toBe(true);
    const store = await bundleStore();
    for (const { chain } of issued) expect(verifyCode(store, chain)).toBe('OK');
    for (const { chain } of victims) expect(verifyCode(store, chain)).toBe('CERT_REVOKED');
    const text = openssl(dir, 'crl', '-in', caPaths(dir).lineCrl, '-noout', '-text').out;
    expect(text).toMatch(new RegExp(`X509v3 CRL Number: \\n\\s+${start + 5}\\n`));
  });
});
