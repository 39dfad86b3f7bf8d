/**
 * The battery-passport export of one pack (docs/passport.md): the state-of-health parameters of
 * Regulation (EU) 2023/1542 Annex VII (Part A state of health, Part B expected lifetime) and the
 * fades of Annex IV Part A, named with the idShort paths of the IDTA-02035 Digital Battery Passport
 * submodel templates (Part 4 TechnicalData v1.0.1, Part 5 ProductCondition v1.0.2), computed from
 * the pack's verified frames — and nothing else. Every value cites the frames it comes from (serial,
 * counter, origin gateway, log index, leaf hash), so each can be checked with a proof bundle; a
 * parameter no frame carries is `null` with the reason, never estimated.
 *
 * Pure: the clock (generatedAt) and the frames are passed in. The frames are read once, in order,
 * and only what the parameters need is kept (the first and latest frame per field, and one
 * self-discharge point per month for the last 12 months), so the ledger may stream a long history
 * through buildPassport without holding it.
 */
import { FRAME_FIELD_BY_NAME, isoTime, type FrameFieldName, type SohFrame } from '../protocol/index.js';
import { LedgerError } from './errors.js';

/** Version of the passport JSON; a change of shape or meaning gets a new one. */
export const PASSPORT_SCHEMA = 'packchain-passport/v1';

/** One verified frame of the pack with where the ledger holds it. */
export interface PassportFrame {
  frame: SohFrame;
  /** Origin (log name) of the gateway whose log entry is cited. */
  origin: string;
  /** The entry's index in that log. */
  index: number;
  /** RFC 9162 leaf hash of the entry, 64 lowercase hex digits. */
  leafHash: string;
  /** Gateway receive time, ms since the epoch. */
  receivedAt: number;
  /** True when a checkpoint cosigned by the ledger covers the entry. */
  witnessed: boolean;
}

/** The pack's device certificate as the ledger's pack detail shows it. */
export interface PassportCertificate {
  subject: string;
  /** Certificate serial number, hex. */
  serial: string;
  /** SHA-256 fingerprint, hex. */
  fingerprint: string;
}

export interface PassportInput {
  serial: string;
  certificate?: PassportCertificate | null;
  /** The pack's verified frames, oldest (lowest counter) first. */
  frames: Iterable<PassportFrame>;
  /** When the passport is generated, ms since the epoch (the caller's clock). */
  generatedAt: number;
}

/** A frame a value was computed from: enough to fetch its proof bundle (GET …/frames/:counter/proof). */
export interface FrameCitation {
  serial: string;
  counter: number;
  origin: string;
  index: number;
  leafHash: string;
}

export interface SeriesPoint {
  asOf: string;
  value: number;
  source: FrameCitation;
}

export interface PassportParameter {
  /** idShort path in the IDTA-02035 submodel template, or null when the templates have no element for it. */
  idta: string | null;
  /** Where Regulation (EU) 2023/1542 asks for it, or null when it does not. */
  regulation: string | null;
  value: number | null;
  unit: string;
  /** Device time of the latest frame the value is computed from. */
  asOf: string | null;
  /** The frames the value is computed from, oldest first. */
  source: FrameCitation[];
  /** Why the value is null. */
  reason?: string;
  /** EvolutionOfSelfDischarge only: the rate at the baseline and then monthly (latest frame of each month, last 12 months). */
  series?: SeriesPoint[];
}

export interface Passport {
  schema: string;
  generatedAt: string;
  serial: string;
  identifiers: {
    packSerial: string;
    certificateSubject: string | null;
    certificateSerial: string | null;
    certificateFingerprint: string | null;
  };
  frames: { considered: number; firstCounter: number; lastCounter: number; firstDeviceTime: string; lastDeviceTime: string };
  /** Frames cited by any parameter, how many of them no ledger-cosigned checkpoint covers yet, and whether that is none. */
  citations: { frames: number; unwitnessed: number; allWitnessed: boolean };
  parameters: Record<ParameterName, PassportParameter>;
}

export type ParameterName = (typeof PARAMETER_NAMES)[number];

/** The parameters in the order the passport lists them: Annex VII Part A, the fades, Part B, then the rest. */
export const PARAMETER_NAMES = [
  'RemainingCapacity', 'RatedCapacity', 'CapacityFade', 'StateOfHealth',
  'RemainingPowerCapability', 'PowerFade',
  'RemainingRoundTripEnergyEfficiency', 'EnergyRoundTripEfficiencyFade',
  'CurrentSelfDischargingRate', 'EvolutionOfSelfDischarge',
  'OhmicResistance', 'InternalResistanceIncreaseOfBatteryPackLevel',
  'StateOfCertifiedEnergy', 'RemainingEnergy',
  'EnergyThroughput', 'CapacityThroughput', 'NumberOfFullCycles', 'NumberOfDeepDischargeEvents',
  'TimeExtremeHighTemp', 'TimeExtremeLowTemp', 'TimeExtremeHighTempCharging', 'TimeExtremeLowTempCharging',
  'StateOfCharge',
] as const;

