/**
 * Configuration of the battery model (docs/hw-sim.md "Battery model — parameters"): what a caller
 * may set (`PackConfig`), the fully resolved form with every default filled in (`ResolvedPackConfig`,
 * plain JSON, stored in snapshots so a restored pack keeps its build), and the manufacturing spread
 * that the seed turns into per-cell parameters. Validation lives here because configs arrive from a
 * CLI flag or a state file: a value outside its range is a SimError MODEL_CONFIG naming the field.
 */
import { CHEMISTRIES, CHEMISTRY_PARAMS, ocvCurve, type AgeingParams, type AlarmThresholds, type Chemistry } from './chemistry.js';
import { SimError } from './errors.js';
import { Random } from './random.js';

/** Cell-to-cell manufacturing spread: standard deviations of each parameter (truncated at ±3σ). */
export interface SpreadParams {
  /** Extra capacity above rated shipped by the maker (fraction): cells are binned at or above rated. */
  capacityMargin: number;
  capacity: number; // σ, fraction of rated
  resistance: number; // σ, fraction
  /** σ of (1 − coulombic efficiency), as a fraction of it: cells gain or lose charge at different rates. */
  efficiency: number;
  selfDischarge: number; // σ, fraction
  cooling: number; // σ, fraction: cells in the middle of a pack cool worse than those at the edge
  ageing: number; // σ, fraction of the fade rate
  soc: number; // σ of the initial SoC (absolute)
}

export interface BalancingParams {
  enabled: boolean;
  /** Bleed current through each balancing resistor (A). Default: 0.001 C (0.1 A for 100 Ah). */
  currentA: number;
  /** Bleed only while the highest cell is above this voltage (V). Default: the chemistry's. */
  startVoltage: number;
  /** Bleed cells more than this above the lowest cell (V). */
  delta: number;
}

/** What a caller sets; everything but `seed`, `cells`, `chemistry` and `capacityAh` has a default. */
export interface PackConfig {
  seed: number | string;
  cells: number; // 1..32 in series
  chemistry: Chemistry;
  capacityAh: number; // rated capacity (0, 10000]
  resistanceOhm?: number; // per cell at 25 °C, new; default resistanceOhmAh / capacityAh
  thermalCapacity?: number; // J/K, whole pack; default cells · heatCapacityPerAh · capacityAh
  cooling?: number; // W/K, pack to ambient; default thermalCapacity / 3600 (1 h time constant)
  ambientC?: number; // default 25
  initialSoc?: number; // 0..1, default 0.5
  initialTempC?: number; // default ambientC
  coulombicEfficiency?: number;
  selfDischargePer30d?: number;
  /** Rated (certified) energy (Wh) for the state of certified energy; default: new pack at C/3. */
  certifiedEnergyWh?: number;
  spread?: Partial<SpreadParams>;
  balancing?: Partial<BalancingParams>;
  ageing?: Partial<AgeingParams>;
  alarms?: Partial<AlarmThresholds>;
}

/** A PackConfig with every default resolved; plain JSON. */
export interface ResolvedPackConfig {
  seed: number | string;
  cells: number;
  chemistry: Chemistry;
  capacityAh: number;
  resistanceOhm: number;
  thermalCapacity: number;
  cooling: number;
  ambientC: number;
  initialSoc: number;
  initialTempC: number;
  coulombicEfficiency: number;
  selfDischargePer30d: number;
  certifiedEnergyWh: number;
  spread: SpreadParams;
  balancing: BalancingParams;
  ageing: AgeingParams;
  alarms: AlarmThresholds;
}

export const DEFAULT_SPREAD: Readonly<SpreadParams> = {
  capacityMargin: 0.01,
  capacity: 0.004,
  resistance: 0.03,
  efficiency: 0.1,
  selfDischarge: 0.2,
  cooling: 0.1,
  ageing: 0.05,
  soc: 0.001,
};

/** Reference discharge rate (C) of the certified and remaining energy. */
export const ENERGY_REFERENCE_C = 1 / 3;

function bad(field: string, expected: string, got: unknown): never {
  const shown = got === undefined ? 'undefined' : JSON.stringify(got);
  throw new SimError('MODEL_CONFIG', `hw-sim: pack config ${field} must be ${expected}, got ${shown}`);
}

function num(field: string, v: unknown, lo: number, hi: number, fallback?: number): number {
  const x = v === undefined ? fallback : v;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < lo || x > hi) bad(field, `a number in ${lo}..${hi}`, v);
  return x;
}

