/**
 * The fake BlueZ driven by the real node-ble 1.13 over a real dbus-daemon: discovery, the device
 * and GATT tree, reads, writes and notifications at both ends of the MTU range. Link loss,
 * sessions and removal are in link.test.ts; fifty devices at once in fleet.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BLE_GATT, decodeDeviceInfo, encodeDeviceInfo } from '../../protocol/index.js';
import { GENERIC_ATTRIBUTE_UUID } from './gatt.js';
import { deviceAddress, openLab, packchainCharacteristics, packSpec, testChunk, until, type BleLab, type BleSession } from './testkit.js';

let lab: BleLab;
beforeEach(async () => {
  lab = await openLab();
});
afterEach(async () => {
  await lab.close();
});

/** defaultAdapter → startDiscovery → waitDevice, polling every 10 ms instead of node-ble's 1 s. */
async function find(session: BleSession, address: string) {
  const adapter = await session.bluetooth.defaultAdapter();
  await adapter.startDiscovery();
  const device = await adapter.waitDevice(address, 5000, 10);
  return { adapter, device };
}

describe('adapter', () => {
  it('lists hci0 under /org/bluez and shows it powered and idle through node-ble', async () => {
    const { bluetooth } = lab.client();
    expect(await bluetooth.adapters()).toEqual(['hci0']);
    const adapter = await bluetooth.defaultAdapter();
    expect(await adapter.isPowered()).toBe(true);
    expect(await adapter.isDiscovering()).toBe(false);
    expect(await adapter.getAddress()).toBe('00:00:5E:00:53:01');
    expect(await adapter.getAddressType()).toBe('public');
    expect(await adapter.toString()).toBe('hw-sim [00:00:5E:00:53:01]');
  });
});

describe('discovery', () => {
  it('shows a device only once a discovery session has seen it, then waitDevice finds it', async () => {
    lab.bluez.addDevice(packSpec(1, { rssi: -71, txPower: 4 }));
    const adapter = await lab.client().bluetooth.defaultAdapter();
    expect(await adapter.devices()).toEqual([]);
    await adapter.startDiscovery();
    expect(await adapter.isDiscovering()).toBe(true);
    expect(await adapter.devices()).toEqual([deviceAddress(1)]);
    const device = await adapter.waitDevice(deviceAddress(1), 5000, 10);
    expect(await device.getName()).toBe('PACK-0001');
    expect(await device.getAlias()).toBe('PACK-0001');
    expect(await device.getAddress()).toBe(deviceAddress(1));
    expect(await device.getAddressType()).toBe('random');
    expect(await device.getRSSI()).toBe(-71);
    // node-ble's index.d.ts omits getTXPower, which Device.js has.
    expect(await (device as unknown as { getTXPower(): Promise<number> }).getTXPower()).toBe(4);
    expect(await device.isConnected()).toBe(false);
    expect(await device.isPaired()).toBe(false);
    expect(await device.getManufacturerData()).toEqual({});
    expect(await device.getServiceData()).toEqual({});
  });

  it('keeps discovered devices on the bus after discovery stops (BlueZ device cache)', async () => {
    lab.bluez.addDevice(packSpec(2));
    const { adapter } = await find(lab.client(), deviceAddress(2));
    await adapter.stopDiscovery();
    expect(await adapter.isDiscovering()).toBe(false);
    expect(await adapter.devices()).toEqual([deviceAddress(2)]);
  });

  it('exports a device added while discovery runs, without a new scan', async () => {
    const adapter = await lab.client().bluetooth.defaultAdapter();
    await adapter.startDiscovery();
    expect(await adapter.devices()).toEqual([]);
    lab.bluez.addDevice(packSpec(3));
    expect(await adapter.devices()).toEqual([deviceAddress(3)]);
  });
});