const PC = 'ProductCondition';
const TPA = 'TechnicalData/TechnicalPropertyAreas';
const PART_A = 'Annex VII Part A';
const PART_B = 'Annex VII Part B';

/** How one parameter is named and derived. `from` is a frame field; `fade` compares the field's first (baseline) and latest value. */
interface Spec {
  idta: string | null;
  regulation: string | null;
  unit: string;
  from: FrameFieldName;
  /** Wire value → passport unit. */
  scale: number;
  digits: number;
  kind: 'latest' | 'capacityFade' | 'decrease' | 'increase';
}

const spec = (idta: string | null, regulation: string | null, unit: string, from: FrameFieldName, scale: number, digits: number, kind: Spec['kind'] = 'latest'): Spec => ({
  idta, regulation, unit, from, scale, digits, kind,
});

/** Parameter → name, regulation reference and derivation; docs/passport.md has the table for people. */
export const PARAMETER_SPECS: Readonly<Record<ParameterName, Spec>> = Object.freeze({
  RemainingCapacity: spec(`${PC}/RemainingCapacity/RemainingCapacityValue`, `${PART_A}: remaining capacity`, 'Ah', 'remainingCapacity', 0.001, 3),
  RatedCapacity: spec(`${TPA}/CapacityEnergyVoltage/RatedCapacity`, 'Annex IV Part A: rated capacity', 'Ah', 'ratedCapacity', 0.001, 3),
  CapacityFade: spec(`${TPA}/CapacityEnergyVoltage/CapacityFade`, 'Annex IV Part A: capacity fade', '%', 'ratedCapacity', 100, 2, 'capacityFade'),
  StateOfHealth: spec(null, 'Art. 14: state of health as the BMS reports it (capacity)', '%', 'soh', 0.1, 1),
  RemainingPowerCapability: spec(`${PC}/RemainingPowerCapability/RemainingPowerCapabilityDynamicAt/PowerCapabilityAt`, `${PART_A}: remaining power capability`, 'W', 'powerCapability', 1, 0),
  PowerFade: spec(`${TPA}/PowerCapability/PowerFade`, 'Annex IV Part A: power fade', '%', 'powerCapability', 100, 2, 'decrease'),
  RemainingRoundTripEnergyEfficiency: spec(`${PC}/RemainingRoundTripEnergyEfficiency/RemainingRoundTripEnergyEfficiencyValue`, `${PART_A}: remaining round trip efficiency`, '%', 'roundTripEfficiency', 0.1, 1),
  EnergyRoundTripEfficiencyFade: spec(`${TPA}/RoundTripEnergyEfficiency/EnergyRoundTripEfficiencyFade`, 'Annex IV Part A: energy round trip efficiency fade', '%', 'roundTripEfficiency', 100, 2, 'decrease'),
  CurrentSelfDischargingRate: spec(`${PC}/CurrentSelfDischargingRate/CurrentSelfDischargingRateValue`, `${PART_A}: evolution of self-discharging rates (current rate)`, '%/30 d', 'selfDischarge', 0.1, 1),
  EvolutionOfSelfDischarge: spec(`${PC}/EvolutionOfSelfDischarge/EvolutionOfSelfDischargeValue`, `${PART_A}: evolution of self-discharging rates`, '%', 'selfDischarge', 100, 2, 'increase'),
  OhmicResistance: spec(null, `${PART_A}: ohmic resistance`, 'Ω', 'resistance', 1e-6, 6),
  InternalResistanceIncreaseOfBatteryPackLevel: spec(`${TPA}/Resistance/InternalResistanceIncreaseOfBatteryPackLevel`, 'Annex IV Part A: internal resistance increase', '%', 'resistance', 100, 2, 'increase'),
  StateOfCertifiedEnergy: spec(`${PC}/StateOfCertifiedEnergy/StateOfCertifiedEnergyValue`, `${PART_A}: state of certified energy (electric vehicle batteries)`, '%', 'certifiedEnergy', 0.1, 1),
  RemainingEnergy: spec(`${PC}/RemainingEnergy/RemainingEnergyValue`, null, 'kWh', 'remainingEnergy', 0.001, 3),
  EnergyThroughput: spec(`${PC}/EnergyThroughput/EnergyThroughputValue`, `${PART_B}: energy throughput`, 'kWh', 'energyThroughput', 0.001, 3),
  CapacityThroughput: spec(`${PC}/CapacityThroughput/CapacityThroughputValue`, `${PART_B}: capacity throughput`, 'Ah', 'capacityThroughput', 0.001, 3),
  NumberOfFullCycles: spec(`${PC}/NumberOfFullCycles/NumberOfFullCyclesValue`, `${PART_B}: number of full charge-discharge cycles`, 'cycles', 'cycles', 1, 0),
  NumberOfDeepDischargeEvents: spec(null, `${PART_B}: negative events (deep discharge)`, 'events', 'deepDischargeEvents', 1, 0),
  TimeExtremeHighTemp: spec(`${PC}/TemperatureInformation/TimeExtremeHighTemp`, `${PART_B}: time spent in extreme temperatures (above)`, 'min', 'overTempSeconds', 1 / 60, 2),
  TimeExtremeLowTemp: spec(`${PC}/TemperatureInformation/TimeExtremeLowTemp`, `${PART_B}: time spent in extreme temperatures (below)`, 'min', 'underTempSeconds', 1 / 60, 2),
  TimeExtremeHighTempCharging: spec(`${PC}/TemperatureInformation/TimeExtremeHighTempCharging`, `${PART_B}: time spent charging during extreme temperatures (above)`, 'min', 'overTempChargeSeconds', 1 / 60, 2),
  TimeExtremeLowTempCharging: spec(`${PC}/TemperatureInformation/TimeExtremeLowTempCharging`, `${PART_B}: time spent charging during extreme temperatures (below)`, 'min', 'underTempChargeSeconds', 1 / 60, 2),
  StateOfCharge: spec(`${PC}/StateOfCharge/StateOfChargeValue`, null, '%', 'soc', 0.1, 1),
});

