/**
 * `packchain provision ca|revoke|export|list|show` as a technician runs them: real processes
 * (cli/main.ts, the packchain CLI itself), real files, real
 * openssl. Checks what the issue asks of the output (fingerprints equal to openssl's, no key
 * material, modes), that every refusal is one `provisioning: CODE: …` line with its own exit code and
 * no stack trace, and that revoke → export gives a bundle in which the revoked chain fails.
 */
import { spawn } from 'node:child_process';
import { createHash, createPrivateKey } from 'node:crypto';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTrustBundle, fromBase64Url, isProtocolError, keyFingerprint, toHex, toPem, TrustStore } from '../protocol/index.js';
import { caPaths, EXIT_CODES, Registry, StationCa } from '../provisioning/index.js';
import { deviceKey, LINE_PASS, openssl, ROOT_PASS, tempDir } from '../provisioning/ca-testkit.js';

const root = resolve(import.meta.dirname, '..');
/** Each run starts Node + tsx and loads the modules (1–3 s on a busy 2-core machine); a test runs several. */
const SLOW = 120_000;
const tmp = tempDir('provision-cli');
afterAll(() => {
  tmp.remove();
});
const station = join(tmp.dir, 'station');
const lineFile = join(tmp.dir, 'line.pass');
const rootFile = join(tmp.dir, 'root.pass');
writeFileSync(lineFile, `${LINE_PASS}\n`, { mode: 0o600 });
writeFileSync(rootFile, `${ROOT_PASS}\n`, { mode: 0o600 });

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `packchain provision <args>` with stdin closed (not a terminal) and a clean passphrase environment. */
function provision(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean = { ...process.env, PACKCHAIN_CA_PASSPHRASE: '', PACKCHAIN_ROOT_PASSPHRASE: '', PACKCHAIN_STATION_DIR: station, ...env };
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), 'provision', ...args], {
    cwd: root,
    env: clean,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((done) => child.on('close', (code) => {
    done({ code, out, err });
  }));
}

function expectRefusal(r: Run, code: keyof typeof EXIT_CODES): void {
  expect(r.err).toMatch(new RegExp(`^provisioning: ${code}: `));
  expect(r.err.trim().split('\n')).toHaveLength(1); // one line, no stack trace
  expect(r.code).toBe(EXIT_CODES[code]);
}

let init: Run;
beforeAll(async () => {
  init = await provision(['ca', 'init', '--org', 'Acme Packs', '--passphrase-file', lineFile, '--root-passphrase-file', rootFile]);
}, SLOW);

