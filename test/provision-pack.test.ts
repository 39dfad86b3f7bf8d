// One pack attempt end to end (issue 5 items 2, 3, 6): the real station CA and registry, hw-sim packs
// on real socat ptys, the station's real serialport session — and, for what a faithful firmware never
// does (bad proof of possession, a self-test signed by another key, a cloned key), the scripted pack
// of provisioning/device-testkit.ts on its own pty. Every failure path of item 3 is one test; each
// shows what was recorded, what was revoked, and that a retry of the same pack passes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromPem, parseCrl, publicKeyFromSecretPortable, toPem } from '../protocol/index.js';
import { createPtyPair, Fleet, type FleetEndpoint, type PtyPair } from '../hw-sim/index.js';
import { type AttemptRecord, EXIT_CODES, provisionPack, type ProvisionPackOptions, Registry, resolvePending, StationCa } from '../provisioning/index.js';
import { FakePack, type FakePackOptions } from '../provisioning/device-testkit.js';
import { gatewayView } from './provision-testkit.js';

const PASS = 'line passphrase for tests';
const root = mkdtempSync(join(tmpdir(), 'prov-pack-'));
const stationDir = join(root, 'station');
mkdirSync(join(root, 'fake')); // the scripted packs' pty pairs
let fleet: Fleet;
let ca: StationCa;
let registry: Registry;
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await StationCa.init({ dir: stationDir, linePassphrase: PASS, org: 'Packchain Test' });
  ca = await StationCa.open({ dir: stationDir, passphrase: PASS });
  registry = await Registry.open(join(stationDir, 'registry.db'));
  fleet = await Fleet.start({ dir: join(root, 'fleet'), serial: 4, ble: 0, seed: 5, periodMs: 300, tickMs: 50 });
});

afterAll(async () => {
  for (const s of stops.reverse()) await s();
  await fleet.stop();
  await registry.close();
  rmSync(root, { recursive: true, force: true });
});

const pack = (i: number): FleetEndpoint => fleet.endpoints()[i]!;
const attempt = (port: string, serial: string, extra: Partial<ProvisionPackOptions> = {}) =>
  provisionPack({ ca, registry, port, serial, station: 'line-1', operator: 'tester', ...extra });

/** A scripted pack on its own pty (stopped after the file). */
async function fakePack(name: string, opts: FakePackOptions = {}): Promise<{ pty: PtyPair; fake: FakePack }> {
  const pty = await createPtyPair({ dir: join(root, 'fake'), name });
  const fake = await FakePack.attach(pty.devicePath, opts);
  stops.push(async () => {
    await fake.close();
    await pty.stop();
  });
  return { pty, fake };
}

const onLineCrl = (serialHex: string): boolean => parseCrl(ca.currentCrls().line).revoked.has(serialHex);