function record(field: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(field, 'an object', v);
  return v as Record<string, unknown>;
}

/** Fills `defaults` from `given`, checking every key against `ranges`; unknown keys are errors. */
function resolveGroup<T extends object>(field: string, given: unknown, defaults: Readonly<T>, ranges: Readonly<Record<keyof T, readonly [number, number]>>): T {
  const g = record(field, given);
  for (const k of Object.keys(g)) if (!(k in defaults)) bad(`${field}.${k}`, 'a known parameter', k);
  const out: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(defaults)) {
    if (typeof d === 'boolean') {
      const v = g[k] ?? d;
      if (typeof v !== 'boolean') bad(`${field}.${k}`, 'a boolean', v);
      out[k] = v;
    } else {
      const [lo, hi] = ranges[k as keyof T];
      out[k] = num(`${field}.${k}`, g[k], lo, hi, d as number);
    }
  }
  return out as T;
}

/**
 * Validates a PackConfig (or a ResolvedPackConfig read back from a snapshot) and fills in every
 * default. Throws SimError MODEL_CONFIG naming the first bad field.
 */
export function resolveConfig(config: PackConfig): ResolvedPackConfig {
  const c = record('', config) as Partial<Record<keyof PackConfig, unknown>>;
  const seed = c.seed;
  if (!(typeof seed === 'string' && seed.length <= 256) && !(typeof seed === 'number' && Number.isSafeInteger(seed))) {
    bad('seed', 'a safe integer or a text of at most 256 characters', seed);
  }
  const cells = c.cells;
  if (typeof cells !== 'number' || !Number.isInteger(cells) || cells < 1 || cells > 32) bad('cells', 'an integer in 1..32', cells);
  const chemistry = c.chemistry;
  if (typeof chemistry !== 'string' || !CHEMISTRIES.includes(chemistry as Chemistry)) bad('chemistry', `one of ${CHEMISTRIES.join(', ')}`, chemistry);
  const chem = CHEMISTRY_PARAMS[chemistry as Chemistry];
  const capacityAh = num('capacityAh', c.capacityAh, 0.01, 10_000);
  const resistanceOhm = num('resistanceOhm', c.resistanceOhm, 1e-6, 10, chem.resistanceOhmAh / capacityAh);
  const thermalCapacity = num('thermalCapacity', c.thermalCapacity, 1e-3, 1e9, cells * chem.heatCapacityPerAh * capacityAh);
  const cooling = num('cooling', c.cooling, 1e-9, 1e6, thermalCapacity / 3600);
  const ambientC = num('ambientC', c.ambientC, -50, 100, 25);
  const initialSoc = num('initialSoc', c.initialSoc, 0, 1, 0.5);
  const initialTempC = num('initialTempC', c.initialTempC, -50, 100, ambientC);
  const coulombicEfficiency = num('coulombicEfficiency', c.coulombicEfficiency, 0.9, 1, chem.coulombicEfficiency);
  const selfDischargePer30d = num('selfDischargePer30d', c.selfDischargePer30d, 0, 0.5, chem.selfDischargePer30d);
  const spread = resolveGroup<SpreadParams>('spread', c.spread, DEFAULT_SPREAD, {
    capacityMargin: [0, 0.2], capacity: [0, 0.1], resistance: [0, 0.3], efficiency: [0, 1],
    selfDischarge: [0, 1], cooling: [0, 0.3], ageing: [0, 0.3], soc: [0, 0.05],
  });
  const balancing = resolveGroup<BalancingParams>('balancing', c.balancing, { enabled: true, currentA: 0.001 * capacityAh, startVoltage: chem.balanceStartVoltage, delta: 0.01 }, {
    enabled: [0, 1], currentA: [0, 100], startVoltage: [0, 6], delta: [0.001, 1],
  });
  const ageing = resolveGroup<AgeingParams>('ageing', c.ageing, chem.ageing, {
    cycleFade: [0, 0.1], cycleExponent: [0.3, 1.5], calendarFade: [0, 0.1], cycleActivationK: [0, 20_000],
    calendarActivationK: [0, 20_000], platingBelowC: [-50, 50], platingPerK: [0, 10], lowSocBelow: [0.001, 1],
    lowSocFactor: [0, 100], deepDischargeFade: [0, 0.5], resistancePerFade: [0, 100], selfDischargePerFade: [0, 100],
  });
  const alarms = resolveGroup<AlarmThresholds>('alarms', c.alarms, chem.alarms, {
    cellOverVoltage: [0, 6], cellUnderVoltage: [0, 6], deepDischargeVoltage: [0, 6], deepDischargeRecovery: [0, 6],
    imbalanceVoltage: [0, 6], overTemperatureC: [-55, 150], underTemperatureC: [-55, 150], overTemperatureChargeC: [-55, 150],
    underTemperatureChargeC: [-55, 150], overCurrentChargeC: [0, 1000], overCurrentDischargeC: [0, 1000],
  });
  if (alarms.deepDischargeRecovery <= alarms.deepDischargeVoltage) bad('alarms.deepDischargeRecovery', 'above alarms.deepDischargeVoltage', alarms.deepDischargeRecovery);
  // Certified energy: a new pack at rated capacity delivering 0 → 100 % at C/3 (mean OCV minus the ohmic drop).
  const bolEnergy = cells * capacityAh * (ocvCurve(chemistry as Chemistry).meanVoltage - ENERGY_REFERENCE_C * capacityAh * resistanceOhm);
  const certifiedEnergyWh = num('certifiedEnergyWh', c.certifiedEnergyWh, 0.001, 1e9, bolEnergy);
  return {
    seed, cells, chemistry: chemistry as Chemistry, capacityAh, resistanceOhm, thermalCapacity, cooling,
    ambientC, initialSoc, initialTempC, coulombicEfficiency, selfDischargePer30d, certifiedEnergyWh, spread, balancing, ageing, alarms,
  };
}

