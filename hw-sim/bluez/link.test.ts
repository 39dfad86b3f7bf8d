/**
 * Links that drop and come back, per-client sessions, and device lifecycle, driven by the real
 * node-ble 1.13 (and raw dbus-next where node-ble hides a BlueZ call) over a real dbus-daemon.
 * The last test pins a node-ble/dbus-next behaviour the gateway must design around: match rules
 * that are never removed exhaust the bus's per-connection limit.
 */
import type { EventEmitter } from 'node:events';
import dbus from 'dbus-next';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeBluez } from './service.js';
import { deviceAddress, openLab, packchainCharacteristics, packSpec, testChunk, until, type BleLab, type BleSession } from './testkit.js';

let lab: BleLab;
const raws: dbus.MessageBus[] = [];
beforeEach(async () => {
  lab = await openLab();
});
afterEach(async () => {
  for (const r of raws.splice(0)) r.disconnect();
  await lab.close();
});

async function find(session: BleSession, address: string) {
  const adapter = await session.bluetooth.defaultAdapter();
  if (!(await adapter.isDiscovering())) await adapter.startDiscovery();
  return { adapter, device: await adapter.waitDevice(address, 5000, 10) };
}

/** A plain dbus-next connection, for BlueZ calls node-ble makes impossible (it checks Discovering first). */
async function rawAdapter(): Promise<dbus.ClientInterface> {
  const bus = dbus.sessionBus({ busAddress: lab.bus.address });
  raws.push(bus);
  const obj = await bus.getProxyObject('org.bluez', lab.bluez.adapterPath);
  return obj.getInterface('org.bluez.Adapter1');
}

function call(iface: dbus.ClientInterface, method: string): Promise<unknown> {
  const fn = iface[method];
  if (fn === undefined) throw new Error(`no ${method}`);
  return fn.call(iface) as Promise<unknown>;
}

describe('link loss', () => {
  it('dropLink() makes node-ble emit disconnect; a connect while out of range fails; after comeBack() notifications flow again', async () => {
    const downs: string[] = [];
    const handle = lab.bluez.addDevice(packSpec(1, { onDisconnect: (why) => downs.push(why) }));
    const { device } = await find(lab.client(), deviceAddress(1));
    const events: unknown[] = [];
    device.on('disconnect', (e) => events.push(e));
    await device.connect();
    const { notify } = await packchainCharacteristics(device);
    const received: Buffer[] = [];
    notify.on('valuechanged', (b) => received.push(b));
    await notify.startNotifications();

    handle.dropLink();
    await until(() => events.length, 1);
    expect(events).toEqual([{ connected: false }]);
    expect(downs).toEqual(['link-loss']);
    expect(await device.isConnected()).toBe(false);
    expect(await notify.isNotifying()).toBe(false);
    expect(handle.notify(testChunk(0, 20))).toBe(false);
    await expect(device.connect()).rejects.toMatchObject({ type: 'org.bluez.Error.Failed', text: 'le-connection-abort-by-local' });

    handle.comeBack();
    await device.connect();
    // BlueZ re-enables the session on reconnect: the old characteristic object receives again
    // without a new startNotifications().
    expect(await notify.isNotifying()).toBe(true);
    expect(handle.notify(testChunk(1, 20))).toBe(true);
    await until(() => received.length, 1);
    expect(new Uint8Array(received[0]!)).toEqual(testChunk(1, 20));
    expect(handle.stats).toMatchObject({ connects: 2, linkDrops: 1, subscribes: 2, notificationsRefused: 1 });
  });

  it('lets a client that looks its characteristics up afresh after a reconnect subscribe again (StartNotify repeats are no-ops)', async () => {
    const handle = lab.bluez.addDevice(packSpec(2, { mtu: 247 }));
    const { device } = await find(lab.client(), deviceAddress(2));
    await device.connect();
    await (await packchainCharacteristics(device)).notify.startNotifications();
    handle.dropLink();
    handle.comeBack();
    await device.connect();
    const { notify } = await packchainCharacteristics(device);
    const received: Buffer[] = [];
    notify.on('valuechanged', (b) => received.push(b));
    await notify.startNotifications();
    const sent = Array.from({ length: 100 }, (_, k) => testChunk(k, 244));
    for (const c of sent) handle.notify(c);
    await until(() => received.length, 100);
    expect(received.map((b) => new Uint8Array(b))).toEqual(sent);
  });

  it('Device1.Disconnect tells the firmware "host" and the device can reconnect at once', async () => {
    const downs: string[] = [];
    const handle = lab.bluez.addDevice(packSpec(3, { onDisconnect: (why) => downs.push(why) }));
    const { device } = await find(lab.client(), deviceAddress(3));
    await device.connect();
    await device.disconnect();
    expect(downs).toEqual(['host']);
    expect(handle.advertising).toBe(true);
    await expect(device.disconnect()).rejects.toMatchObject({ type: 'org.bluez.Error.NotConnected' });
    await device.connect();
    expect(handle.stats).toMatchObject({ connects: 2, disconnects: 1, linkDrops: 0 });
  });

  it('refuses a connection beyond maxConnections until another device disconnects', async () => {
    await lab.close();
    lab = await openLab({ bluez: { maxConnections: 2 } });
    for (const n of [20, 21, 22]) lab.bluez.addDevice(packSpec(n));
    const session = lab.client();
    const [a, b, c] = [(await find(session, deviceAddress(20))).device, (await find(session, deviceAddress(21))).device, (await find(session, deviceAddress(22))).device];
    await a.connect();
    await b.connect();
    await expect(c.connect()).rejects.toMatchObject({ type: 'org.bluez.Error.Failed' });
    await a.disconnect();
    await c.connect();
    expect(lab.bluez.devices.filter((d) => d.connected).map((d) => d.address)).toEqual([deviceAddress(21), deviceAddress(22)]);
  });
});

