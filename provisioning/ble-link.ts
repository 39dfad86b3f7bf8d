/**
 * A pack over BLE (docs/protocol.md §6), as a PackLink (link.ts): node-ble 1.13 on our own dbus-next
 * connection to BlueZ — the system bus, or a given bus address (hw-sim's fake BlueZ runs on a private
 * bus). One device at a time, one connection per link: find the address on the adapter (a short
 * discovery only if BlueZ does not know it yet), Connect, wait for ServicesResolved, find the
 * packchain service and its notify and write characteristics (BLE_GATT), read the ATT MTU the link
 * reports, StartNotify; then chunks in are reassembled (protocol Reassembler, ticked for timeouts)
 * and messages out are written as protocol chunkMessage chunks of MTU − 3 bytes with
 * write-without-response, one message at a time. A link loss (Connected false) or a failed write
 * closes the link with DEVICE_LOST, as an unplug does on the serial line; `close()` disconnects and
 * drops the bus connection, which ends the notify session in BlueZ.
 *
 * node-ble / dbus-next pitfalls handled here (docs/hw-sim.md §4 "quirks", as gateway/transport does
 * for many devices): calls on a dead bus never settle and gatt() can wait forever (3), so every call
 * has a deadline and ServicesResolved is polled with a plain Properties.Get before gatt(); bus errors
 * arrive as `error` on a bus node-ble never listens to (6), so we listen; writeValue() defaults to a
 * reliable write (7), so chunks go as write commands; node-ble never reads the MTU (9), so it is
 * read from GattCharacteristic1.MTU (BlueZ ≥ 5.62) and 20-byte chunks are used without it. The
 * listener-per-connect quirks (4, 5) cannot bite: a link connects once and its bus dies with it.
 */
import { createRequire } from 'node:module';
import dbus from 'dbus-next';
import type NodeBle from 'node-ble';
import { BLE_GATT, BLE_LIMITS, chunkMessage, Reassembler, type Message } from '../protocol/index.js';
import { ProvisioningError } from './errors.js';
import { LinkEvents, type PackLink, type PackLinkEvents } from './link.js';

type BluetoothConstructor = new (bus: dbus.MessageBus) => NodeBle.Bluetooth;
// node-ble exports only createBluetooth(), which builds its own bus from DBUS_SYSTEM_BUS_ADDRESS;
// its Bluetooth class takes ours (node-ble is pinned at 1.13.0; the package has no exports map).
const Bluetooth = createRequire(import.meta.url)('node-ble/src/Bluetooth.js') as BluetoothConstructor;

export interface BleLinkOptions {
  /** Device address `AA:BB:CC:DD:EE:FF` (any case). */
  readonly address: string;
  /** D-Bus address of the bus BlueZ is on (`unix:path=…`); default the system bus. */
  readonly busAddress?: string | undefined;
  /** BlueZ adapter (`hci0`); default the first one BlueZ lists. */
  readonly adapter?: string | undefined;
  /** Finding, connecting to and subscribing to the pack, in all (default 15000 ms). */
  readonly connectTimeoutMs?: number | undefined;
  /** Any other D-Bus call, e.g. one chunk write (default 5000 ms). */
  readonly callTimeoutMs?: number | undefined;
}

export const DEFAULT_BLE_CONNECT_TIMEOUT_MS = 15_000;
const DEFAULT_CALL_TIMEOUT_MS = 5000;
/** How often a device not yet in BlueZ's tree, and ServicesResolved, are looked at again. */
const POLL_MS = 100;
const BLE_ADDRESS = /^[0-9A-F]{2}(:[0-9A-F]{2}){5}$/;

/** The address in upper case. Throws ProvisioningError USAGE unless it is `AA:BB:CC:DD:EE:FF`. */
export function checkBleAddress(address: string): string {
  const a = address.toUpperCase();
  if (!BLE_ADDRESS.test(a)) throw new ProvisioningError('USAGE', `provisioning: BLE address ${JSON.stringify(address)}: expected six hex bytes AA:BB:CC:DD:EE:FF`);
  return a;
}

/** The link name of a BLE pack, as the registry records it: `ble:AA:BB:CC:DD:EE:FF`. */
export function bleLinkName(address: string): string {
  return `ble:${address.toUpperCase()}`;
}