describe('GATT', () => {
  it('resolves services on connect: Generic Attribute and the packchain service with its three characteristics', async () => {
    const handle = lab.bluez.addDevice(packSpec(4));
    const { device } = await find(lab.client(), deviceAddress(4));
    const events: unknown[] = [];
    device.on('connect', (e) => events.push(e));
    await device.connect();
    expect(handle.connected).toBe(true);
    expect(await device.isConnected()).toBe(true);
    expect(events).toEqual([{ connected: true }]);
    const gatt = await device.gatt();
    expect((await gatt.services()).sort()).toEqual([GENERIC_ATTRIBUTE_UUID, BLE_GATT.service].sort());
    const service = await gatt.getPrimaryService(BLE_GATT.service);
    expect(await service.isPrimary()).toBe(true);
    expect((await service.characteristics()).sort()).toEqual([BLE_GATT.notify, BLE_GATT.write, BLE_GATT.info].sort());
    const { notify, write, info } = await packchainCharacteristics(device);
    expect(await notify.getFlags()).toEqual(['notify']);
    expect(await write.getFlags()).toEqual(['write-without-response', 'write']);
    expect(await info.getFlags()).toEqual(['read']);
    expect(await notify.isNotifying()).toBe(false);
  });

  it('reads the device info characteristic as protocol encodeDeviceInfo bytes, and a new value after setDeviceInfo', async () => {
    const spec = packSpec(5);
    const handle = lab.bluez.addDevice(spec);
    const { device } = await find(lab.client(), deviceAddress(5));
    await device.connect();
    const { info } = await packchainCharacteristics(device);
    const value = await info.readValue();
    expect(new Uint8Array(value)).toEqual(spec.deviceInfo);
    expect(decodeDeviceInfo(value).serial).toBe('PACK-0005');
    handle.setDeviceInfo(encodeDeviceInfo({ serial: 'PACK-0005', model: 'PC-48V-100Ah', firmware: '1.5.0', alg: -7 }));
    expect(decodeDeviceInfo(await info.readValue())).toMatchObject({ firmware: '1.5.0', alg: -7 });
    expect(handle.stats.reads).toBe(2);
  });

  it('refuses to read the notify characteristic and to write the info characteristic (NotPermitted)', async () => {
    lab.bluez.addDevice(packSpec(6));
    const { device } = await find(lab.client(), deviceAddress(6));
    await device.connect();
    const { notify, info } = await packchainCharacteristics(device);
    await expect(notify.readValue()).rejects.toMatchObject({ type: 'org.bluez.Error.NotPermitted', text: 'Read not permitted' });
    await expect(info.writeValueWithResponse(Buffer.of(1))).rejects.toMatchObject({ type: 'org.bluez.Error.NotPermitted' });
  });
});

describe('notifications', () => {
  for (const mtu of [23, 247]) {
    it(`delivers 1 000 notifications of ${mtu - 3} bytes as valuechanged, in order and byte for byte (ATT_MTU ${mtu})`, async () => {
      const handle = lab.bluez.addDevice(packSpec(7, { mtu }));
      const { device } = await find(lab.client(), deviceAddress(7));
      await device.connect();
      const { notify } = await packchainCharacteristics(device);
      const received: Buffer[] = [];
      notify.on('valuechanged', (b) => received.push(b));
      await notify.startNotifications();
      expect(handle.subscribed).toBe(true);
      const sent = Array.from({ length: 1000 }, (_, k) => testChunk(k, handle.maxChunk));
      for (const chunk of sent) expect(handle.notify(chunk)).toBe(true);
      await until(() => received.length, 1000);
      expect(received.map((b) => new Uint8Array(b))).toEqual(sent);
      expect(handle.stats).toMatchObject({ notificationsSent: 1000, bytesNotified: 1000 * (mtu - 3), notificationsRefused: 0 });
    });
  }

  it('delivers a notification the firmware sends from onSubscribe (the hello after the CCCD write)', async () => {
    const hello = testChunk(42, 20);
    const handle = lab.bluez.addDevice(
      packSpec(8, {
        onSubscribe: () => {
          handle.notify(hello);
        },
      }),
    );
    const { device } = await find(lab.client(), deviceAddress(8));
    await device.connect();
    const { notify } = await packchainCharacteristics(device);
    const received: Buffer[] = [];
    notify.on('valuechanged', (b) => received.push(b));
    await notify.startNotifications();
    await until(() => received.length, 1);
    expect(new Uint8Array(received[0]!)).toEqual(hello);
  });

  it('notify() returns false and counts a refusal while nobody is subscribed', async () => {
    const handle = lab.bluez.addDevice(packSpec(9));
    expect(handle.notify(Uint8Array.of(1))).toBe(false);
    const { device } = await find(lab.client(), deviceAddress(9));
    await device.connect();
    expect(handle.notify(Uint8Array.of(2))).toBe(false);
    const { notify } = await packchainCharacteristics(device);
    await notify.startNotifications();
    expect(handle.notify(Uint8Array.of(3))).toBe(true);
    expect(handle.stats).toMatchObject({ notificationsSent: 1, notificationsRefused: 2, subscribes: 1 });
  });

  it('notify() throws BLUEZ_CHUNK for more than mtu − 3 bytes (a firmware bug), whatever the link state', () => {
    const handle = lab.bluez.addDevice(packSpec(10, { mtu: 100 }));
    expect(handle.maxChunk).toBe(97);
    expect(() => handle.notify(new Uint8Array(98))).toThrow(expect.objectContaining({ code: 'BLUEZ_CHUNK' }));
  });
});

