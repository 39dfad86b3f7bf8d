/**
 * The state-of-health frame schema, version 1, as data (docs/protocol.md §2): one row per CBOR
 * map key with its name, wire type, range, wire unit and display scale. frame.ts validates against
 * this table, and the history CSV, tables and charts render names and units from it, so the units
 * live in exactly one place. Integer fixed-point units only (DESIGN.md decision 1): a value on the
 * wire times `scale` is the value in `unit`.
 *
 * Fields 16–28 carry the battery passport's state-of-health and lifetime parameters (EU 2023/1542
 * Annex VII; `passport` names the ledger's passport parameter, docs/passport.md); they are optional because not every BMU
 * measures them.
 */

/** A decoded (or to-be-encoded) v1 state-of-health frame. Names are the field table's `name`s. */
export interface SohFrame {
  /** Schema version; always 1 for this schema. */
  v: 1;
  serial: string;
  counter: number;
  time: number;
  soc: number;
  soh: number;
  voltage: number;
  current: number;
  tempMin: number;
  tempMax: number;
  cycles: number;
  cells: number[];
  remainingCapacity: number;
  resistance: number;
  alarms: number;
  firmware: string;
  ratedCapacity?: number;
  energyThroughput?: number;
  capacityThroughput?: number;
  powerCapability?: number;
  roundTripEfficiency?: number;
  selfDischarge?: number;
  deepDischargeEvents?: number;
  overTempSeconds?: number;
  underTempSeconds?: number;
  overTempChargeSeconds?: number;
  underTempChargeSeconds?: number;
  certifiedEnergy?: number;
  remainingEnergy?: number;
}

export type FrameFieldName = keyof SohFrame;

/**
 * How a field is typed on the wire: `uint`/`int` a CBOR integer (major type 0/1) in [min, max];
 * `text` a CBOR text string matching `pattern` and at most `max` UTF-8 bytes (all patterns are
 * ASCII); `cells` an array of 1..max integers each in [itemMin, itemMax].
 */
export type FrameFieldKind = 'uint' | 'int' | 'text' | 'cells';

export interface FrameField {
  readonly key: number;
  readonly name: FrameFieldName;
  readonly kind: FrameFieldKind;
  readonly required: boolean;
  /** Inclusive range of the integer (uint/int), or max length in characters (text) or items (cells). */
  readonly min: number;
  readonly max: number;
  /** cells only: inclusive range of each item. */
  readonly itemMin?: number;
  readonly itemMax?: number;
  /** text only: the whole value must match. */
  readonly pattern?: RegExp;
  /** Unit of the integer on the wire ('' for counts and text). */
  readonly wireUnit: string;
  /** Display unit and factor: wire value × scale = value in `unit`. */
  readonly unit: string;
  readonly scale: number;
  readonly description: string;
  /** Battery-passport parameter this field feeds (ledger/passport.ts PARAMETER_SPECS name; docs/passport.md gives its IDTA-02035 path), if any. */
  readonly passport?: string;
}

/** The current schema version (key 0). */
export const FRAME_VERSION = 1;

const U32 = 0xffffffff;
const U53 = Number.MAX_SAFE_INTEGER;

/** Bits of field 14 (alarms). Bits 9..31 are reserved and must be 0 in schema v1. */
export const ALARM_BITS = {
  cellOverVoltage: 1 << 0,
  cellUnderVoltage: 1 << 1,
  overTemperature: 1 << 2,
  underTemperature: 1 << 3,
  overCurrentCharge: 1 << 4,
  overCurrentDischarge: 1 << 5,
  cellImbalance: 1 << 6,
  deepDischarge: 1 << 7,
  internalFault: 1 << 8,
} as const;

/** Mask of the alarm bits defined in v1; any other set bit is FRAME_FIELD_RANGE. */
export const ALARM_MASK_V1 = 0x1ff;

const f = (
  key: number,
  name: FrameFieldName,
  kind: FrameFieldKind,
  required: boolean,
  min: number,
  max: number,
  wireUnit: string,
  unit: string,
  scale: number,
  description: string,
  extra: Partial<Pick<FrameField, 'itemMin' | 'itemMax' | 'pattern' | 'passport'>> = {},
): FrameField => Object.freeze({ key, name, kind, required, min, max, wireUnit, unit, scale, description, ...extra });

