/**
 * The GATT objects BlueZ exports under a connected device (org.bluez.GattService1 and
 * org.bluez.GattCharacteristic1, doc/gatt-api.txt), with the packchain layout of
 * docs/protocol.md §6.1. Paths follow BlueZ's rule `service%04x` / `char%04x` of the attribute
 * handle, so the tree looks like a real peripheral's: the Generic Attribute service (0x0001, its
 * Service Changed characteristic 0x0002) that every GATT server has and BlueZ exports, then the
 * packchain service at 0x000a with notify (0x000b), write (0x000e) and device info (0x0010).
 * Notification and write semantics mirror src/gatt-client.c: notify sessions are per D-Bus client
 * (StartNotify twice from one client succeeds, StopNotify without a session fails), they survive a
 * disconnect and resume on reconnect, a notification is a PropertiesChanged of Value, and the link
 * must be up for reads and writes. Each write must be
 * one chunk of at most ATT_MTU − 3 bytes at offset 0 (§6.1); what real BlueZ would turn into a long
 * or queued write is rejected, as a BMU firmware without a prepare-write queue would.
 */
import { BLE_GATT } from '../../protocol/index.js';
import { bluezError, Interface, option, propertiesChanged, ro, type DbusInterface } from './dbus.js';

export type CharFlag = 'read' | 'write' | 'write-without-response' | 'notify' | 'indicate';
export type WriteType = 'command' | 'request' | 'reliable';

/** What a characteristic needs to know about its device's link. */
export interface LinkState {
  readonly connected: boolean;
  /** Negotiated ATT_MTU, 23..247. */
  readonly mtu: number;
}

/** Firmware-side hooks; all optional. */
export interface CharacteristicHooks {
  read?(): Uint8Array;
  write?(value: Uint8Array, type: WriteType): void;
  writeRejected?(): void;
  /** Notifications enabled (the host wrote the CCCD): first session opened, or sessions resumed on reconnect. */
  subscribed?(): void;
  /** Last notify session closed by StopNotify or by its client leaving the bus, link up (not called on link loss). */
  unsubscribed?(): void;
}

export class GattService1 extends Interface {
  constructor(
    readonly path: string,
    private readonly uuid: string,
    private readonly devicePath: string,
  ) {
    super('org.bluez.GattService1');
  }

  get UUID(): string {
    return this.uuid;
  }
  get Primary(): boolean {
    return true;
  }
  get Device(): string {
    return this.devicePath;
  }
}
GattService1.configureMembers({ properties: { UUID: ro('s'), Primary: ro('b'), Device: ro('o') } });

export class GattCharacteristic1 extends Interface {
  private readonly sessions = new Set<string>();
  private value: Uint8Array = new Uint8Array(0);

  constructor(
    readonly path: string,
    private readonly uuid: string,
    private readonly flags: readonly CharFlag[],
    private readonly servicePath: string,
    private readonly link: LinkState,
    private readonly caller: () => string,
    private readonly hooks: CharacteristicHooks = {},
  ) {
    super('org.bluez.GattCharacteristic1');
  }

  get UUID(): string {
    return this.uuid;
  }
  get Service(): string {
    return this.servicePath;
  }
  get Flags(): string[] {
    return [...this.flags];
  }
  get Notifying(): boolean {
    return this.subscribed;
  }
  get Value(): Buffer {
    return Buffer.from(this.value);
  }
  /** BlueZ ≥ 5.62 exports the ATT MTU on each characteristic. */
  get MTU(): number {
    return this.link.mtu;
  }

  ReadValue(options: unknown): Buffer {
    const offset = option(options, 'offset', 'number') ?? 0;
    if (!this.link.connected) throw bluezError.failed('Not connected');
    if (!this.flags.includes('read')) throw bluezError.notPermitted('Read not permitted');
    const value = this.hooks.read?.() ?? this.value;
    if (offset > value.length) throw bluezError.invalidArgs('Invalid offset');
    this.value = value;
    return Buffer.from(value.subarray(offset));
  }

  WriteValue(value: Buffer, options: unknown): void {
    const offset = option(options, 'offset', 'number') ?? 0;
    const requested = option(options, 'type', 'string');
    if (!this.link.connected) throw bluezError.failed('Not connected');
    // With no type BlueZ picks request if the characteristic has "write", else command.
    const type = requested ?? (this.flags.includes('write') ? 'request' : 'command');
    if (type !== 'command' && type !== 'request' && type !== 'reliable') throw bluezError.notSupported();
    if (!this.flags.includes(type === 'command' ? 'write-without-response' : 'write')) {
      throw bluezError.notPermitted('Write not permitted');
    }
    if (offset !== 0 || value.length > this.link.mtu - 3) {
      this.hooks.writeRejected?.();
      // A write command that does not fit one ATT PDU never leaves BlueZ; a request or reliable
      // write would become a long write, which the BMU answers with Invalid Attribute Value Length.
      if (type === 'command') throw bluezError.failed('Failed to initiate write');
      throw bluezError.invalidArgs(offset !== 0 ? 'Invalid offset' : 'Invalid Length');
    }
    this.hooks.write?.(new Uint8Array(value), type);
  }