describe('writes', () => {
  it('delivers one chunk per write to onWrite for writeValue (reliable), with response and without response', async () => {
    const writes: Uint8Array[] = [];
    const handle = lab.bluez.addDevice(packSpec(11, { onWrite: (c) => writes.push(c) }));
    const { device } = await find(lab.client(), deviceAddress(11));
    await device.connect();
    const { write } = await packchainCharacteristics(device);
    await write.writeValue(Buffer.from(testChunk(1, 20)));
    await write.writeValueWithResponse(Buffer.from(testChunk(2, 5)));
    await write.writeValueWithoutResponse(Buffer.from(testChunk(3, 1)));
    expect(writes).toEqual([testChunk(1, 20), testChunk(2, 5), testChunk(3, 1)]);
    expect(handle.stats).toMatchObject({ writesReceived: 3, bytesWritten: 26, writesRejected: 0 });
  });

  it('rejects a write longer than mtu − 3 as BlueZ would: Failed for a command, InvalidArguments for a request', async () => {
    const writes: Uint8Array[] = [];
    const handle = lab.bluez.addDevice(packSpec(12, { mtu: 30, onWrite: (c) => writes.push(c) }));
    const { device } = await find(lab.client(), deviceAddress(12));
    await device.connect();
    const { write } = await packchainCharacteristics(device);
    await write.writeValueWithoutResponse(Buffer.alloc(27));
    await expect(write.writeValueWithoutResponse(Buffer.alloc(28))).rejects.toMatchObject({ type: 'org.bluez.Error.Failed', text: 'Failed to initiate write' });
    await expect(write.writeValueWithResponse(Buffer.alloc(28))).rejects.toMatchObject({ type: 'org.bluez.Error.InvalidArguments', text: 'Invalid Length' });
    await expect(write.writeValue(Buffer.alloc(28))).rejects.toMatchObject({ type: 'org.bluez.Error.InvalidArguments' });
    await expect(write.writeValue(Buffer.alloc(4), 2)).rejects.toMatchObject({ type: 'org.bluez.Error.InvalidArguments', text: 'Invalid offset' });
    expect(writes).toHaveLength(1);
    expect(handle.stats).toMatchObject({ writesReceived: 1, writesRejected: 4 });
  });

  it('reports a throwing onWrite to onCallbackError while the client still gets its reply', async () => {
    await lab.close();
    const failures: unknown[] = [];
    lab = await openLab({ bluez: { onCallbackError: (e) => failures.push(e) } });
    lab.bluez.addDevice(
      packSpec(13, {
        onWrite: () => {
          throw new Error('firmware bug');
        },
      }),
    );
    const { device } = await find(lab.client(), deviceAddress(13));
    await device.connect();
    const { write } = await packchainCharacteristics(device);
    await write.writeValueWithoutResponse(Buffer.of(1));
    expect(failures).toEqual([new Error('firmware bug')]);
  });
});
