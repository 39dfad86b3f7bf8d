/**
 * One simulated BLE peripheral as BlueZ shows it: the org.bluez.Device1 object
 * `/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF` (doc/device-api.txt) and its GATT tree (gatt.ts), driven
 * from the firmware side through the BleDeviceHandle contract (handle.ts). State changes are
 * emitted in BlueZ's order — Connected, ServicesResolved, then Notifying for resumed sessions on
 * connect; Notifying, ServicesResolved, Connected on disconnect — so node-ble's gatt() (which waits
 * for ServicesResolved) and its 'disconnect' event (on Connected=false) see what they would see
 * against a real adapter. GATT objects stay exported after a disconnect, as BlueZ's attribute
 * cache (main.conf Cache=always, the default) keeps them.
 */
import { BLE_GATT } from '../../protocol/index.js';
import { SimError } from '../errors.js';
import { bluezError, Interface, propertiesChanged, ro, type Variant } from './dbus.js';
import { packchainGatt, type PackchainGatt } from './gatt.js';
import type { BleDeviceHandle, BleDeviceSpec, BleDeviceStats, DeviceHost, DisconnectReason } from './handle.js';

const ADDRESS = /^[0-9A-F]{2}(:[0-9A-F]{2}){5}$/;
const MAX_NAME_BYTES = 248;
const MAX_ATTRIBUTE = 512;

function check(ok: boolean, what: string): void {
  if (!ok) throw new SimError('BLUEZ_ARGUMENT', `hw-sim: ${what}`);
}

export class SimDevice implements BleDeviceHandle {
  readonly address: string;
  readonly path: string;
  readonly mtu: number;
  private readonly spec: BleDeviceSpec;
  private readonly device1: Device1;
  private readonly gatt: PackchainGatt;
  private readonly counters: BleDeviceStats = {
    notificationsSent: 0,
    notificationsRefused: 0,
    bytesNotified: 0,
    writesReceived: 0,
    writesRejected: 0,
    bytesWritten: 0,
    reads: 0,
    connects: 0,
    disconnects: 0,
    linkDrops: 0,
    subscribes: 0,
  };
  private deviceInfo: Uint8Array;
  private exported = false;
  private gattExported = false;
  private isConnected = false;
  private isResolved = false;
  private isAdvertising: boolean;
  private isRemoved = false;

  /** Throws BLUEZ_ARGUMENT for a bad address, name, MTU or device info. */
  constructor(
    spec: BleDeviceSpec,
    private readonly host: DeviceHost,
  ) {
    const address = spec.address.toUpperCase();
    check(ADDRESS.test(address), `device address "${spec.address}", expected six hex octets like AA:BB:CC:DD:EE:FF`);
    check(Buffer.byteLength(spec.name) <= MAX_NAME_BYTES, `device name of ${Buffer.byteLength(spec.name)} bytes, expected at most ${MAX_NAME_BYTES}`);
    const mtu = spec.mtu ?? 23;
    check(Number.isInteger(mtu) && mtu >= 23 && mtu <= 247, `mtu ${mtu}, expected an integer from 23 to 247`);
    for (const [what, dbm] of [['rssi', spec.rssi ?? 0], ['txPower', spec.txPower ?? 0]] as const) {
      check(Number.isInteger(dbm) && dbm >= -128 && dbm <= 127, `${what} ${dbm}, expected an integer from -128 to 127 dBm`);
    }
    check(spec.deviceInfo.length <= MAX_ATTRIBUTE, `device info of ${spec.deviceInfo.length} bytes, expected at most ${MAX_ATTRIBUTE}`);
    this.spec = spec;
    this.address = address;
    this.mtu = mtu;
    this.deviceInfo = new Uint8Array(spec.deviceInfo);
    this.isAdvertising = spec.advertising ?? true;
    this.path = `${host.adapterPath}/dev_${address.replace(/:/g, '_')}`;
    this.device1 = new Device1(this);
    this.gatt = packchainGatt(this.path, this, () => host.caller(), {
      notify: {
        subscribed: () => {
          this.counters.subscribes += 1;
          this.fire((d) => d.onSubscribe?.());
        },
        unsubscribed: () => {
          this.fire((d) => d.onUnsubscribe?.());
        },
      },
      write: {
        write: (chunk) => {
          this.counters.writesReceived += 1;
          this.counters.bytesWritten += chunk.length;
          this.fire((d) => d.onWrite?.(chunk));
        },
        writeRejected: () => {
          this.counters.writesRejected += 1;
        },
      },
      info: {
        read: () => {
          this.counters.reads += 1;
          return this.deviceInfo;
        },
      },
    });
  }