/** Per-cell parameters fixed at manufacture, drawn from the seed. */
export interface CellBuild {
  capacityAs: number[]; // A·s at beginning of life
  resistanceOhm: number[]; // at 25 °C, new
  efficiency: number[]; // coulombic efficiency on charge
  selfDischargePerS: number[]; // fraction of capacity per second at 25 °C
  cooling: number[]; // W/K to ambient
  heatCapacity: number[]; // J/K
  ageRate: number[]; // multiplier of the fade rate
  soc: number[]; // initial
}

/** A normal deviate truncated at ±3σ (resampled), so no cell gets a negative capacity or resistance. */
function truncNormal(r: Random): number {
  for (;;) {
    const z = r.normal();
    if (z >= -3 && z <= 3) return z;
  }
}

/**
 * Draws every cell's parameters from the seed. Each quantity has its own sub-stream, so a change to
 * how one is drawn does not shift the others (and pack N+1 shares its first N cells with pack N).
 */
export function buildCells(cfg: ResolvedPackConfig): CellBuild {
  const root = Random.fromSeed(cfg.seed);
  const streams = ['capacity', 'resistance', 'efficiency', 'selfDischarge', 'cooling', 'ageing', 'soc'].map((l) => root.fork(l));
  const [rCap, rRes, rEff, rSd, rCool, rAge, rSoc] = streams as [Random, Random, Random, Random, Random, Random, Random];
  const sp = cfg.spread;
  const n = cfg.cells;
  const out: CellBuild = { capacityAs: [], resistanceOhm: [], efficiency: [], selfDischargePerS: [], cooling: [], heatCapacity: [], ageRate: [], soc: [] };
  const lossBase = 1 - cfg.coulombicEfficiency;
  for (let i = 0; i < n; i++) {
    out.capacityAs.push(cfg.capacityAh * 3600 * (1 + sp.capacityMargin + sp.capacity * truncNormal(rCap)));
    out.resistanceOhm.push(cfg.resistanceOhm * (1 + sp.resistance * truncNormal(rRes)));
    out.efficiency.push(Math.min(1, 1 - lossBase * Math.max(0, 1 + sp.efficiency * truncNormal(rEff))));
    out.selfDischargePerS.push((cfg.selfDischargePer30d / (30 * 86_400)) * Math.max(0, 1 + sp.selfDischarge * truncNormal(rSd)));
    out.cooling.push((cfg.cooling / n) * (1 + sp.cooling * truncNormal(rCool)));
    out.heatCapacity.push(cfg.thermalCapacity / n);
    out.ageRate.push(Math.max(0, 1 + sp.ageing * truncNormal(rAge)));
    out.soc.push(Math.min(1, Math.max(0, cfg.initialSoc + sp.soc * truncNormal(rSoc))));
  }
  return out;
}
