/**
 * Fifty simulated BMUs on one bus, each with its own real node-ble client connected and
 * subscribed at the same time (issue 4: 50 BLE devices in a fleet), every notification checked
 * for order and bytes, and the aggregate notification rate measured and printed. Ends by checking
 * that shutting the lab down leaves no dbus-daemon behind.
 */
import { execFile } from 'node:child_process';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { deviceAddress, openLab, packchainCharacteristics, packSpec, testChunk, until, type BleLab } from './testkit.js';

const DEVICES = 50;
const PER_DEVICE = 400;

let lab: BleLab;
beforeEach(async () => {
  lab = await openLab();
});
afterEach(async () => {
  await lab.close();
});

function pgrep(pattern: string): Promise<string> {
  return new Promise((r) => {
    execFile('pgrep', ['-f', '--', pattern], { encoding: 'utf8' }, (_err, stdout) => {
      r(stdout.trim());
    });
  });
}

it(`serves ${DEVICES} devices to ${DEVICES} node-ble clients at once, every notification in order, and stops leaving no daemon`, async () => {
  // Alternate the two ends of the MTU range: 20- and 244-byte chunks.
  const handles = Array.from({ length: DEVICES }, (_, i) => lab.bluez.addDevice(packSpec(i, { mtu: i % 2 === 0 ? 23 : 247 })));
  const scanner = await lab.client().bluetooth.defaultAdapter();
  await scanner.startDiscovery();

  const received: Buffer[][] = handles.map(() => []);
  await Promise.all(
    handles.map(async (_, i) => {
      const adapter = await lab.client().bluetooth.defaultAdapter();
      const device = await adapter.waitDevice(deviceAddress(i), 10_000, 10);
      await device.connect();
      const { notify } = await packchainCharacteristics(device);
      notify.on('valuechanged', (b) => received[i]?.push(b));
      await notify.startNotifications();
    }),
  );
  expect(handles.every((h) => h.subscribed)).toBe(true);

  const total = DEVICES * PER_DEVICE;
  const count = () => received.reduce((n, r) => n + r.length, 0);
  const start = performance.now();
  // One chunk per device per round, yielding between rounds as 50 firmware tasks sharing a loop would.
  for (let k = 0; k < PER_DEVICE; k++) {
    for (const h of handles) expect(h.notify(testChunk(k, h.maxChunk))).toBe(true);
    await yieldToLoop();
  }
  await until(count, total, 60_000);
  const seconds = (performance.now() - start) / 1000;
  const rate = Math.round(total / seconds);
  console.log(`fake BlueZ fleet: ${DEVICES} devices × ${PER_DEVICE} notifications to ${DEVICES} node-ble clients in ${seconds.toFixed(2)} s = ${rate} notifications/s`);

  handles.forEach((h, i) => {
    const sent = Array.from({ length: PER_DEVICE }, (_, k) => testChunk(k, h.maxChunk));
    expect((received[i] ?? []).map((b) => new Uint8Array(b))).toEqual(sent);
    expect(h.stats.notificationsSent).toBe(PER_DEVICE);
  });
  expect(rate).toBeGreaterThan(500); // far below what a 2-core box does; catches a pathological slowdown only

  const configPath = lab.bus.configPath;
  expect(await pgrep(configPath)).not.toBe('');
  await lab.close();
  expect(await pgrep(configPath)).toBe('');
}, 120_000);

it('measures one link: 5 000 notifications of 244 bytes to one node-ble client', async () => {
  const handle = lab.bluez.addDevice(packSpec(1, { mtu: 247 }));
  const adapter = await lab.client().bluetooth.defaultAdapter();
  await adapter.startDiscovery();
  const device = await adapter.waitDevice(deviceAddress(1), 5000, 10);
  await device.connect();
  const { notify } = await packchainCharacteristics(device);
  let n = 0;
  notify.on('valuechanged', () => (n += 1));
  await notify.startNotifications();
  const start = performance.now();
  for (let k = 0; k < 5000; k++) {
    handle.notify(testChunk(k, 244));
    if (k % 50 === 49) await yieldToLoop();
  }
  await until(() => n, 5000, 60_000);
  const seconds = (performance.now() - start) / 1000;
  console.log(`fake BlueZ single link: 5000 × 244-byte notifications in ${seconds.toFixed(2)} s = ${Math.round(5000 / seconds)} notifications/s`);
  expect(n).toBe(5000);
}, 60_000);
