// The station reaches BLE packs (issue 8 item 1): the same attempt as over serial — hello, firmware
// check, keygen, proof of possession, certificate, setchain, self-test, registry, PASS/FAIL codes —
// through the real node-ble client over a real dbus-daemon to hw-sim's fake BlueZ, with hw-sim's
// firmware on the far side. Checks the issued chain with protocol's TrustStore and a self-test frame
// fetched afresh over BLE, a link dropped mid-attempt (DEVICE_LOST, the certificate revoked, a retry
// passes), the MTU the link reports, and the spawned CLI `provision pack --ble`.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame, decodeTrustBundle, fromPem, parseCrl, TrustStore, verifySign1 } from '../protocol/index.js';
import { Fleet, type FleetEndpoint } from '../hw-sim/index.js';
import { BleLink } from '../provisioning/ble-link.js';
import { PackSession } from '../provisioning/device.js';
import { EXIT_CODES, provisionPack, type ProvisionPackOptions, Registry, StationCa } from '../provisioning/index.js';

const PASS = 'line passphrase for tests';
const repo = resolve(import.meta.dirname, '..');
const root = mkdtempSync(join(tmpdir(), 'prov-ble-'));
const stationDir = join(root, 'station');
let fleet: Fleet;
let ca: StationCa;
let registry: Registry;

beforeAll(async () => {
  await StationCa.init({ dir: stationDir, linePassphrase: PASS, org: 'Packchain Test' });
  ca = await StationCa.open({ dir: stationDir, passphrase: PASS });
  registry = await Registry.open(join(stationDir, 'registry.db'));
  fleet = await Fleet.start({ dir: join(root, 'fleet'), serial: 0, ble: 5, seed: 8, periodMs: 300, tickMs: 50 });
}, 60_000);

afterAll(async () => {
  await fleet.stop();
  await registry.close();
  rmSync(root, { recursive: true, force: true });
});

const pack = (i: number): FleetEndpoint => fleet.endpoints()[i]!;
const ble = (p: FleetEndpoint) => ({ address: p.endpoint, busAddress: fleet.busAddress! });
const attempt = (p: FleetEndpoint, serial: string, extra: Partial<ProvisionPackOptions> = {}) =>
  provisionPack({ ca, registry, ble: ble(p), serial, station: 'line-1', operator: 'tester', ...extra });
const onLineCrl = (serialHex: string): boolean => parseCrl(ca.currentCrls().line).revoked.has(serialHex);

/** Over a fresh BLE link, as a gateway would: the pack's hello chain under the trust bundle, and a self-test frame under its key. */
async function checkOverBle(p: FleetEndpoint): Promise<{ serial: string; frameSerial: string }> {
  const trust = await TrustStore.create(decodeTrustBundle(ca.trustBundle()));
  const session = new PackSession(await BleLink.open(ble(p)));
  try {
    const hello = await session.identify(5000);
    const device = trust.verifyChain(hello.chain, new Date());
    const st = await session.call({ op: 'selftest' }, { timeoutMs: 5000 });
    const frame = decodeFrame(verifySign1(st.cose, { publicKey: device.publicKey, kid: device.kid }).payload);
    return { serial: device.packSerial, frameSerial: frame.serial };
  } finally {
    await session.close();
  }
}

describe('provisionPack over BLE', () => {
  for (const [i, alg] of [[0, 'ES256'], [1, 'Ed25519']] as const) {
    describe(`when a new hw-sim BLE pack is provisioned with ${alg}`, () => {
      it('passes with the label line, records the BLE address as the port, and the pack then presents a chain and self-test frames that verify', async () => {
        const serial = `BLE-000${i + 1}`;
        const out = await attempt(pack(i), serial, { alg });
        expect(out.reason).toBeUndefined();
        expect(out).toMatchObject({ result: 'PASS', exitCode: 0, port: `ble:${pack(i).endpoint}` });
        expect(out.label).toMatch(new RegExp(`^PASS {2}${serial} {2}${alg} {2}key [0-9a-f]{4}(-[0-9a-f]{4}){3} {2}cert [0-9A-F]+$`));
        expect(out.record).toMatchObject({ serial, port: `ble:${pack(i).endpoint}`, result: 'PASS', alg, firmware: '1.0.0', model: pack(i).model, certStatus: 'active' });
        const trust = await TrustStore.create(decodeTrustBundle(ca.trustBundle()));
        const [leaf] = fromPem(out.record.certPem ?? '');
        expect(trust.verifyChain([leaf!.der, ca.lineCert], new Date()).packSerial).toBe(serial);
        expect(await checkOverBle(pack(i))).toEqual({ serial, frameSerial: serial });
      });
    });
  }

  describe('when the BLE pack is already provisioned', () => {
    it('fails ALREADY_PROVISIONED (its hello carried the chain over BLE), exit 13', async () => {
      const out = await attempt(pack(0), 'BLE-0009');
      expect(out).toMatchObject({ result: 'FAIL', code: 'ALREADY_PROVISIONED', step: 'existing', exitCode: 13 });
      expect(out.reason).toContain('"BLE-0001"');
    });
  });

  for (const [i, at] of [[2, 'prove'], [3, 'setchain']] as const) {
    describe(`when the BLE link drops at step ${at}`, () => {
      it('fails DEVICE_LOST, exit 18, revokes what was issued, and a retry once the pack is back passes', async () => {
        const p = pack(i);
        const serial = `BLE-002${i}`;
        const out = await attempt(p, serial, {
          onProgress: async (ev) => {
            if (ev.step === at) await fleet.inject(p.label, { kind: 'ble-drop', downMs: 300 });
          },
        });
        expect(out).toMatchObject({ result: 'FAIL', code: 'DEVICE_LOST', step: at, exitCode: EXIT_CODES.DEVICE_LOST });
        expect(out.reason).toMatch(/BLE link was lost|GATT write failed/);
        if (at === 'prove') {
          expect(out.record.certStatus).toBe('none');
        } else {
          expect(out.record.certStatus).toBe('revoked');
          expect(onLineCrl(out.record.certSerialHex ?? '')).toBe(true);
        }
        await fleet.faultsSettled(p.label);
        const retry = await attempt(p, serial);
        expect(retry.result).toBe('PASS');
        expect((await registry.history(serial)).map((r) => [r.result, r.certStatus])).toEqual([
          ['FAIL', at === 'prove' ? 'none' : 'revoked'],
          ['PASS', 'active'],
        ]);
      });
    });
  }

  describe('when no pack has that address', () => {
    it('fails NO_DEVICE, exit 10, after the connect timeout, and records the attempt', async () => {
      const out = await attempt(pack(0), 'BLE-0030', { ble: { address: 'c0:de:99:99:99:99', busAddress: fleet.busAddress!, connectTimeoutMs: 1000 } });
      expect(out).toMatchObject({ result: 'FAIL', code: 'NO_DEVICE', step: 'open', exitCode: 10, port: 'ble:C0:DE:99:99:99:99' });
      expect(out.reason).toMatch(/no BLE device with this address seen within 1000 ms/);
    });
  });

  describe('when given both a serial port and a BLE address', () => {
    it('throws USAGE before anything is recorded', async () => {
      await expect(attempt(pack(4), 'BLE-0031', { port: '/dev/ttyUSB0' })).rejects.toMatchObject({ code: 'USAGE' });
      expect(await registry.history('BLE-0031')).toEqual([]);
    });
  });
});

