/**
 * hw-sim: the BMU firmware companion (docs/hw-sim.md) — battery model, firmware state and protocol
 * side, serial ptys and a fake BlueZ on a private D-Bus. It imports only protocol/ through
 * protocol/index.js, never another module.
 */
export { SimError, isSimError, type SimErrorCode } from './errors.js';
export { killStaleBuses, startPrivateBus, type PrivateBus, type PrivateBusOptions } from './bluez/bus.js';
export { BLUEZ_NAME, FakeBluez, type FakeBluezOptions } from './bluez/service.js';
export type { AdapterIdentity } from './bluez/adapter.js';
export type { BleDeviceHandle, BleDeviceSpec, BleDeviceStats, DisconnectReason } from './bluez/handle.js';
