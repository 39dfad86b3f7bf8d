/**
 * The firmware behind a BLE link, read by the real node-ble client through a real dbus-daemon and
 * the fake BlueZ: provisioning over GATT writes, signed frames as chunked notifications at MTU 23
 * that reassemble and verify with protocol, acks freeing the resend ring, and a link drop after
 * which the pack resends every unacknowledged frame once the host is back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ackMessages, chunkMessage, decodeFrame, encodeDeviceInfo, Reassembler, verifySign1, type Message } from '../protocol/index.js';
import { BleDeviceLink } from './ble-link.js';
import { openLab, packchainCharacteristics, type BleLab, type NodeBleCharacteristic, type NodeBleDevice } from './bluez/testkit.js';
import { Firmware, type SensorReading } from './firmware.js';
import { DeviceFlash } from './flash.js';
import { TestHost } from './host-testkit.js';

const ADDRESS = 'C0:DE:00:00:00:01';
const reading: SensorReading = {
  soc: 612, soh: 991, voltage: 52_000, current: 1_500, tempMin: 215, tempMax: 233, cycles: 42,
  cells: [3250, 3251, 3249, 3250], remainingCapacity: 61_000, resistance: 9_000, alarms: 0,
};

let lab: BleLab;
let firmware: Firmware;
let link: BleDeviceLink;
let deviceNow = Date.parse('2026-11-25T10:00:00Z');
const dir = mkdtempSync(join(tmpdir(), 'hwsim-blelink-'));

/** A node-ble session connected to the pack with notifications on, feeding a TestHost. */
async function connectHost(): Promise<{ host: TestHost; device: NodeBleDevice; write: NodeBleCharacteristic }> {
  const session = lab.client();
  const adapter = await session.bluetooth.defaultAdapter();
  if (!(await adapter.isDiscovering())) await adapter.startDiscovery();
  const device = await adapter.waitDevice(ADDRESS);
  await device.connect();
  const { notify, write } = await packchainCharacteristics(device);
  const reassembler = new Reassembler({ timeoutMs: 2000 });
  const host = new TestHost(async (msg: Message) => {
    for (const chunk of chunkMessage(msg, 20)) await write.writeValueWithoutResponse(Buffer.from(chunk));
  });
  notify.on('valuechanged', (buf: Buffer) => {
    for (const ev of reassembler.push(new Uint8Array(buf), Date.now())) if (ev.kind === 'message') host.receive(ev.message);
  });
  await notify.startNotifications();
  return { host, device, write };
}

beforeAll(async () => {
  lab = await openLab();
  link = BleDeviceLink.attach({ bluez: lab.bluez, address: ADDRESS, name: 'SIM-BLE-1', mtu: 23, deviceInfo: encodeDeviceInfo({ serial: '', model: 'PC-LFP-4S', firmware: '1.0.0', alg: null }) });
  const flash = await DeviceFlash.open({ dir: join(dir, 'flash'), factory: { model: 'PC-LFP-4S', firmware: '1.0.0' } });
  firmware = Firmware.boot({ flash, link, sensor: { measure: () => reading }, clock: () => deviceNow, random: (n) => crypto.getRandomValues(new Uint8Array(n)), periodMs: 1000 });
});

afterAll(async () => {
  await firmware.stop();
  await link.close();
  await lab.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('BleDeviceLink', () => {
  it('carries provisioning, chunked signed frames and acks over real node-ble; resends after a link drop', async () => {
    const { host, device } = await connectHost();
    const { device: verified } = await host.provision('PACK-BLE-0001', -8);

    for (let i = 0; i < 4; i++) {
      deviceNow += 1000;
      await firmware.tick(deviceNow);
    }
    const frames = await host.until(() => (host.frames().length >= 4 ? host.frames() : undefined));
    const counters = frames.map((m) => decodeFrame(verifySign1(m.cose, { publicKey: verified.publicKey, kid: verified.kid }).payload).counter);
    expect(counters).toHaveLength(new Set(counters).size);
    expect(link.stats.chunksSent).toBeGreaterThan(counters.length * 10); // ~300-byte frames in 20-byte chunks
    for (const ack of ackMessages(counters)) await host.send(ack);
    await host.until(() => (firmware.stats.framesAcked >= counters.length ? true : undefined));

    // Two more frames are produced, then the radio link drops before they are acknowledged.
    for (let i = 0; i < 2; i++) {
      deviceNow += 1000;
      await firmware.tick(deviceNow);
    }
    const pending = await host.until(() => (host.frames().length >= counters.length + 2 ? host.frames().slice(counters.length) : undefined));
    const pendingCounters = pending.map((m) => decodeFrame(verifySign1(m.cose, { publicKey: verified.publicKey, kid: verified.kid }).payload).counter);
    const disconnected = new Promise<void>((r) => {
      device.once('disconnect', () => {
        r();
      });
    });
    link.handle.dropLink();
    await disconnected;
    expect(link.isUp).toBe(false);

    link.handle.comeBack();
    const again = await connectHost();
    const resent = await again.host.until(() => {
      const got = again.host.frames().map((m) => decodeFrame(verifySign1(m.cose, { publicKey: verified.publicKey, kid: verified.kid }).payload).counter);
      return pendingCounters.every((c) => got.includes(c)) ? got : undefined;
    });
    // Acknowledged frames are never resent; unacknowledged ones come back.
    expect(resent.filter((c) => counters.includes(c))).toEqual([]);
    expect(firmware.stats.framesResent).toBeGreaterThanOrEqual(pendingCounters.length);
  });
});