describe('provision ca init', { timeout: SLOW }, () => {
  it('creates the CAs and prints subjects, serials, validity, fingerprints equal to openssl, and the files with their modes', () => {
    expect(init.err).toBe('');
    expect(init.code).toBe(0);
    const p = caPaths(station);
    for (const cert of [p.rootCert, p.lineCert]) {
      const fp = openssl(tmp.dir, 'x509', '-in', cert, '-noout', '-fingerprint', '-sha256').out.trim().replace('sha256 Fingerprint=', '');
      expect(init.out).toContain(`SHA-256  ${fp}`);
      const serial = openssl(tmp.dir, 'x509', '-in', cert, '-noout', '-serial').out.trim().replace('serial=', '').replace(/^0+/, '');
      expect(init.out).toContain(`serial   ${serial}`);
    }
    expect(init.out).toContain('root CA  CN=Acme Packs Root CA, O=Acme Packs');
    expect(init.out).toMatch(/0600 {2}ca\/root\.key\.pem/);
    expect(init.out).toMatch(/0600 {2}ca\/line\.key\.pem/);
    expect(init.out).toMatch(/0700 {2}ca\//);
    expect(statSync(p.rootKey).mode & 0o777).toBe(0o600);
    expect(statSync(p.ca).mode & 0o777).toBe(0o700);
  });

  it('prints no private key material and no passphrase', () => {
    const p = caPaths(station);
    for (const [file, pass] of [
      [p.rootKey, ROOT_PASS],
      [p.lineKey, LINE_PASS],
    ] as const) {
      const key = createPrivateKey({ key: readFileSync(file, 'utf8'), format: 'pem', passphrase: pass });
      const der = key.export({ format: 'der', type: 'pkcs8' });
      const d = Buffer.from(fromBase64Url(key.export({ format: 'jwk' }).d ?? '', 'COSE_KEY'));
      for (const secret of [der.toString('base64'), der.toString('hex'), d.toString('base64'), d.toString('hex'), d.toString('base64').slice(0, 24), pass]) {
        expect(init.out.includes(secret)).toBe(false);
        expect(init.out.toLowerCase().includes(secret.toLowerCase())).toBe(false);
      }
    }
    expect(init.out).not.toMatch(/PRIVATE KEY-----/);
  });

  it('refuses to overwrite an existing CA: CA_EXISTS, exit 4', async () => {
    const before = readFileSync(caPaths(station).lineKey, 'utf8');
    expectRefusal(await provision(['ca', 'init', '--passphrase-file', lineFile]), 'CA_EXISTS');
    expect(readFileSync(caPaths(station).lineKey, 'utf8')).toBe(before);
  });

  it('refuses a short passphrase (USAGE, exit 2) and, with no terminal, a missing one (CA_PASSPHRASE, exit 6)', async () => {
    const d = join(tmp.dir, 'other');
    expectRefusal(await provision(['ca', 'init', '--dir', d], { PACKCHAIN_CA_PASSPHRASE: 'too short' }), 'USAGE');
    expectRefusal(await provision(['ca', 'init', '--dir', d]), 'CA_PASSPHRASE');
  });
});

describe('provision ca show and ca crl', { timeout: SLOW }, () => {
  it('shows the CAs without a passphrase; CA_MISSING (exit 5) where there is none', async () => {
    const r = await provision(['ca', 'show']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('line  #1');
    expectRefusal(await provision(['ca', 'show', '--dir', join(tmp.dir, 'nowhere')]), 'CA_MISSING');
  });

  it('re-issues the line CRL with the next number, and the root CRL with --root', async () => {
    const line = await provision(['ca', 'crl'], { PACKCHAIN_CA_PASSPHRASE: LINE_PASS });
    expect(line.code).toBe(0);
    expect(line.out).toMatch(/^line CRL #2 issued/);
    expect(openssl(tmp.dir, 'crl', '-in', caPaths(station).lineCrl, '-noout', '-text').out).toMatch(/CRL Number: \n\s+2\n/);
    const r = await provision(['ca', 'crl', '--root', '--root-passphrase-file', rootFile]);
    expect(r.out).toMatch(/^root CRL #2 issued/);
    expectRefusal(await provision(['ca', 'crl', '--root', '--root-passphrase-file', lineFile]), 'CA_PASSPHRASE');
  });
});

describe('provision revoke, export, list and show', { timeout: SLOW }, () => {
  let chain: Uint8Array[];
  let certSerial: string;

  beforeAll(async () => {
    // What a PASS of `provision pack` leaves behind: an issued certificate recorded as active.
    const ca = await StationCa.open({ dir: station, passphrase: LINE_PASS });
    const reg = await Registry.open(join(station, 'registry.db'));
    for (const serial of ['PK-2026-0001', 'PK-2026-0002']) {
      const key = deviceKey('ES256');
      const a = await reg.begin({ serial, model: 'BMU-48V', port: '/dev/ttyUSB0', station: 'line-1', operator: 'ana' });
      const issued = await ca.issueDevice({ packSerial: serial, model: 'BMU-48V', publicKey: key.publicKey, alg: 'ES256' });
      await reg.update(a.id, {
        result: 'PASS',
        finishedAt: new Date().toISOString(),
        durationMs: 840,
        firmware: '1.2.0',
        alg: 'ES256',
        keyFingerprint: keyFingerprint(key.publicKey),
        certPem: toPem(issued.cert, 'CERTIFICATE'),
        certSerialHex: issued.serialHex,
        certSha256: toHex(issued.certSha256),
        certNotAfter: issued.notAfter.toISOString(),
        certStatus: 'active',
      });
      if (serial === 'PK-2026-0001') {
        chain = issued.chain;
        certSerial = issued.serialHex;
      }
    }
    await reg.close();
  }, SLOW);

  it('revoke: wrong passphrase is CA_PASSPHRASE (exit 6); an unknown serial NOT_FOUND (exit 9)', async () => {
    expectRefusal(await provision(['revoke', 'PK-2026-0001', '--reason', 'keyCompromise'], { PACKCHAIN_CA_PASSPHRASE: ROOT_PASS }), 'CA_PASSPHRASE');
    expectRefusal(await provision(['revoke', 'PK-NOBODY', '--reason', 'keyCompromise', '--passphrase-file', lineFile]), 'NOT_FOUND');
  });

  it('revoke while another process writes the registry: REGISTRY (exit 8); list still reads it', async () => {
    const reg = await Registry.open(join(station, 'registry.db'));
    try {
      expectRefusal(await provision(['revoke', 'PK-2026-0001', '--reason', 'keyCompromise', '--passphrase-file', lineFile]), 'REGISTRY');
      const list = await provision(['list']);
      expect(list.code).toBe(0);
      expect(list.out).toContain('PK-2026-0001');
    } finally {
      await reg.close();
    }
  });

  it('revoke prints the certificate serial and the new CRL number; export writes a bundle that refuses the chain', async () => {
    const before = await TrustStore.create(decodeTrustBundle((await exportBundle()).text));
    expect(verify(before, chain)).toBe('OK');
    const r = await provision(['revoke', 'PK-2026-0001', '--reason', 'keyCompromise', '--note', 'key read out', '--passphrase-file', lineFile]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`revoked  PK-2026-0001  certificate ${certSerial}  reason keyCompromise`);
    expect(r.out).toContain('line CRL #3');
    const { text, run } = await exportBundle();
    expect(run.out).toContain(`SHA-256  ${createHash('sha256').update(text).digest('hex')}`);
    expect(run.out).toMatch(/line {2}#3 .* 1 revoked/);
    expect(verify(await TrustStore.create(decodeTrustBundle(text)), chain)).toBe('CERT_REVOKED');
    expectRefusal(await provision(['revoke', 'PK-2026-0001', '--reason', 'superseded', '--passphrase-file', lineFile]), 'NOT_FOUND');
  });

  it('list: a table newest first, filters, and --json', async () => {
    const table = await provision(['list']);
    const lines = table.out.trim().split('\n');
    expect(lines[0]).toMatch(/^time\s+serial\s+result\s+code\s+key\s+cert serial\s+cert\s+station\s+operator$/);
    expect(lines[1]).toMatch(/PK-2026-0002\s+PASS\s+-\s+[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}\s+[0-9A-F]+\s+active\s+line-1\s+ana/);
    expect(lines[2]).toMatch(/PK-2026-0001\s+PASS .* revoked/);
    const json = JSON.parse((await provision(['list', '--serial', 'PK-2026-0002', '--json'])).out) as { serial: string }[];
    expect(json.map((r) => r.serial)).toEqual(['PK-2026-0002']);
    expect((await provision(['list', '--result', 'FAIL'])).out).toBe('no attempts\n');
  });

  it('show: every attempt with its certificate; --json carries the PEM; an unknown serial is NOT_FOUND', async () => {
    const r = await provision(['show', 'PK-2026-0001']);
    expect(r.out).toContain('PK-2026-0001: 1 attempt');
    expect(r.out).toContain('certificate  CN=PK-2026-0001, serialNumber=PK-2026-0001, OU=BMU-48V, O=Acme Packs');
    expect(r.out).toMatch(/status {5}revoked at .*, reason keyCompromise \(key read out\)/);
    const doc = JSON.parse((await provision(['show', 'PK-2026-0001', '--json'])).out) as { attempts: { certPem: string }[] };
    expect(doc.attempts[0]?.certPem).toBe(toPem(chain[0]!, 'CERTIFICATE'));
    expectRefusal(await provision(['show', 'PK-NOBODY']), 'NOT_FOUND');
  });

  it('a line certificate swapped for another CA one is CA_CORRUPT (exit 7)', async () => {
    const other = join(tmp.dir, 'other-ca');
    await StationCa.init({ dir: other, linePassphrase: LINE_PASS });
    const copy = join(tmp.dir, 'tampered');
    await StationCa.init({ dir: copy, linePassphrase: LINE_PASS });
    copyFileSync(caPaths(other).lineCert, caPaths(copy).lineCert);
    expectRefusal(await provision(['ca', 'crl', '--dir', copy, '--passphrase-file', lineFile]), 'CA_CORRUPT');
  });
});

async function exportBundle(): Promise<{ text: string; run: Run }> {
  const file = join(tmp.dir, 'bundle.json');
  const run = await provision(['export', '--out', file]);
  expect(run.code).toBe(0);
  expect(run.out).toContain(`trust bundle  ${file}`);
  return { text: readFileSync(file, 'utf8'), run };
}

function verify(store: TrustStore, chain: Uint8Array[]): string {
  try {
    store.verifyChain(chain, new Date());
    return 'OK';
  } catch (e) {
    if (isProtocolError(e)) return e.code;
    throw e;
  }
}