/** Fields where 0 means "not measured yet" rather than a value (a pack with 0 % round-trip efficiency delivers nothing). */
const ZERO_IS_UNMEASURED: ReadonlySet<FrameFieldName> = new Set(['roundTripEfficiency']);

/** Months of self-discharge history the series keeps (plus the baseline). */
export const SELF_DISCHARGE_SERIES_MONTHS = 12;

const round = (x: number, digits: number): number => Number(x.toFixed(digits)) + 0;

const cite = (p: PassportFrame): FrameCitation => ({ serial: p.frame.serial, counter: p.frame.counter, origin: p.origin, index: p.index, leafHash: p.leafHash });

const fieldValue = (p: PassportFrame, name: FrameFieldName): number | undefined => {
  const v = p.frame[name];
  return typeof v === 'number' && !(v === 0 && ZERO_IS_UNMEASURED.has(name)) ? v : undefined;
};

/**
 * Reads the frames once and keeps what the parameters need: per tracked field the latest frame
 * carrying it and the first carrying a positive value (the baseline of a fade or increase), the
 * latest frame carrying both ratedCapacity and remainingCapacity, and the self-discharge series.
 */
class Accumulator {
  readonly latest = new Map<FrameFieldName, PassportFrame>();
  readonly baseline = new Map<FrameFieldName, PassportFrame>();
  readonly months = new Map<string, PassportFrame>();
  considered = 0;
  first: PassportFrame | undefined;
  last: PassportFrame | undefined;
  private readonly fields = [...new Set(Object.values(PARAMETER_SPECS).map((s) => s.from))];

  constructor(private readonly serial: string) {}

  add(p: PassportFrame): void {
    if (p.frame.serial !== this.serial) throw new LedgerError('PASSPORT_INPUT', `ledger: passport of ${this.serial}: frame ${p.frame.counter} is of pack ${p.frame.serial}`);
    if (this.last !== undefined && p.frame.counter <= this.last.frame.counter) {
      throw new LedgerError('PASSPORT_INPUT', `ledger: passport of ${this.serial}: frames must be in increasing counter order, got ${p.frame.counter} after ${this.last.frame.counter}`);
    }
    this.considered++;
    this.first ??= p;
    this.last = p;
    for (const name of this.fields) {
      const v = fieldValue(p, name);
      if (v === undefined) continue;
      this.latest.set(name, p);
      if (v > 0 && !this.baseline.has(name)) this.baseline.set(name, p);
    }
    if (fieldValue(p, 'selfDischarge') !== undefined) {
      const month = isoTime(p.frame.time).slice(0, 7);
      this.months.delete(month); // re-insert so the map stays in order of each month's latest frame
      this.months.set(month, p);
      if (this.months.size > SELF_DISCHARGE_SERIES_MONTHS) this.months.delete(this.months.keys().next().value as string);
    }
  }
}

const missing = (s: Spec, reason: string): PassportParameter => ({ idta: s.idta, regulation: s.regulation, value: null, unit: s.unit, asOf: null, source: [], reason });