describe('sessions', () => {
  it('keeps discovery per client, as BlueZ: node-ble refuses while another client discovers, the daemon does not', async () => {
    const a = await lab.client().bluetooth.defaultAdapter();
    await a.startDiscovery();
    const b = await lab.client().bluetooth.defaultAdapter();
    await expect(b.startDiscovery()).rejects.toThrow('Discovery already in progress'); // node-ble's own check
    const raw = await rawAdapter();
    await expect(call(raw, 'StopDiscovery')).rejects.toMatchObject({ type: 'org.bluez.Error.Failed', text: 'No discovery started' });
    await call(raw, 'StartDiscovery');
    await expect(call(raw, 'StartDiscovery')).rejects.toMatchObject({ type: 'org.bluez.Error.InProgress' });
    await a.stopDiscovery();
    expect(lab.bluez.discovering).toBe(true); // the raw client's session remains
    await call(raw, 'StopDiscovery');
    expect(await a.isDiscovering()).toBe(false);
  });

  it('ends the discovery session of a client that leaves the bus without stopping it', async () => {
    const session = lab.client();
    await (await session.bluetooth.defaultAdapter()).startDiscovery();
    expect(lab.bluez.discovering).toBe(true);
    session.destroy();
    await until(() => (lab.bluez.discovering ? 0 : 1), 1);
    await (await lab.client().bluetooth.defaultAdapter()).startDiscovery(); // a restarted gateway can scan again
  });

  it('ends the notify session of a client that leaves the bus (onUnsubscribe), but not a second client’s', async () => {
    let unsubscribed = 0;
    const handle = lab.bluez.addDevice(packSpec(4, { onUnsubscribe: () => (unsubscribed += 1) }));
    const one = lab.client();
    const two = lab.client();
    for (const s of [one, two]) {
      const { device } = await find(s, deviceAddress(4));
      await device.connect();
      await (await packchainCharacteristics(device)).notify.startNotifications();
    }
    one.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(handle.subscribed).toBe(true);
    two.destroy();
    await until(() => unsubscribed, 1);
    expect(handle.subscribed).toBe(false);
  });

  it('stopNotifications() unsubscribes; a second StopNotify fails with "No notify session started"', async () => {
    let unsubscribed = 0;
    const handle = lab.bluez.addDevice(packSpec(5, { onUnsubscribe: () => (unsubscribed += 1) }));
    const { device } = await find(lab.client(), deviceAddress(5));
    await device.connect();
    const { notify } = await packchainCharacteristics(device);
    await notify.startNotifications();
    await notify.stopNotifications();
    expect(unsubscribed).toBe(1);
    expect(handle.subscribed).toBe(false);
    await expect(notify.stopNotifications()).rejects.toMatchObject({ type: 'org.bluez.Error.Failed', text: 'No notify session started' });
  });
});