describe('BleLink', () => {
  it('writes 20-byte chunks at ATT_MTU 23 and says goodbye with a host Disconnect on close', async () => {
    const p = pack(4);
    const stats = () => fleet.device(p.label)!.ble!.handle.stats; // a snapshot per read
    const before = stats();
    const link = await BleLink.open(ble(p));
    expect(link.chunkSize).toBe(20);
    const session = new PackSession(link);
    expect((await session.identify(5000)).serial).toBe('');
    await session.close();
    expect(stats().connects).toBe(before.connects + 1);
    expect(stats().disconnects).toBe(before.disconnects + 1);
  });

  describe('on a pack whose link reports ATT_MTU 247', () => {
    const dir = join(root, 'fleet-247');
    let big: Fleet;
    beforeAll(async () => {
      mkdirSync(dir);
      big = await Fleet.start({ dir, serial: 0, ble: 1, seed: 9, periodMs: 300, tickMs: 50, mtu: 247 });
    }, 60_000);
    afterAll(async () => {
      await big.stop();
    });

    it('writes 244-byte chunks, and the pack provisions with them', async () => {
      const p = big.endpoints()[0]!;
      const link = await BleLink.open({ address: p.endpoint, busAddress: big.busAddress! });
      expect(link.chunkSize).toBe(244);
      await link.close();
      const out = await provisionPack({ ca, registry, ble: { address: p.endpoint, busAddress: big.busAddress! }, serial: 'BLE-0247', station: 'line-1', operator: 'tester' });
      expect(out.result).toBe('PASS');
      expect(big.device(p.label)!.ble!.handle.stats.writesRejected).toBe(0);
    });
  });
});

describe('packchain provision pack --ble', () => {
  const cliStation = join(root, 'cli-station');
  const passFile = join(root, 'line.pass');

  /** `packchain provision pack <args>` on the CLI station, as a technician runs it. */
  async function provisionCli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
    const all = ['provision', 'pack', ...args, '--passphrase-file', passFile, '--dir', cliStation, '--station', 'cli-test', '--operator', 'tester'];
    const env = { ...process.env, PACKCHAIN_CA_PASSPHRASE: '', PACKCHAIN_ROOT_PASSPHRASE: '' };
    const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'cli/main.ts'), ...all], { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    return { code, out, err };
  }

  beforeAll(async () => {
    writeFileSync(passFile, `${PASS}\n`, { mode: 0o600 });
    await StationCa.init({ dir: cliStation, linePassphrase: PASS });
  }, 60_000);

  it('prints the PASS label line and exits 0', async () => {
    const r = await provisionCli('--ble', pack(4).endpoint, '--bus-address', fleet.busAddress!, '--serial', 'BLE-CLI-1');
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^PASS {2}BLE-CLI-1 {2}ES256 {2}key [0-9a-f]{4}(-[0-9a-f]{4}){3} {2}cert [0-9A-F]+\n$/);
    expect(r.code).toBe(0);
  }, 120_000);

  it('refuses --port together with --ble: USAGE, exit 2', async () => {
    const r = await provisionCli('--ble', pack(4).endpoint, '--port', '/dev/ttyUSB0', '--serial', 'BLE-CLI-2');
    expect(r.err).toContain('provisioning: USAGE: give exactly one of --port PATH (serial) or --ble ADDRESS');
    expect(r.out).toBe('');
    expect(r.code).toBe(EXIT_CODES.USAGE);
  }, 120_000);
});