const present = (s: Spec, value: number, frames: readonly PassportFrame[]): PassportParameter => ({
  idta: s.idta,
  regulation: s.regulation,
  value: round(value, s.digits),
  unit: s.unit,
  asOf: isoTime((frames.at(-1) as PassportFrame).frame.time),
  source: frames.map(cite),
});

function parameter(name: ParameterName, s: Spec, acc: Accumulator): PassportParameter {
  const none = `no frame carries ${s.from} (frame field ${FRAME_FIELD_BY_NAME.get(s.from)?.key ?? '?'})${ZERO_IS_UNMEASURED.has(s.from) ? ' with a non-zero value' : ''}`;
  const latest = acc.latest.get(s.from);
  if (latest === undefined) return missing(s, none);
  const at = (p: PassportFrame): number => fieldValue(p, s.from) ?? 0;
  switch (s.kind) {
    case 'latest':
      return present(s, at(latest) * s.scale, [latest]);
    case 'capacityFade': {
      // Annex IV Part A / IEC 62660-1: fade = 1 − remaining / rated, both from the same (latest) frame.
      const rated = at(latest);
      if (rated === 0) return missing(s, 'the latest frame carrying ratedCapacity says 0 mAh; a fade relative to 0 is undefined');
      return present(s, (1 - latest.frame.remainingCapacity / rated) * 100, [latest]);
    }
    case 'decrease':
    case 'increase': {
      const base = acc.baseline.get(s.from);
      if (base === undefined) return missing(s, `every frame carrying ${s.from} says 0; a change relative to 0 is undefined`);
      if (base === latest) return missing(s, `only one frame (counter ${base.frame.counter}) carries a baseline for ${s.from}; a change needs a later frame`);
      const ratio = at(latest) / at(base);
      const p = present(s, (s.kind === 'decrease' ? 1 - ratio : ratio - 1) * 100, [base, latest]);
      if (name === 'EvolutionOfSelfDischarge') p.series = selfDischargeSeries(acc, base);
      return p;
    }
  }
}

function selfDischargeSeries(acc: Accumulator, base: PassportFrame): SeriesPoint[] {
  const points = [...acc.months.values()];
  if (!points.includes(base)) points.unshift(base);
  const s = PARAMETER_SPECS.CurrentSelfDischargingRate;
  return points
    .sort((a, b) => a.frame.counter - b.frame.counter)
    .map((p) => ({ asOf: isoTime(p.frame.time), value: round((fieldValue(p, 'selfDischarge') ?? 0) * s.scale, s.digits), source: cite(p) }));
}

/**
 * The passport of `input.serial` from its verified frames. Throws PASSPORT_NO_FRAMES when there are
 * none, PASSPORT_INPUT when a frame is of another pack or the counters do not increase.
 */
export function buildPassport(input: PassportInput): Passport {
  const acc = new Accumulator(input.serial);
  for (const p of input.frames) acc.add(p);
  const { first, last } = acc;
  if (first === undefined || last === undefined) throw new LedgerError('PASSPORT_NO_FRAMES', `ledger: passport of ${input.serial}: no verified frames of this pack`);
  const parameters = Object.fromEntries(PARAMETER_NAMES.map((n) => [n, parameter(n, PARAMETER_SPECS[n], acc)])) as Record<ParameterName, PassportParameter>;
  const cited = new Map<number, boolean>();
  const witnessed = new Map<number, boolean>();
  for (const p of [...acc.latest.values(), ...acc.baseline.values(), ...acc.months.values()]) witnessed.set(p.frame.counter, p.witnessed);
  for (const prm of Object.values(parameters)) {
    for (const c of [...prm.source, ...(prm.series ?? []).map((x) => x.source)]) cited.set(c.counter, witnessed.get(c.counter) ?? false);
  }
  const unwitnessed = [...cited.values()].filter((w) => !w).length;
  const cert = input.certificate ?? null;
  return {
    schema: PASSPORT_SCHEMA,
    generatedAt: isoTime(input.generatedAt),
    serial: input.serial,
    identifiers: {
      packSerial: input.serial,
      certificateSubject: cert?.subject ?? null,
      certificateSerial: cert?.serial ?? null,
      certificateFingerprint: cert?.fingerprint ?? null,
    },
    frames: {
      considered: acc.considered,
      firstCounter: first.frame.counter,
      lastCounter: last.frame.counter,
      firstDeviceTime: isoTime(first.frame.time),
      lastDeviceTime: isoTime(last.frame.time),
    },
    citations: { frames: cited.size, unwitnessed, allWitnessed: unwitnessed === 0 },
    parameters,
  };
}