function openssl(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** `openssl verify` of a device certificate under the station's root and line CA, optionally with the line CRL. */
function opensslVerify(certPem: string, crl: boolean): string {
  const d = mkdtempSync(join(root, 'openssl-'));
  writeFileSync(join(d, 'root.pem'), toPem(ca.rootCert, 'CERTIFICATE'));
  writeFileSync(join(d, 'line.pem'), toPem(ca.lineCert, 'CERTIFICATE'));
  writeFileSync(join(d, 'device.pem'), certPem);
  const crls = toPem(ca.currentCrls().line, 'X509 CRL') + toPem(ca.currentCrls().root, 'X509 CRL');
  writeFileSync(join(d, 'crls.pem'), crls);
  const extra = crl ? ['-crl_check_all', '-CRLfile', join(d, 'crls.pem')] : [];
  return openssl('verify', ...extra, '-CAfile', join(d, 'root.pem'), '-untrusted', join(d, 'line.pem'), join(d, 'device.pem')).out;
}

describe('provisionPack', () => {
  let first: AttemptRecord;

  describe('when a new hw-sim pack is connected', () => {
    it('passes, records every field, and prints the label line', async () => {
      const out = await attempt(pack(0).endpoint, 'PK-0001');
      expect(out.result).toBe('PASS');
      expect(out.exitCode).toBe(0);
      expect(out.label).toMatch(/^PASS {2}PK-0001 {2}ES256 {2}key [0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4} {2}cert [0-9A-F]+$/);
      first = out.record;
      const recorded = (await registry.history('PK-0001')).at(-1)!;
      expect(recorded).toEqual(first);
      expect(recorded).toMatchObject({
        serial: 'PK-0001', model: pack(0).model, port: pack(0).endpoint, station: 'line-1', operator: 'tester', result: 'PASS',
        firmware: '1.0.0', alg: 'ES256', certStatus: 'active',
      });
      expect(recorded.keyFingerprint).toMatch(/^[0-9a-f]{64}$/);
      expect(recorded.keyFingerprint?.slice(0, 4)).toBe(out.label.split('key ')[1]?.slice(0, 4));
      expect(recorded.certSha256).toMatch(/^[0-9a-f]{64}$/);
      expect(recorded.certSerialHex).toBe(out.certSerialHex);
      expect(Date.parse(recorded.certNotAfter ?? '')).toBeGreaterThan(Date.now() + 19 * 365 * 86_400_000);
      expect(Date.parse(recorded.finishedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(recorded.startedAt));
      expect(recorded.durationMs).toBeGreaterThan(0);
      expect(fromPem(recorded.certPem ?? '')).toHaveLength(1);
    });

    it('issued a chain that openssl verifies, with and without the CRLs', () => {
      expect(opensslVerify(first.certPem ?? '', false)).toContain(': OK');
      expect(opensslVerify(first.certPem ?? '', true)).toContain(': OK');
    });

    it('the pack then streams frames a gateway verifies with the exported trust bundle', async () => {
      const seen = await gatewayView(pack(0).endpoint, ca.trustBundle(), 3);
      expect(seen.serial).toBe('PK-0001');
      expect(seen.counters.length).toBeGreaterThanOrEqual(3);
    });
  });

  describe('when the pack is already provisioned', () => {
    it('fails ALREADY_PROVISIONED naming the serial and key, exit 13, and issues nothing', async () => {
      const out = await attempt(pack(0).endpoint, 'PK-0009');
      expect(out).toMatchObject({ result: 'FAIL', code: 'ALREADY_PROVISIONED', step: 'existing', exitCode: 13 });
      expect(out.reason).toContain('"PK-0001"');
      expect(out.reason).toContain(`key ${first.keyFingerprint?.slice(0, 4) ?? '?'}`);
      expect(out.record).toMatchObject({ result: 'FAIL', code: 'ALREADY_PROVISIONED', certStatus: 'none' });
      expect((await registry.activeBySerial('PK-0001'))?.id).toBe(first.id);
    });

    it('with --force passes, and the old certificate is revoked (superseded) on a new CRL', async () => {
      const before = parseCrl(ca.currentCrls().line).crlNumber ?? 0n;
      const out = await attempt(pack(0).endpoint, 'PK-0001', { force: true, alg: 'Ed25519' });
      expect(out.result).toBe('PASS');
      expect(out.label).toContain('  Ed25519  ');
      const old = (await registry.history('PK-0001')).find((r) => r.id === first.id)!;
      expect(old).toMatchObject({ certStatus: 'revoked', revocationReason: 'superseded' });
      expect(parseCrl(ca.currentCrls().line).crlNumber ?? 0n).toBeGreaterThan(before);
      expect(onLineCrl(first.certSerialHex ?? '')).toBe(true);
      expect(onLineCrl(out.certSerialHex ?? '')).toBe(false);
      expect(opensslVerify(first.certPem ?? '', true)).toMatch(/certificate revoked/);
      expect((await registry.activeBySerial('PK-0001'))?.id).toBe(out.record.id);
    });
  });

  describe('when the serial already has an active certificate on another pack', () => {
    it('fails SERIAL_IN_USE before keygen, exit 16; the pack passes with its own serial', async () => {
      const out = await attempt(pack(1).endpoint, 'PK-0001');
      expect(out).toMatchObject({ result: 'FAIL', code: 'SERIAL_IN_USE', step: 'registry', exitCode: EXIT_CODES.SERIAL_IN_USE });
      expect(out.record.certStatus).toBe('none');
      expect((await attempt(pack(1).endpoint, 'PK-0002')).result).toBe('PASS');
    });
  });

  describe('when the firmware is not accepted', () => {
    it('fails UNKNOWN_FIRMWARE, exit 12', async () => {
      const out = await attempt(pack(2).endpoint, 'PK-0003', { acceptFirmware: /^2\.\d+\.\d+$/ });
      expect(out).toMatchObject({ result: 'FAIL', code: 'UNKNOWN_FIRMWARE', step: 'identify', exitCode: 12 });
      expect(out.reason).toContain('"1.0.0"');
    });
  });

  describe('when the port does not exist', () => {
    it('fails NO_DEVICE, exit 10, recorded', async () => {
      const out = await attempt(join(root, 'ttyUSB9'), 'PK-0004');
      expect(out).toMatchObject({ result: 'FAIL', code: 'NO_DEVICE', step: 'open', exitCode: 10 });
      expect((await registry.history('PK-0004')).map((r) => r.result)).toEqual(['FAIL']);
    });
  });

  describe('when nothing answers on the port', () => {
    it('fails NO_ANSWER, exit 11', async () => {
      const pty = await createPtyPair({ dir: join(root, 'fake'), name: 'silent' });
      stops.push(() => pty.stop());
      const out = await attempt(pty.hostPath, 'PK-0005', { timeoutMs: 800 });
      expect(out).toMatchObject({ result: 'FAIL', code: 'NO_ANSWER', step: 'identify', exitCode: 11 });
    });
  });

  describe('when the proof of possession does not verify', () => {
    it('fails POP_FAILED, exit 14, with no certificate issued; the repaired pack then passes', async () => {
      const { pty, fake } = await fakePack('badpop', { badPop: true });
      const out = await attempt(pty.hostPath, 'PK-0006');
      expect(out).toMatchObject({ result: 'FAIL', code: 'POP_FAILED', step: 'prove', exitCode: 14 });
      expect(out.record.certStatus).toBe('none');
      expect(fake.ops).not.toContain('setchain');
      fake.opts.badPop = false;
      expect((await attempt(pty.hostPath, 'PK-0006')).result).toBe('PASS');
    });
  });

  describe('when the self-test frame is signed by another key', () => {
    it('fails SELFTEST_FAILED naming the check, revokes the issued certificate, and a retry passes without --force', async () => {
      const { pty, fake } = await fakePack('selftest', { selftest: 'wrong-key' });
      const out = await attempt(pty.hostPath, 'PK-0007');
      expect(out).toMatchObject({ result: 'FAIL', code: 'SELFTEST_FAILED', step: 'selftest', exitCode: 15 });
      expect(out.reason).toContain('check "signature"');
      expect(out.record).toMatchObject({ certStatus: 'revoked', revocationReason: 'cessationOfOperation', revocationNote: 'attempt failed: SELFTEST_FAILED' });
      expect(onLineCrl(out.record.certSerialHex ?? '')).toBe(true);
      expect(fake.chain).toHaveLength(2); // the pack kept the (now revoked) chain
      fake.opts.selftest = 'good';
      const retry = await attempt(pty.hostPath, 'PK-0007');
      expect(retry.result).toBe('PASS');
    });

    it('fails SELFTEST_FAILED on a frame carrying another serial', async () => {
      const { pty } = await fakePack('selftest-serial', { selftest: 'wrong-serial' });
      const out = await attempt(pty.hostPath, 'PK-0008');
      expect(out).toMatchObject({ code: 'SELFTEST_FAILED' });
      expect(out.reason).toContain('check "serial"');
    });
  });

  describe('when a second pack reports a key that is already certified (a cloned key)', () => {
    it('fails KEY_IN_USE, exit 17, before anything is issued', async () => {
      const secretKey = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
      const a = await fakePack('clone-a', { fixedSecretKey: secretKey });
      const b = await fakePack('clone-b', { fixedSecretKey: secretKey });
      expect((await attempt(a.pty.hostPath, 'PK-0010')).result).toBe('PASS');
      const out = await attempt(b.pty.hostPath, 'PK-0011');
      expect(out).toMatchObject({ result: 'FAIL', code: 'KEY_IN_USE', step: 'keygen', exitCode: 17 });
      expect(out.reason).toContain('PK-0010');
      expect(out.record.certStatus).toBe('none');
    });
  });

  for (const at of ['prove', 'selftest'] as const) {
    describe(`when the pack is unplugged at step ${at}`, () => {
      it('fails DEVICE_LOST, exit 18, revokes what was issued, and the replugged pack passes', async () => {
        const p = at === 'prove' ? pack(2) : pack(3);
        const serial = at === 'prove' ? 'PK-0020' : 'PK-0021';
        const out = await attempt(p.endpoint, serial, {
          onProgress: async (ev) => {
            if (ev.step === at) await fleet.inject(p.label, { kind: 'unplug', downMs: 300 });
          },
        });
        expect(out).toMatchObject({ result: 'FAIL', code: 'DEVICE_LOST', step: at, exitCode: 18 });
        if (at === 'prove') {
          expect(out.record.certStatus).toBe('none');
        } else {
          expect(out.record.certStatus).toBe('revoked');
          expect(onLineCrl(out.record.certSerialHex ?? '')).toBe(true);
        }
        await fleet.faultsSettled(p.label);
        const retry = await attempt(p.endpoint, serial);
        expect(retry.result).toBe('PASS');
        expect((await registry.history(serial)).map((r) => [r.result, r.certStatus])).toEqual([
          ['FAIL', at === 'prove' ? 'none' : 'revoked'],
          ['PASS', 'active'],
        ]);
      });
    });
  }

  describe('when the station stopped mid-attempt (a PENDING record with an issued certificate)', () => {
    it('resolvePending revokes the certificate and records FAIL', async () => {
      const rec = await registry.begin({ serial: 'PK-0030', model: 'X', port: '/dev/null', station: 'line-1', operator: 'tester' });
      const issued = await ca.issueDevice({ packSerial: 'PK-0030', publicKey: publicKeyFromSecretPortable('Ed25519', new Uint8Array(32).fill(9)).raw, alg: 'Ed25519' });
      await registry.update(rec.id, { certSerialHex: issued.serialHex, certStatus: 'active', certPem: toPem(issued.cert, 'CERTIFICATE') });
      const resolved = await resolvePending(ca, registry);
      expect(resolved.map((r) => r.id)).toEqual([rec.id]);
      expect(resolved[0]).toMatchObject({ result: 'FAIL', reason: 'station stopped mid-attempt', certStatus: 'revoked' });
      expect(onLineCrl(issued.serialHex)).toBe(true);
      expect(await registry.pending()).toEqual([]);
    });
  });
});
