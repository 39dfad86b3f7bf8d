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
export { Fleet, type FleetEndpoint, type FleetOptions, type SimDevice } from './fleet.js';
export { DeviceFlash, type BootReport, type FactorySettings, type FlashIdentity, type FlashOptions } from './flash.js';
export { Firmware, type DiscardedFrame, type FirmwareOptions, type FirmwareStats, type ProducedFrame, type Sensor, type SensorReading } from './firmware.js';
export { generateSecretKey, STATUS_NO_CHAIN, type RandomBytes } from './commands.js';
export { LinkEvents, type DeviceLink, type Unsubscribe } from './link.js';
export { MemoryLink, type MemoryHost } from './memory-link.js';
export { createPtyPair, type PtyPair, type PtyPairOptions } from './pty.js';
export { realTimer, SerialDeviceLink, type LinkTimer, type SerialLinkOptions, type SerialLinkStats, type WireTamper } from './serial-link.js';
export { BleDeviceLink, type BleLinkOptions, type BleLinkStats } from './ble-link.js';
export { BatteryModel, AGEING_INTERVAL_SECONDS, MAX_STEP_SECONDS, type CellView, type FaultName } from './model.js';
export { DEFAULT_SPREAD, type BalancingParams, type PackConfig, type ResolvedPackConfig, type SpreadParams } from './model-config.js';
export type { Measurements } from './model-measure.js';
export type { BatterySnapshot } from './model-state.js';
export { CHEMISTRIES, CHEMISTRY_PARAMS, OCV_TABLES, type AgeingParams, type AlarmThresholds, type Chemistry } from './chemistry.js';
export {
  CcCvCharge,
  CcDischarge,
  ConstantCurrent,
  DailySchedule,
  DriveCycle,
  Repeat,
  Rest,
  Sequence,
  createProfile,
  formation,
  restoreProfile,
  saveProfile,
  type Profile,
  type ProfileContext,
  type ProfileSnapshot,
  type ProfileSpec,
  type ProfileState,
} from './profile.js';
export { Random } from './random.js';
export { DeviceFaults, FAULT_KINDS, FAULT_TRANSPORTS, type DeviceFaultsOptions, type Fault, type FaultKind, type FaultRecord, type PackTransport } from './faults.js';
export { faultArrivals, FleetFaults, MAX_FAULT_RATE, parseFaultSpec, type FaultRates, type FaultStats, type FleetFaultsOptions } from './faults-fleet.js';
export type { CorruptPart, FaultDetail } from './faults-wire.js';