  get maxChunk(): number {
    return this.mtu - 3;
  }
  get connected(): boolean {
    return this.isConnected;
  }
  get servicesResolved(): boolean {
    return this.isResolved;
  }
  get subscribed(): boolean {
    return this.isConnected && this.gatt.notify.subscribed;
  }
  get advertising(): boolean {
    return this.isAdvertising;
  }
  get removed(): boolean {
    return this.isRemoved;
  }
  get stats(): BleDeviceStats {
    return { ...this.counters };
  }
  get name(): string {
    return this.spec.name;
  }
  get addressType(): string {
    return this.spec.addressType ?? 'random';
  }
  get rssi(): number {
    return this.spec.rssi ?? -60;
  }
  get txPower(): number {
    return this.spec.txPower ?? 0;
  }
  get adapterPath(): string {
    return this.host.adapterPath;
  }

  notify(chunk: Uint8Array): boolean {
    if (chunk.length > this.maxChunk) {
      throw new SimError('BLUEZ_CHUNK', `hw-sim: notification of ${chunk.length} bytes on ${this.address}, expected at most ${this.maxChunk} (ATT_MTU ${this.mtu} − 3)`);
    }
    if (!this.subscribed) {
      this.counters.notificationsRefused += 1;
      return false;
    }
    this.gatt.notify.notify(chunk);
    this.counters.notificationsSent += 1;
    this.counters.bytesNotified += chunk.length;
    return true;
  }

  setDeviceInfo(info: Uint8Array): void {
    check(info.length <= MAX_ATTRIBUTE, `device info of ${info.length} bytes, expected at most ${MAX_ATTRIBUTE}`);
    this.deviceInfo = new Uint8Array(info);
  }

  dropLink(): void {
    if (this.isRemoved) return;
    this.isAdvertising = false;
    if (this.isConnected) {
      this.counters.linkDrops += 1;
      this.linkDown('link-loss');
    }
  }

  comeBack(): void {
    if (this.isRemoved) return;
    this.isAdvertising = true;
    this.discovered();
  }

  remove(): void {
    if (this.isRemoved) return;
    if (this.isConnected) this.linkDown('removed');
    for (const c of this.gatt.all) c.forgetSessions();
    this.isRemoved = true;
    this.isAdvertising = false;
    if (this.gattExported) for (const [path, iface] of [...this.gatt.objects].reverse()) this.host.unexportObject(path, iface);
    if (this.exported) this.host.unexportObject(this.path, this.device1);
    this.gattExported = false;
    this.exported = false;
    this.host.forget(this.address);
  }

  /** Called when discovery starts or the device starts advertising: a scan sees it and BlueZ exports it. */
  discovered(): void {
    if (this.exported || this.isRemoved || !this.isAdvertising || !this.host.discovering) return;
    this.host.exportObject(this.path, this.device1);
    this.exported = true;
  }

  /** A D-Bus client left the bus: its notify sessions end. */
  dropClient(sender: string): void {
    for (const c of this.gatt.all) c.dropClient(sender);
  }