/**
 * Chunk size for an ATT_MTU as BlueZ reports it (GattCharacteristic1.MTU): MTU − 3 within 20..244
 * (§6.1). Anything else — no MTU property (BlueZ < 5.62), a value that is not an integer — is the
 * pre-exchange ATT_MTU 23, so 20 bytes, which every link carries.
 */
export function chunkSizeForMtu(mtu: unknown): number {
  if (typeof mtu !== 'number' || !Number.isInteger(mtu)) return BLE_LIMITS.minChunk;
  return Math.min(BLE_LIMITS.maxChunk, Math.max(BLE_LIMITS.minChunk, mtu - 3));
}

/** The D-Bus error name of a failed call (`org.bluez.Error.Failed`, ...), if it has one. */
function dbusName(e: unknown): string | undefined {
  const type: unknown = typeof e === 'object' && e !== null ? (e as { type?: unknown }).type : undefined;
  return typeof type === 'string' ? type : undefined;
}

function errorText(e: unknown): string {
  const name = dbusName(e);
  const msg = e instanceof Error ? e.message : String(e);
  return name !== undefined && !msg.includes(name) ? `${name}: ${msg}` : msg;
}

/** What a technician reads for a failure to reach BlueZ at all. */
function bluezHint(e: unknown): string {
  const name = dbusName(e);
  if (name === 'org.freedesktop.DBus.Error.AccessDenied') return ' (the station user may not call BlueZ: see docs/provisioning.md "BlueZ permissions")';
  if (name === 'org.freedesktop.DBus.Error.ServiceUnknown') return ' (BlueZ is not running: systemctl start bluetooth)';
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOENT' || errno === 'ECONNREFUSED') return ' (no D-Bus daemon listens there: is dbus running, is --bus-address right?)';
  if (errno === 'EACCES') return ' (the station user may not open the bus socket)';
  return '';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class BleLink implements PackLink {
  readonly name: string;
  /** Bytes per chunk this link writes: the reported ATT_MTU − 3. */
  chunkSize: number = BLE_LIMITS.minChunk;
  private readonly events = new LinkEvents();
  private readonly reassembler = new Reassembler();
  private readonly bus: dbus.MessageBus;
  private readonly bluetooth: NodeBle.Bluetooth;
  private readonly callTimeoutMs: number;
  /** Rejects when the bus connection fails: every call races it, so a dead bus fails fast. */
  private readonly broken: Promise<never>;
  private device: NodeBle.Device | undefined;
  private write: NodeBle.GattCharacteristic | undefined;
  private connected = false;
  private writes: Promise<unknown> = Promise.resolve();
  private ticker: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly address: string,
    private readonly o: BleLinkOptions,
  ) {
    this.name = bleLinkName(address);
    this.callTimeoutMs = o.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.bus = o.busAddress === undefined ? dbus.systemBus() : dbus.sessionBus({ busAddress: o.busAddress });
    this.broken = new Promise<never>((_resolve, reject) => {
      this.bus.on('error', (e: unknown) => {
        const err = e instanceof Error ? e : new Error(String(e));
        reject(err);
        this.events.close(new ProvisioningError('DEVICE_LOST', `provisioning: ${this.name}: the D-Bus connection to BlueZ failed: ${errorText(e)}`, { cause: err }));
      });
    });
    this.broken.catch(() => undefined);
    this.bluetooth = new Bluetooth(this.bus);
  }

  /**
   * Finds, connects and subscribes to the pack at `o.address`. Throws ProvisioningError USAGE for a
   * malformed address, NO_DEVICE when BlueZ cannot be reached (no bus, permission, not running), has
   * no (powered) adapter, does not see the device within the connect timeout, cannot connect, or the
   * device has no packchain GATT service — the message says which.
   */
  static async open(o: BleLinkOptions): Promise<BleLink> {
    const link = new BleLink(checkBleAddress(o.address), o);
    try {
      await link.connect(o.connectTimeoutMs ?? DEFAULT_BLE_CONNECT_TIMEOUT_MS);
    } catch (e) {
      await link.close();
      if (e instanceof ProvisioningError) throw e;
      throw new ProvisioningError('NO_DEVICE', `provisioning: ${link.name}: ${errorText(e)}`, { cause: e });
    }
    return link;
  }

  attach(events: PackLinkEvents): void {
    this.events.attach(events);
  }

  /** The message's chunks, in order, after any message still being written. Rejects DEVICE_LOST (the link then closes). */
  send(msg: Message): Promise<void> {
    const run = async (): Promise<void> => {
      for (const chunk of chunkMessage(msg, this.chunkSize)) {
        const lost = this.events.lost;
        const w = this.write;
        if (lost) throw lost;
        if (!w) throw new Error('provisioning: invariant violated: BLE send before the link was open');
        try {
          await this.timed(w.writeValueWithoutResponse(Buffer.from(chunk)), 'WriteValue', this.callTimeoutMs);
        } catch (e) {
          throw this.events.fail(new ProvisioningError('DEVICE_LOST', `provisioning: ${this.name}: GATT write failed: ${errorText(e)}`, { cause: e }));
        }
      }
    };
    const p = this.writes.then(run, run);
    this.writes = p.catch(() => undefined);
    return p;
  }

  /** Disconnects the pack and closes the bus connection. Idempotent; never throws. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.events.close(new ProvisioningError('DEVICE_LOST', `provisioning: ${this.name}: session closed`));
      clearInterval(this.ticker);
      const device = this.device;
      if (device && this.connected) await this.timed(device.disconnect(), 'Disconnect', 2000).catch(() => undefined);
      try {
        this.bus.disconnect();
      } catch {
        // an already broken stream: nothing left to close
      }
    })();
    return this.closing;
  }

  private async connect(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const left = (): number => Math.max(1, deadline - performance.now());
    let adapter: NodeBle.Adapter;
    let adapterName: string;
    try {
      const names = await this.timed(this.bluetooth.adapters(), 'listing adapters', left());
      const name = this.o.adapter ?? names[0];
      if (name === undefined || !names.includes(name)) {
        const have = names.length === 0 ? 'none' : names.join(', ');
        throw new ProvisioningError('NO_DEVICE', `provisioning: ${this.name}: ${name === undefined ? 'BlueZ lists no Bluetooth adapter' : `no adapter ${name}; BlueZ has ${have}`}`);
      }
      adapterName = name;
      adapter = await this.timed(this.bluetooth.getAdapter(name), `opening adapter ${name}`, left());
      if (!(await this.timed(adapter.isPowered(), 'reading Powered', left()))) {
        throw new ProvisioningError('NO_DEVICE', `provisioning: ${this.name}: Bluetooth adapter ${name} is powered off (bluetoothctl power on)`);
      }
    } catch (e) {
      if (e instanceof ProvisioningError) throw e;
      const where = this.o.busAddress === undefined ? 'the system bus' : this.o.busAddress;
      throw new ProvisioningError('NO_DEVICE', `provisioning: ${this.name}: cannot reach BlueZ on ${where}: ${errorText(e)}${bluezHint(e)}`, { cause: e });
    }
    await this.find(adapter, deadline, left);
    const device = await this.timed(adapter.getDevice(this.address), 'finding the device', left());
    this.device = device;
    device.on('disconnect', () => {
      this.connected = false;
      this.events.close(new ProvisioningError('DEVICE_LOST', `provisioning: ${this.name}: the BLE link was lost (pack out of range, powered off or reset?) during the attempt`));
    });
    try {
      await this.timed(device.connect(), 'Connect', left());
    } catch (e) {
      if (dbusName(e) !== 'org.bluez.Error.AlreadyConnected') {
        throw new ProvisioningError('NO_DEVICE', `provisioning: ${this.name}: cannot connect: ${errorText(e)} (expected a pack in range, advertising)`, { cause: e });
      }
    }
    this.connected = true;
    const path = `/org/bluez/${adapterName}/dev_${this.address.replace(/:/g, '_')}`;
    // gatt() would wait forever if services resolved between its read and its subscription (quirk 3).
    while ((await this.property(path, 'org.bluez.Device1', 'ServicesResolved', left())) !== true) {
      if (performance.now() > deadline) throw new ProvisioningError('NO_DEVICE', `provisioning: ${this.name}: GATT services not resolved within ${timeoutMs} ms`);
      await sleep(POLL_MS);
    }
    const gatt = await this.timed(device.gatt(), 'GATT lookup', left());
    let notify: NodeBle.GattCharacteristic;
    let write: NodeBle.GattCharacteristic;
    try {
      const service = await gatt.getPrimaryService(BLE_GATT.service);
      notify = await service.getCharacteristic(BLE_GATT.notify);
      write = await service.getCharacteristic(BLE_GATT.write);
    } catch (e) {
      throw new ProvisioningError('NO_DEVICE', `provisioning: ${this.name}: not a packchain pack: ${errorText(e)} (expected GATT service ${BLE_GATT.service} with characteristics …0002 and …0003)`, { cause: e });
    }
    const writePath = (write as unknown as { helper?: { object?: unknown } }).helper?.object;
    const mtu = typeof writePath === 'string' ? await this.property(writePath, 'org.bluez.GattCharacteristic1', 'MTU', left()).catch(() => undefined) : undefined;
    this.chunkSize = chunkSizeForMtu(mtu);
    this.write = write;
    notify.on('valuechanged', (value: Buffer) => {
      const chunk = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      this.events.received(chunk.length, this.reassembler.push(chunk, performance.now()));
    });
    this.ticker = setInterval(() => {
      const evs = this.reassembler.tick(performance.now());
      if (evs.length > 0) this.events.received(0, evs);
    }, BLE_LIMITS.defaultTimeoutMs / 4);
    await this.timed(notify.startNotifications(), 'StartNotify', left());
  }

  /** Waits until BlueZ lists the device, running a discovery of our own if it does not know it yet. */
  private async find(adapter: NodeBle.Adapter, deadline: number, left: () => number): Promise<void> {
    // Each look gets a whole call's time: the deadline is checked between looks, so a look started
    // just before it cannot turn into a misleading "timed out after 1 ms".
    const listed = async (): Promise<boolean> => (await this.timed(adapter.devices(), 'listing devices', this.callTimeoutMs)).some((a) => a.toUpperCase() === this.address);
    if (await listed()) return;
    let started = false;
    let why = '';
    // node-ble's startDiscovery throws while anyone's discovery runs (quirk 1): ours is then not needed.
    if (!(await this.timed(adapter.isDiscovering(), 'reading Discovering', left()))) {
      try {
        await this.timed(adapter.startDiscovery(), 'StartDiscovery', left());
        started = true;
      } catch (e) {
        why = `; StartDiscovery failed: ${errorText(e)}`;
      }
    }
    try {
      while (!(await listed())) {
        if (performance.now() + 1 >= deadline) {
          throw new ProvisioningError('NO_DEVICE', `provisioning: ${this.name}: no BLE device with this address seen within ${this.o.connectTimeoutMs ?? DEFAULT_BLE_CONNECT_TIMEOUT_MS} ms${why} (expected a pack in range, advertising)`);
        }
        await sleep(Math.min(POLL_MS, left()));
      }
    } finally {
      if (started) await this.timed(adapter.stopDiscovery(), 'StopDiscovery', 2000).catch(() => undefined);
    }
  }

  /** Properties.Get without a proxy object (no match rule, no waiting on signals). Rejects as the call. */
  private async property(path: string, iface: string, name: string, ms: number): Promise<unknown> {
    const msg = new dbus.Message({ destination: 'org.bluez', path, interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: [iface, name] });
    const reply = await this.timed(this.bus.call(msg), `reading ${name}`, ms);
    const v: unknown = reply?.body[0];
    return v instanceof dbus.Variant ? (v.value as unknown) : v;
  }

  /** `p` with a deadline, failing early when the bus connection fails. Rejects Error "ble: <what> timed out after N ms". */
  private timed<T>(p: Promise<T>, what: string, ms: number): Promise<T> {
    p.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`ble: ${what} timed out after ${Math.round(ms)} ms`));
      }, ms);
    });
    return Promise.race([p, deadline, this.broken]).finally(() => {
      clearTimeout(timer);
    });
  }
}