/** Schema v1, in key order; `FRAME_FIELDS[k].key === k`. */
export const FRAME_FIELDS: readonly FrameField[] = Object.freeze([
  f(0, 'v', 'uint', true, 1, 1, '', '', 1, 'schema version (1)'),
  f(1, 'serial', 'text', true, 1, 32, '', '', 1, 'pack serial', { pattern: /^[A-Z0-9][A-Z0-9-]{0,31}$/ }),
  f(2, 'counter', 'uint', true, 0, U53, '', '', 1, 'frame counter, monotonic across reboots'),
  f(3, 'time', 'uint', true, 0, U53, 'ms', 'ms', 1, 'device clock, ms since the Unix epoch'),
  f(4, 'soc', 'uint', true, 0, 1000, '‰', '%', 0.1, 'state of charge', { passport: 'StateOfCharge' }),
  f(5, 'soh', 'uint', true, 0, 1000, '‰', '%', 0.1, 'state of health (capacity)'),
  f(6, 'voltage', 'uint', true, 0, 1_500_000, 'mV', 'V', 0.001, 'pack voltage'),
  f(7, 'current', 'int', true, -2_000_000, 2_000_000, 'mA', 'A', 0.001, 'pack current, positive = charging'),
  f(8, 'tempMin', 'int', true, -550, 1500, '0.1 °C', '°C', 0.1, 'lowest sensor temperature'),
  f(9, 'tempMax', 'int', true, -550, 1500, '0.1 °C', '°C', 0.1, 'highest sensor temperature (≥ tempMin)'),
  f(10, 'cycles', 'uint', true, 0, 10_000_000, '', '', 1, 'equivalent full cycles', { passport: 'NumberOfFullCycles' }),
  f(11, 'cells', 'cells', true, 1, 32, 'mV', 'V', 0.001, 'cell voltages', { itemMin: 0, itemMax: 6000 }),
  f(12, 'remainingCapacity', 'uint', true, 0, U32, 'mAh', 'Ah', 0.001, 'remaining capacity', { passport: 'RemainingCapacity' }),
  f(13, 'resistance', 'uint', true, 0, U32, 'µΩ', 'mΩ', 0.001, 'internal (ohmic) resistance', { passport: 'InternalResistanceIncreaseOfBatteryPackLevel' }),
  f(14, 'alarms', 'uint', true, 0, U32, '', '', 1, 'alarm bit field (ALARM_BITS; reserved bits 0)'),
  f(15, 'firmware', 'text', true, 5, 32, '', '', 1, 'BMU firmware version major.minor.patch', {
    pattern: /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$/,
  }),
  f(16, 'ratedCapacity', 'uint', false, 0, U32, 'mAh', 'Ah', 0.001, 'rated capacity', { passport: 'RatedCapacity' }),
  f(17, 'energyThroughput', 'uint', false, 0, U53, 'Wh', 'kWh', 0.001, 'lifetime energy throughput', { passport: 'EnergyThroughput' }),
  f(18, 'capacityThroughput', 'uint', false, 0, U53, 'mAh', 'Ah', 0.001, 'lifetime capacity throughput', { passport: 'CapacityThroughput' }),
  f(19, 'powerCapability', 'uint', false, 0, U32, 'W', 'kW', 0.001, 'remaining power capability', { passport: 'RemainingPowerCapability' }),
  f(20, 'roundTripEfficiency', 'uint', false, 0, 1000, '‰', '%', 0.1, 'remaining round-trip energy efficiency', {
    passport: 'RemainingRoundTripEnergyEfficiency',
  }),
  f(21, 'selfDischarge', 'uint', false, 0, 1000, '‰/30 d', '%/30 d', 0.1, 'self-discharge rate per 30 days', {
    passport: 'EvolutionOfSelfDischarge',
  }),
  f(22, 'deepDischargeEvents', 'uint', false, 0, U32, '', '', 1, 'deep discharge events (lifetime count)', { passport: 'NumberOfDeepDischargeEvents' }),
  f(23, 'overTempSeconds', 'uint', false, 0, U53, 's', 'h', 1 / 3600, 'lifetime time above the max operating temperature', {
    passport: 'TimeExtremeHighTemp',
  }),
  f(24, 'underTempSeconds', 'uint', false, 0, U53, 's', 'h', 1 / 3600, 'lifetime time below the min operating temperature', {
    passport: 'TimeExtremeLowTemp',
  }),
  f(25, 'overTempChargeSeconds', 'uint', false, 0, U53, 's', 'h', 1 / 3600, 'lifetime time charging above the max charging temperature', {
    passport: 'TimeExtremeHighTempCharging',
  }),
  f(26, 'underTempChargeSeconds', 'uint', false, 0, U53, 's', 'h', 1 / 3600, 'lifetime time charging below the min charging temperature', {
    passport: 'TimeExtremeLowTempCharging',
  }),
  f(27, 'certifiedEnergy', 'uint', false, 0, 1000, '‰', '%', 0.1, 'state of certified energy (EV batteries)', {
    passport: 'StateOfCertifiedEnergy',
  }),
  f(28, 'remainingEnergy', 'uint', false, 0, U32, 'Wh', 'kWh', 0.001, 'remaining energy', { passport: 'RemainingEnergy' }),
]);

/** Field lookup by camelCase name. */
export const FRAME_FIELD_BY_NAME: ReadonlyMap<FrameFieldName, FrameField> = new Map(FRAME_FIELDS.map((x) => [x.name, x]));