  /**
   * Device1.Connect. An absent device, or one over the controller's connection limit, fails the way
   * an LE connection attempt that never completes fails in BlueZ (but at once, not after seconds).
   */
  connectFromHost(): void {
    if (this.isConnected) return;
    if (!this.isAdvertising || !this.host.connectionSlotFree()) throw bluezError.failed('le-connection-abort-by-local');
    this.isConnected = true;
    propertiesChanged(this.device1, { Connected: true });
    if (!this.gattExported) {
      for (const [path, iface] of this.gatt.objects) this.host.exportObject(path, iface);
      this.gattExported = true;
    }
    this.isResolved = true;
    propertiesChanged(this.device1, { ServicesResolved: true });
    this.counters.connects += 1;
    this.fire((d) => d.onConnect?.());
    for (const c of this.gatt.all) c.linkUp();
  }

  /** Device1.Disconnect. */
  disconnectFromHost(): void {
    if (!this.isConnected) throw bluezError.notConnected();
    this.counters.disconnects += 1;
    this.linkDown('host');
  }

  /**
   * Runs a firmware callback. One that throws is a bug in the caller: it is reported to the host
   * rather than turned into a D-Bus error reply that would blame the client.
   */
  private fire(call: (spec: BleDeviceSpec) => void): void {
    try {
      call(this.spec);
    } catch (err) {
      this.host.callbackFailed(err);
    }
  }

  private linkDown(reason: DisconnectReason): void {
    // Notify sessions outlive the link (BlueZ re-enables them on reconnect), so onUnsubscribe is
    // not called: onDisconnect tells the firmware the subscription is gone with the link.
    for (const c of this.gatt.all) c.linkDown();
    this.isResolved = false;
    propertiesChanged(this.device1, { ServicesResolved: false });
    this.isConnected = false;
    propertiesChanged(this.device1, { Connected: false });
    this.fire((d) => d.onDisconnect?.(reason));
  }
}

/** org.bluez.Device1: the properties and methods node-ble 1.13 reads and calls. */
class Device1 extends Interface {
  private paired = false;

  constructor(private readonly dev: SimDevice) {
    super('org.bluez.Device1');
  }

  get Address(): string {
    return this.dev.address;
  }
  get AddressType(): string {
    return this.dev.addressType;
  }
  get Name(): string {
    return this.dev.name;
  }
  get Alias(): string {
    return this.dev.name;
  }
  get Adapter(): string {
    return this.dev.adapterPath;
  }
  get Paired(): boolean {
    return this.paired;
  }
  get RSSI(): number {
    return this.dev.rssi;
  }
  get TxPower(): number {
    return this.dev.txPower;
  }
  get Connected(): boolean {
    return this.dev.connected;
  }
  get ServicesResolved(): boolean {
    return this.dev.servicesResolved;
  }
  get UUIDs(): string[] {
    return [BLE_GATT.service];
  }
  /**
   * Always empty: dbus-next 0.10 marshals a dict from a JS object whose keys are strings, and its
   * uint16 marshaller rejects "65535", so a non-empty a{qv} cannot be sent at all.
   */
  get ManufacturerData(): Record<number, Variant> {
    return {};
  }
  get ServiceData(): Record<string, Variant> {
    return {};
  }

  Connect(): void {
    this.dev.connectFromHost();
  }
  Disconnect(): void {
    this.dev.disconnectFromHost();
  }
  /** Just Works pairing: packchain needs no link security (frames are signed end to end). */
  Pair(): void {
    if (!this.dev.connected) throw bluezError.failed('Page Timeout');
    if (this.paired) throw bluezError.alreadyExists('Already Paired');
    this.paired = true;
    propertiesChanged(this, { Paired: true });
  }
  CancelPair(): void {
    throw bluezError.doesNotExist(); // pairing completes inside Pair(): there is never one to cancel
  }
}

Device1.configureMembers({
  properties: {
    Address: ro('s'),
    AddressType: ro('s'),
    Name: ro('s'),
    Alias: ro('s'),
    Adapter: ro('o'),
    Paired: ro('b'),
    RSSI: ro('n'),
    TxPower: ro('n'),
    Connected: ro('b'),
    ServicesResolved: ro('b'),
    UUIDs: ro('as'),
    ManufacturerData: ro('a{qv}'),
    ServiceData: ro('a{sv}'),
  },
  methods: { Connect: {}, Disconnect: {}, Pair: {}, CancelPair: {} },
});
