/**
 * Test support for the fake BlueZ: a "lab" of one private dbus-daemon in a fresh mkdtemp directory,
 * a FakeBluez on it, and real node-ble sessions pointed at it. node-ble reads
 * DBUS_SYSTEM_BUS_ADDRESS once, inside createBluetooth(), so `client()` sets it only around that
 * call and restores it: no test leaks the variable into another. `close()` tears everything down in
 * the order that cannot leave a child process behind (clients, service, daemon, directory) and is
 * safe to call from afterEach/afterAll even when setup failed half way.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import NodeBle from 'node-ble';
import { BLE_GATT, encodeDeviceInfo } from '../../protocol/index.js';
import { startPrivateBus, type PrivateBus, type PrivateBusOptions } from './bus.js';
import type { BleDeviceSpec } from './handle.js';
import { FakeBluez, type FakeBluezOptions } from './service.js';

export type BleSession = ReturnType<typeof NodeBle.createBluetooth>;
export type NodeBleDevice = NodeBle.Device;
export type NodeBleCharacteristic = NodeBle.GattCharacteristic;

export interface BleLab {
  readonly dir: string;
  readonly bus: PrivateBus;
  readonly bluez: FakeBluez;
  /** A new node-ble session (its own bus connection) on the lab's bus. */
  client(): BleSession;
  close(): Promise<void>;
}

export interface LabOptions {
  bus?: Omit<PrivateBusOptions, 'dir'>;
  bluez?: Omit<FakeBluezOptions, 'busAddress'>;
}

export async function openLab(options: LabOptions = {}): Promise<BleLab> {
  const dir = await mkdtemp(join(tmpdir(), 'hwsim-ble-'));
  const sessions: BleSession[] = [];
  let bus: PrivateBus | null = null;
  let bluez: FakeBluez | null = null;
  const close = async () => {
    for (const s of sessions.splice(0)) s.destroy();
    await bluez?.stop();
    await bus?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    bus = await startPrivateBus({ ...options.bus, dir });
    bluez = await FakeBluez.start({ ...options.bluez, busAddress: bus.address });
  } catch (err) {
    await close();
    throw err;
  }
  const address = bus.address;
  return {
    dir,
    bus,
    bluez,
    client: () => {
      const previous = process.env.DBUS_SYSTEM_BUS_ADDRESS;
      process.env.DBUS_SYSTEM_BUS_ADDRESS = address;
      try {
        const session = NodeBle.createBluetooth();
        sessions.push(session);
        return session;
      } finally {
        if (previous === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
        else process.env.DBUS_SYSTEM_BUS_ADDRESS = previous;
      }
    },
    close,
  };
}

/** Address of simulated device number n (0..65535): AA:BB:CC:00:hh:ll. */
export function deviceAddress(n: number): string {
  const hex = (b: number) => b.toString(16).padStart(2, '0').toUpperCase();
  return `AA:BB:CC:00:${hex((n >> 8) & 0xff)}:${hex(n & 0xff)}`;
}

/** A device spec with real device info (protocol encodeDeviceInfo) for pack number n. */
export function packSpec(n: number, extra: Partial<BleDeviceSpec> = {}): BleDeviceSpec {
  const serial = `PACK-${String(n).padStart(4, '0')}`;
  return {
    address: deviceAddress(n),
    name: serial,
    deviceInfo: encodeDeviceInfo({ serial, model: 'PC-48V-100Ah', firmware: '1.4.2', alg: -8 }),
    ...extra,
  };
}

/** Deterministic chunk k of `size` bytes: a 16-bit index then a pattern, so order and bytes are both checked. */
export function testChunk(k: number, size: number): Uint8Array {
  const c = new Uint8Array(size);
  for (let i = 0; i < size; i++) c[i] = (k * 31 + i * 7) & 0xff;
  c[0] = (k >> 8) & 0xff;
  if (size > 1) c[1] = k & 0xff;
  return c;
}

/** The packchain characteristics of a device, reached the way the gateway will: connect, gatt(), lookups. */
export async function packchainCharacteristics(device: NodeBleDevice): Promise<{
  notify: NodeBleCharacteristic;
  write: NodeBleCharacteristic;
  info: NodeBleCharacteristic;
}> {
  const gatt = await device.gatt();
  const service = await gatt.getPrimaryService(BLE_GATT.service);
  return {
    notify: await service.getCharacteristic(BLE_GATT.notify),
    write: await service.getCharacteristic(BLE_GATT.write),
    info: await service.getCharacteristic(BLE_GATT.info),
  };
}

/** Resolves when `count()` reaches `n`, polling every 5 ms; rejects after `timeoutMs` with what it saw. */
export async function until(count: () => number, n: number, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (count() < n) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms at ${count()} of ${n}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
