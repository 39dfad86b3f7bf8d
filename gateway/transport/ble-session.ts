/**
 * One node-ble session: our own dbus-next connection to BlueZ (the system bus, or a given address
 * for tests — no process-wide DBUS_SYSTEM_BUS_ADDRESS), node-ble's Bluetooth on top of it, and the
 * defences against the node-ble 1.13 / dbus-next 0.10 pitfalls of docs/hw-sim.md §4 "quirks":
 * - dbus-next emits AddMatch failures (LimitsExceeded after ~128 gatt() calls on one connection,
 *   quirk 6) and stream errors as `error` on a bus node-ble never listens to: an uncaught exception.
 *   The session listens, records the first failure and the transport recycles it (a new connection).
 * - every AddMatch the connection sends is counted (dbus-next never removes one), so the transport
 *   can recycle before the bus's per-connection limit (512 on the system bus) is reached.
 * - calls on a dead bus never settle and `gatt()` can wait forever (quirk 3): `timed` bounds every
 *   call, and `getProperty` reads properties with a plain Properties.Get, which adds no match rule.
 * - a Device's and a characteristic's `connect()` / `startNotifications()` add one more internal
 *   listener per call (quirks 4, 5): `clearInternalListeners` drops them first.
 * node-ble exports only createBluetooth(), which builds its own bus; its Bluetooth class is loaded
 * from node-ble/src/Bluetooth.js (node-ble is pinned at 1.13.0; the package has no exports map).
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import dbus from 'dbus-next';
import type NodeBle from 'node-ble';

type BluetoothConstructor = new (bus: dbus.MessageBus) => NodeBle.Bluetooth;
const requireCjs = createRequire(import.meta.url);
const Bluetooth = requireCjs('node-ble/src/Bluetooth.js') as BluetoothConstructor;

export type BleAdapter = NodeBle.Adapter;
export type BleDevice = NodeBle.Device;
export type BleCharacteristic = NodeBle.GattCharacteristic;

/** The D-Bus error name of a failed call (`org.bluez.Error.Failed`, ...), if it has one. */
export function dbusErrorName(e: unknown): string | undefined {
  const type: unknown = typeof e === 'object' && e !== null ? (e as { type?: unknown }).type : undefined;
  return typeof type === 'string' ? type : undefined;
}

/** A one-line description of an error for status and close reasons. */
export function errorText(e: unknown): string {
  const name = dbusErrorName(e);
  const msg = e instanceof Error ? e.message : String(e);
  return name !== undefined && !msg.includes(name) ? `${name}: ${msg}` : msg;
}

/** Drops node-ble's internal PropertiesChanged re-emitters of a Device or characteristic (quirks 4, 5). */
export function clearInternalListeners(obj: BleDevice | BleCharacteristic): void {
  const helper: unknown = (obj as unknown as { helper?: unknown }).helper;
  if (helper instanceof EventEmitter) helper.removeAllListeners('PropertiesChanged');
}

export interface BleSessionOptions {
  /** D-Bus address (tests: a private bus); default the system bus. */
  readonly busAddress?: string | undefined;
  /** Adapter name (`hci0`); default the first one BlueZ lists. */
  readonly adapter?: string | undefined;
  /** Deadline of a D-Bus call unless given per call. */
  readonly callTimeoutMs: number;
  /** Called once, with the first failure (not for retire()). */
  readonly onFailure: (reason: string) => void;
}

export class BleSession {
  readonly bus: dbus.MessageBus;
  readonly bluetooth: NodeBle.Bluetooth;
  readonly createdAt = performance.now();
  /** Match rules this connection holds (AddMatch sent minus RemoveMatch sent). */
  matchRules = 0;
  /** Why this session must be replaced, once something broke it. */
  failure: string | undefined;
  /** Whether this session's client started a discovery session (it ends when the client leaves the bus). */
  startedDiscovery = false;
  private adapterName: string | undefined;
  private adapterObj: BleAdapter | undefined;
  private destroyed = false;

  constructor(private readonly options: BleSessionOptions) {
    this.bus = options.busAddress === undefined ? dbus.systemBus() : dbus.sessionBus({ busAddress: options.busAddress });
    this.bus.on('error', (e: unknown) => {
      this.fail(`D-Bus connection: ${errorText(e)}`);
    });
    const call = this.bus.call.bind(this.bus);
    this.bus.call = (msg: dbus.Message): Promise<dbus.Message | null> => {
      if (msg.destination === 'org.freedesktop.DBus' && msg.member === 'AddMatch') this.matchRules += 1;
      if (msg.destination === 'org.freedesktop.DBus' && msg.member === 'RemoveMatch') this.matchRules -= 1;
      return call(msg);
    };
    this.bluetooth = new Bluetooth(this.bus);
  }

  /** Marks the session broken (first reason wins) and tells the transport. */
  fail(reason: string): void {
    if (this.failure !== undefined || this.destroyed) return;
    this.failure = reason;
    this.options.onFailure(reason);
  }

  /** Marks the session for replacement without it being an error (e.g. its match-rule budget is used up). */
  retire(reason: string): void {
    this.failure ??= reason;
  }

  /**
   * `p` with a deadline: rejects with Error "ble: <what> timed out after N ms" when it does not
   * settle in time. A late rejection of `p` is swallowed (it has nobody left to tell).
   */
  timed<T>(p: Promise<T>, what: string, ms = this.options.callTimeoutMs): Promise<T> {
    p.catch(() => undefined);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`ble: ${what} timed out after ${ms} ms`));
      }, ms);
      p.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  /** The adapter (cached). Rejects when BlueZ is not there, has no adapters or not the named one. */
  async adapter(): Promise<BleAdapter> {
    if (this.adapterObj) return this.adapterObj;
    const names = await this.timed(this.bluetooth.adapters(), 'listing adapters');
    const name = this.options.adapter ?? names[0];
    if (name === undefined) throw new Error('ble: BlueZ lists no Bluetooth adapter');
    if (!names.includes(name)) throw new Error(`ble: adapter ${name} not found; BlueZ has ${names.join(', ') || 'none'}`);
    this.adapterObj = await this.timed(this.bluetooth.getAdapter(name), `opening adapter ${name}`);
    this.adapterName = name;
    return this.adapterObj;
  }

  /** The adapter's name once `adapter()` has resolved. */
  get adapterId(): string | undefined {
    return this.adapterName;
  }

  /** BlueZ's object path of a device on this session's adapter. */
  devicePath(address: string): string {
    return `/org/bluez/${this.adapterName ?? 'hci0'}/dev_${address.replace(/:/g, '_')}`;
  }

  /** Properties.Get without a proxy object, so no signal match rule is added. Rejects as the call. */
  async getProperty(path: string, iface: string, name: string, ms = this.options.callTimeoutMs): Promise<unknown> {
    const msg = new dbus.Message({ destination: 'org.bluez', path, interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: [iface, name] });
    const reply = await this.timed(this.bus.call(msg), `reading ${name} of ${path}`, ms);
    const v: unknown = reply?.body[0];
    return v instanceof dbus.Variant ? (v.value as unknown) : v;
  }

  /** Closes the connection. BlueZ ends this client's discovery and notify sessions. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    try {
      this.bus.disconnect();
    } catch {
      // an already broken stream: nothing left to close
    }
  }
}
