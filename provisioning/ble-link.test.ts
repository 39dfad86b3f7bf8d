// BleLink's own rules (address, chunk size from the MTU) and how it fails to reach BlueZ, against
// real dbus-daemons started here: no bus at all, a bus without BlueZ, and a bus whose policy denies
// the station's calls to org.bluez (the station user not in the bluetooth group). Talking to packs
// over the fake BlueZ with hw-sim's firmware is cross-module: test/provision-ble.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { afterAll, describe, expect, it } from 'vitest';
import { BleLink, checkBleAddress, chunkSizeForMtu } from './ble-link.js';
import { ProvisioningError } from './errors.js';

const dir = mkdtempSync(join(tmpdir(), 'prov-ble-link-'));
const daemons: ChildProcess[] = [];
const clients: dbus.MessageBus[] = [];

/** A dbus-daemon on `<dir>/<name>.sock` with `policy` lines; resolves with its address. */
async function startBus(name: string, policy: string[]): Promise<string> {
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    [
      '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">',
      '<busconfig>',
      '  <type>system</type>',
      `  <listen>unix:path=${join(dir, `${name}.sock`)}</listen>`,
      '  <auth>EXTERNAL</auth>',
      '  <policy context="default">',
      '    <allow user="*"/>',
      '    <allow own="*"/>',
      '    <allow send_destination="*"/>',
      '    <allow receive_sender="*"/>',
      ...policy.map((p) => `    ${p}`),
      '  </policy>',
      '</busconfig>',
    ].join('\n'),
  );
  const child = spawn('dbus-daemon', [`--config-file=${conf}`, '--print-address=1', '--nofork'], { stdio: ['ignore', 'pipe', 'ignore'] });
  daemons.push(child);
  return new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) resolve(line.trim());
    });
    child.on('exit', (code) => {
      reject(new Error(`dbus-daemon exited with ${code}`));
    });
  });
}

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(
    daemons.map(
      (d) =>
        new Promise<void>((r) => {
          if (d.exitCode !== null) {
            r();
            return;
          }
          d.on('exit', () => {
            r();
          });
          d.kill('SIGTERM');
        }),
    ),
  );
  rmSync(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<ProvisioningError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof ProvisioningError)) throw new Error(`expected a ProvisioningError, got ${String(e)}`);
  return e;
}

describe('checkBleAddress', () => {
  it('accepts six hex bytes in any case and returns them in upper case', () => {
    expect(checkBleAddress('c0:de:00:07:00:04')).toBe('C0:DE:00:07:00:04');
  });

  for (const bad of ['C0:DE:00:07:00', 'C0-DE-00-07-00-04', 'C0:DE:00:07:00:4G', '/dev/ttyUSB0', '']) {
    it(`when the address is ${JSON.stringify(bad)} → throws USAGE`, () => {
      expect(() => checkBleAddress(bad)).toThrow(expect.objectContaining({ code: 'USAGE' }));
    });
  }
});

describe('chunkSizeForMtu', () => {
  it('is ATT_MTU − 3 within 20..244 (docs/protocol.md §6.1)', () => {
    expect([23, 100, 185, 247].map(chunkSizeForMtu)).toEqual([20, 97, 182, 244]);
  });

  it('clamps an MTU outside 23..247 and uses 20 when BlueZ reports none or nonsense', () => {
    expect([517, 10, undefined, 'x', 23.5].map(chunkSizeForMtu)).toEqual([244, 20, 20, 20, 20]);
  });
});

describe('BleLink.open', () => {
  describe('when the address is malformed', () => {
    it('throws USAGE before touching any bus', async () => {
      expect((await failure(BleLink.open({ address: 'nope', busAddress: `unix:path=${join(dir, 'none.sock')}` }))).code).toBe('USAGE');
    });
  });

  describe('when nothing listens at the bus address', () => {
    it('throws NO_DEVICE naming the bus', async () => {
      const busAddress = `unix:path=${join(dir, 'none.sock')}`;
      const e = await failure(BleLink.open({ address: 'C0:DE:00:00:00:01', busAddress, connectTimeoutMs: 3000 }));
      expect(e.code).toBe('NO_DEVICE');
      expect(e.message).toContain(`ble:C0:DE:00:00:00:01: cannot reach BlueZ on ${busAddress}: connect ENOENT`);
      expect(e.message).toContain('no D-Bus daemon listens there');
    });
  });

  describe('when the bus has no BlueZ on it', () => {
    it('throws NO_DEVICE saying BlueZ is not running', async () => {
      const busAddress = await startBus('empty', []);
      const e = await failure(BleLink.open({ address: 'C0:DE:00:00:00:01', busAddress, connectTimeoutMs: 3000 }));
      expect(e.code).toBe('NO_DEVICE');
      expect(e.message).toMatch(/ServiceUnknown.*BlueZ is not running/);
    });
  });

  describe("when the bus policy denies the station's calls to org.bluez", () => {
    it('throws NO_DEVICE pointing at the BlueZ permissions', async () => {
      const busAddress = await startBus('denied', ['<deny send_destination="org.bluez"/>']);
      const owner = dbus.sessionBus({ busAddress });
      clients.push(owner);
      await owner.requestName('org.bluez', 0);
      const e = await failure(BleLink.open({ address: 'C0:DE:00:00:00:01', busAddress, connectTimeoutMs: 3000 }));
      expect(e.code).toBe('NO_DEVICE');
      expect(e.message).toMatch(/AccessDenied.*BlueZ permissions/);
    });
  });
});
