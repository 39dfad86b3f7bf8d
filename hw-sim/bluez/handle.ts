/**
 * The contract between a simulated BLE device and the firmware behind it (BleDeviceSpec callbacks
 * in, BleDeviceHandle out), and what a device needs from the service hosting it. It is
 * transport-level on purpose: the firmware sees a link come and go, notifications being enabled,
 * one callback per written chunk, and sends one chunk per notify(); framing, acknowledgements and
 * resends are the firmware's business (docs/protocol.md §6), not the radio's.
 */
import type { DbusInterface } from './dbus.js';

/** Why the link went down, as passed to onDisconnect. */
export type DisconnectReason = 'host' | 'link-loss' | 'removed';

export interface BleDeviceSpec {
  /** Bluetooth address "AA:BB:CC:DD:EE:FF" (case-insensitive; stored upper case, as BlueZ shows it). */
  address: string;
  /** Advertised local name (at most 248 UTF-8 bytes). */
  name: string;
  /** ATT_MTU after the exchange, 23..247 (default 23): notifications and writes carry at most mtu − 3 bytes. */
  mtu?: number;
  /** Value of the device info characteristic (docs/protocol.md §6.5), at most 512 bytes (ATT limit). */
  deviceInfo: Uint8Array;
  /** "random" (static random, the usual BMU choice; default) or "public". */
  addressType?: 'public' | 'random';
  /** RSSI and TxPower in dBm shown on Device1, integers −128..127 (defaults −60 and 0). */
  rssi?: number;
  txPower?: number;
  /** Whether the device is in range and advertising when added (default true). */
  advertising?: boolean;
  /**
   * One chunk the host wrote to the write characteristic (≤ mtu − 3 bytes; longer writes are
   * refused before they get here). Called synchronously before the host's WriteValue returns.
   */
  onWrite?(chunk: Uint8Array): void;
  /** The link is up (before any onSubscribe of the same connection). */
  onConnect?(): void;
  /** The link is down; any subscription went with it (no onUnsubscribe is sent for that). */
  onDisconnect?(reason: DisconnectReason): void;
  /**
   * Notifications were enabled: a client's StartNotify, or BlueZ re-enabling surviving sessions
   * right after a reconnect. The firmware may notify() from inside this callback.
   */
  onSubscribe?(): void;
  /** The last client stopped notifications (StopNotify, or it left the bus) while the link stayed up. */
  onUnsubscribe?(): void;
}

export interface BleDeviceStats {
  notificationsSent: number;
  /** notify() calls refused because the link was down or nobody was subscribed. */
  notificationsRefused: number;
  bytesNotified: number;
  writesReceived: number;
  /** Writes refused (too long, at an offset). */
  writesRejected: number;
  bytesWritten: number;
  reads: number;
  connects: number;
  /** Disconnects the host asked for (Device1.Disconnect). */
  disconnects: number;
  /** dropLink() while connected. */
  linkDrops: number;
  subscribes: number;
}

export interface BleDeviceHandle {
  readonly address: string;
  /** D-Bus object path of the Device1 object. */
  readonly path: string;
  readonly mtu: number;
  /** Largest chunk notify() accepts: mtu − 3. */
  readonly maxChunk: number;
  readonly connected: boolean;
  /** Connected and at least one client has notifications on. */
  readonly subscribed: boolean;
  /** In range and advertising (false between dropLink() and comeBack()). */
  readonly advertising: boolean;
  readonly removed: boolean;
  /** A snapshot of the counters. */
  readonly stats: BleDeviceStats;
  /**
   * Sends one notification. Returns false (and counts it) when not connected or not subscribed —
   * a real notification then goes nowhere. Throws BLUEZ_CHUNK for more than mtu − 3 bytes.
   */
  notify(chunk: Uint8Array): boolean;
  /** Replaces the device info value (e.g. after provisioning). Throws BLUEZ_ARGUMENT over 512 bytes. */
  setDeviceInfo(info: Uint8Array): void;
  /** Link loss: the device goes out of range (no longer advertising); a connected host sees a disconnect. */
  dropLink(): void;
  /** Back in range: advertises again and accepts connections. */
  comeBack(): void;
  /** Removes the device from the adapter (disconnecting it first). Idempotent. */
  remove(): void;
}

/** What a device needs from the service that hosts it. */
export interface DeviceHost {
  readonly adapterPath: string;
  readonly discovering: boolean;
  /** Whether the controller can take one more LE connection (FakeBluezOptions.maxConnections). */
  connectionSlotFree(): boolean;
  caller(): string;
  exportObject(path: string, iface: DbusInterface): void;
  unexportObject(path: string, iface: DbusInterface): void;
  forget(address: string): void;
  /** A firmware callback threw: a bug in the caller, reported outside the D-Bus reply. */
  callbackFailed(err: unknown): void;
}
