/**
 * Fleet integration: real socat ptys, a real dbus-daemon, and a host side on the real serialport
 * library — the way the station and the gateway will meet the simulated packs. The host provisions
 * one pack over the line (keygen, proof of possession, certificate chain), then receives signed
 * frames that verify with protocol against the factory root, acknowledges them, and checks the
 * fleet's ground-truth record against what it received.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ackMessages, decodeFrame, encodeLine, LineDecoder, sha256, toHex, verifySign1 } from '../protocol/index.js';
import { Fleet } from './fleet.js';
import { TestHost } from './host-testkit.js';

/** A host on one pty, through the real serialport library. */
async function openSerialHost(path: string): Promise<{ host: TestHost; close: () => Promise<void> }> {
  const port = new SerialPort({ path, baudRate: 115_200, autoOpen: false });
  await new Promise<void>((ok, fail) => {
    port.open((e) => {
      if (e) fail(e);
      else ok();
    });
  });
  const decoder = new LineDecoder();
  const host = new TestHost((msg) => {
    port.write(Buffer.from(encodeLine(msg)));
  });
  port.on('data', (chunk: Buffer) => {
    for (const ev of decoder.push(chunk)) if (ev.kind === 'message') host.receive(ev.message);
  });
  const close = () =>
    new Promise<void>((r) => {
      port.close(() => {
        r();
      });
    });
  return { host, close };
}

const dir = mkdtempSync(join(tmpdir(), 'hwsim-fleet-'));
let fleet: Fleet;

beforeAll(async () => {
  fleet = await Fleet.start({ dir, serial: 2, ble: 1, seed: 42, speed: 1, periodMs: 200, tickMs: 50 });
});

afterAll(async () => {
  await fleet.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('Fleet', () => {
  it('exposes serial ptys and a BLE address per pack, with distinct labels', () => {
    const eps = fleet.endpoints();
    expect(eps.map((e) => e.kind)).toEqual(['serial', 'serial', 'ble']);
    expect(new Set(eps.map((e) => e.label)).size).toBe(3);
    for (const e of eps.filter((x) => x.kind === 'serial')) expect(existsSync(e.endpoint)).toBe(true);
    expect(eps[2]?.endpoint).toMatch(/^C0:DE:00:2A:00:02$/);
    expect(fleet.busAddress).toMatch(/^unix:path=/);
  });

  it('a pack is provisioned over the real pty, then streams frames that verify against the factory root', async () => {
    const ep = fleet.endpoints()[0]!;
    const { host, close } = await openSerialHost(ep.endpoint);
    try {
      const hello = await host.call({ op: 'hello' });
      expect(hello.op === 'hello' && hello.hello.serial).toBe('');
      const { device } = await host.provision(ep.label);

      // Frames arrive at the device's period; the host verifies each and acknowledges it.
      const frames = await host.until(() => (host.frames().length >= 5 ? host.frames() : undefined));
      const counters: number[] = [];
      for (const m of frames) {
        const frame = decodeFrame(verifySign1(m.cose, { publicKey: device.publicKey, kid: device.kid }).payload);
        expect(frame.serial).toBe(ep.label);
        expect(frame.cells).toHaveLength(ep.cells);
        counters.push(frame.counter);
      }
      expect(counters).toEqual([...counters].sort((a, b) => a - b));
      for (const ack of ackMessages(counters)) await host.send(ack);

      // Ground truth holds exactly the frames the device produced, with the same bytes.
      const truth = readFileSync(fleet.groundTruthPath, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { serial: string; counter: number; sha256: string });
      for (const m of frames) {
        expect(truth).toContainEqual(expect.objectContaining({ serial: ep.label, sha256: toHex(sha256(m.cose)) }));
      }
      await host.until(() => (fleet.devices[0]!.firmware.stats.framesAcked >= counters.length ? true : undefined));
    } finally {
      await close();
    }
  });

  it('stop() leaves no socat or dbus-daemon behind', async () => {
    const own = () => {
      try {
        return execFileSync('pgrep', ['-f', dir], { encoding: 'utf8' }).trim();
      } catch {
        return '';
      }
    };
    expect(own()).not.toBe('');
    await fleet.stop();
    await new Promise((r) => setTimeout(r, 300));
    expect(own()).toBe('');
  });
});