describe('device lifecycle', () => {
  it('removeDevice disconnects the device and takes it off the bus', async () => {
    const downs: string[] = [];
    lab.bluez.addDevice(packSpec(6, { onDisconnect: (why) => downs.push(why) }));
    const { adapter, device } = await find(lab.client(), deviceAddress(6));
    const events: unknown[] = [];
    device.on('disconnect', (e) => events.push(e));
    await device.connect();
    lab.bluez.removeDevice(deviceAddress(6).toLowerCase());
    await until(() => events.length, 1);
    expect(downs).toEqual(['removed']);
    expect(await adapter.devices()).toEqual([]);
    expect(lab.bluez.devices).toEqual([]);
    expect(() => {
      lab.bluez.removeDevice(deviceAddress(6));
    }).toThrow(expect.objectContaining({ code: 'BLUEZ_DEVICE_UNKNOWN' }));
  });

  it('rejects a duplicate address, a bad address, MTU or name, and any device after stop()', async () => {
    lab.bluez.addDevice(packSpec(7));
    expect(() => lab.bluez.addDevice(packSpec(7))).toThrow(expect.objectContaining({ code: 'BLUEZ_DEVICE_EXISTS' }));
    expect(() => lab.bluez.addDevice(packSpec(8, { address: 'AA:BB:CC:DD:EE' }))).toThrow(expect.objectContaining({ code: 'BLUEZ_ARGUMENT' }));
    expect(() => lab.bluez.addDevice(packSpec(8, { mtu: 22 }))).toThrow(expect.objectContaining({ code: 'BLUEZ_ARGUMENT' }));
    expect(() => lab.bluez.addDevice(packSpec(8, { mtu: 248 }))).toThrow(expect.objectContaining({ code: 'BLUEZ_ARGUMENT' }));
    expect(() => lab.bluez.addDevice(packSpec(8, { name: 'x'.repeat(249) }))).toThrow(expect.objectContaining({ code: 'BLUEZ_ARGUMENT' }));
    await lab.bluez.stop();
    expect(() => lab.bluez.addDevice(packSpec(9))).toThrow(expect.objectContaining({ code: 'BLUEZ_STOPPED' }));
  });

  it('reports BLUEZ_NAME when the bus cannot be reached', async () => {
    await expect(FakeBluez.start({ busAddress: `unix:path=${lab.dir}/no-such.sock` })).rejects.toMatchObject({ code: 'BLUEZ_NAME' });
  });

  it('refuses a second FakeBluez on the same bus (BLUEZ_NAME), and one can start after the first stops', async () => {
    await expect(FakeBluez.start({ busAddress: lab.bus.address })).rejects.toMatchObject({ code: 'BLUEZ_NAME' });
    await lab.bluez.stop();
    const next = await FakeBluez.start({ busAddress: lab.bus.address });
    await next.stop();
  });
});

describe('node-ble quirks the gateway must design around', () => {
  it('exhausts the bus match-rule limit when gatt() is called on every reconnect (dbus-next never removes rules)', async () => {
    await lab.close();
    // The real system bus allows 512 rules per connection; 40 makes the same failure quick.
    lab = await openLab({ bus: { limits: { max_match_rules_per_connection: 40 } } });
    const handle = lab.bluez.addDevice(packSpec(10));
    const session = lab.client();
    const busErrors: unknown[] = [];
    // node-ble does not expose its connection; without an 'error' listener this error crashes the process.
    (session.bluetooth as unknown as { dbus: EventEmitter }).dbus.on('error', (e) => busErrors.push(e));
    const { device } = await find(session, deviceAddress(10));
    let cycles = 0;
    while (busErrors.length === 0 && cycles < 40) {
      await device.connect();
      await (await packchainCharacteristics(device)).notify.startNotifications();
      handle.dropLink();
      handle.comeBack();
      cycles += 1;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(busErrors[0]).toMatchObject({ type: 'org.freedesktop.DBus.Error.LimitsExceeded' });
    expect(cycles).toBeLessThan(15); // four characteristics → four rules per gatt()
  });
});