  /**
   * Opens this client's notify session. As in BlueZ, a session opened while the link is down is
   * kept and takes effect on the next connection, and a repeat from the same client is a no-op.
   */
  StartNotify(): void {
    if (!this.flags.includes('notify') && !this.flags.includes('indicate')) throw bluezError.notSupported();
    const sender = this.caller();
    if (this.sessions.has(sender)) return;
    this.sessions.add(sender);
    if (this.sessions.size === 1 && this.link.connected) this.activate();
  }

  StopNotify(): void {
    if (!this.sessions.delete(this.caller())) throw bluezError.failed('No notify session started');
    this.afterSessionClosed();
  }

  /** A client left the bus: BlueZ's disconnect watch drops its notify session. */
  dropClient(sender: string): void {
    if (this.sessions.delete(sender)) this.afterSessionClosed();
  }

  /**
   * The link came up. BlueZ keeps notify sessions across a disconnect and re-enables them on
   * reconnect ("Re-enable notifications for any pre-registered notification sessions",
   * btd_gatt_client_connected): the firmware sees a fresh CCCD write.
   */
  linkUp(): void {
    if (this.sessions.size > 0) this.activate();
  }

  /** The link went down: sessions stay, but nothing is notifying until the link is back. */
  linkDown(): void {
    if (this.sessions.size > 0) propertiesChanged(this, { Notifying: false });
  }

  /** The device is removed: every session ends silently. */
  forgetSessions(): void {
    this.sessions.clear();
  }

  /** Notifications reach someone: the link is up and at least one client has a session. */
  get subscribed(): boolean {
    return this.link.connected && this.sessions.size > 0;
  }

  /** Emits one notification: PropertiesChanged(GattCharacteristic1, {Value}), as BlueZ does per ATT notification. */
  notify(chunk: Uint8Array): void {
    const value = Buffer.from(chunk); // a copy: the firmware may reuse its buffer
    this.value = value;
    propertiesChanged(this, { Value: value });
  }

  private activate(): void {
    propertiesChanged(this, { Notifying: true });
    this.hooks.subscribed?.();
  }

  private afterSessionClosed(): void {
    if (this.sessions.size > 0 || !this.link.connected) return;
    propertiesChanged(this, { Notifying: false });
    this.hooks.unsubscribed?.();
  }
}
GattCharacteristic1.configureMembers({
  properties: { UUID: ro('s'), Service: ro('o'), Flags: ro('as'), Notifying: ro('b'), Value: ro('ay'), MTU: ro('q') },
  methods: {
    ReadValue: { inSignature: 'a{sv}', outSignature: 'ay' },
    WriteValue: { inSignature: 'aya{sv}', outSignature: '' },
    StartNotify: {},
    StopNotify: {},
  },
});

/** Generic Attribute service and its Service Changed characteristic (Bluetooth Assigned Numbers). */
export const GENERIC_ATTRIBUTE_UUID = '00001801-0000-1000-8000-00805f9b34fb';
export const SERVICE_CHANGED_UUID = '00002a05-0000-1000-8000-00805f9b34fb';

export interface PackchainGatt {
  /** Every object to export, parents before children. */
  readonly objects: readonly (readonly [string, DbusInterface])[];
  readonly notify: GattCharacteristic1;
  readonly write: GattCharacteristic1;
  readonly info: GattCharacteristic1;
  readonly all: readonly GattCharacteristic1[];
}

export interface PackchainHooks {
  notify: CharacteristicHooks;
  write: CharacteristicHooks;
  info: CharacteristicHooks;
}

/** Builds the GATT tree of one packchain BMU under `devicePath`. */
export function packchainGatt(devicePath: string, link: LinkState, caller: () => string, hooks: PackchainHooks): PackchainGatt {
  const gattPath = `${devicePath}/service0001`;
  const pcPath = `${devicePath}/service000a`;
  const chr = (handle: string, servicePath: string, uuid: string, flags: CharFlag[], h: CharacteristicHooks = {}) =>
    new GattCharacteristic1(`${servicePath}/char${handle}`, uuid, flags, servicePath, link, caller, h);
  const serviceChanged = chr('0002', gattPath, SERVICE_CHANGED_UUID, ['indicate']);
  const notify = chr('000b', pcPath, BLE_GATT.notify, ['notify'], hooks.notify);
  const write = chr('000e', pcPath, BLE_GATT.write, ['write-without-response', 'write'], hooks.write);
  const info = chr('0010', pcPath, BLE_GATT.info, ['read'], hooks.info);
  const all = [serviceChanged, notify, write, info];
  const objects: (readonly [string, DbusInterface])[] = [
    [gattPath, new GattService1(gattPath, GENERIC_ATTRIBUTE_UUID, devicePath)],
    [pcPath, new GattService1(pcPath, BLE_GATT.service, devicePath)],
    ...all.map((c) => [c.path, c] as const),
  ];
  return { objects, notify, write, info, all };
}
