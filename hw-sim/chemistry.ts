/**
 * Cell chemistries of the battery model (docs/hw-sim.md "Battery model"): the open-circuit-voltage
 * curve OCV(SoC) of a lithium-iron-phosphate (LFP) and a nickel-manganese-cobalt (NMC) cell at 25 °C,
 * and the per-chemistry defaults (resistance, heat capacity, efficiency, self-discharge, ageing rates,
 * protection thresholds). The curves are piecewise-linear tables after published typical curves (LFP:
 * a flat 3.2–3.35 V plateau between 10 % and 95 %; NMC: a steady 3.5–4.2 V slope), extended below 0 %
 * into the over-discharge tail and above 100 % into the overcharge rise, so that abuse drives the
 * voltage past the alarm thresholds instead of stopping at a clamp. 0 % is the discharge cutoff and
 * 100 % the charge voltage (the model has no polarisation branch, see the docs).
 *
 * Lookups are on the simulator's hot path (every cell, every step), so each table is resampled once
 * onto a uniform 1 % grid and read with one multiply and one index, with no search.
 */

export type Chemistry = 'LFP' | 'NMC';
export const CHEMISTRIES: readonly Chemistry[] = ['LFP', 'NMC'];

/** Lowest and highest state of charge the model represents (fractions; 0..1 is the normal window). */
export const SOC_MIN = -0.02;
export const SOC_MAX = 1.05;
/** Grid step of the resampled curves: every table breakpoint must lie on it. */
const GRID = 0.01;

/** SoC (fraction) → open-circuit voltage (V), ascending in both. */
export type OcvTable = readonly (readonly [soc: number, volts: number])[];

export const OCV_TABLES: Readonly<Record<Chemistry, OcvTable>> = {
  LFP: [
    [-0.02, 1.2], [-0.01, 2.0], [0.0, 2.5], [0.01, 2.8], [0.02, 2.95], [0.03, 3.02], [0.05, 3.1],
    [0.1, 3.19], [0.15, 3.22], [0.2, 3.24], [0.3, 3.26], [0.4, 3.28], [0.5, 3.29], [0.6, 3.3],
    [0.7, 3.31], [0.8, 3.32], [0.9, 3.33], [0.95, 3.34], [0.97, 3.36], [0.98, 3.38], [0.99, 3.45],
    [1.0, 3.65], [1.02, 3.9], [1.05, 4.2],
  ],
  NMC: [
    [-0.02, 1.5], [-0.01, 2.5], [0.0, 3.0], [0.01, 3.2], [0.02, 3.3], [0.03, 3.36], [0.05, 3.43],
    [0.1, 3.5], [0.15, 3.55], [0.2, 3.58], [0.3, 3.63], [0.4, 3.68], [0.5, 3.74], [0.6, 3.81],
    [0.7, 3.89], [0.8, 3.97], [0.9, 4.07], [0.95, 4.13], [1.0, 4.2], [1.02, 4.35], [1.05, 4.6],
  ],
};

/** A resampled OCV curve with O(1) lookups; see `ocvCurve`. */
export class OcvCurve {
  /** Voltage at SOC_MIN + i·GRID. */
  private readonly v: Float64Array;
  /** Mean OCV over 0..1 (V): the energy per unit of charge of a full 0→100 % discharge at zero current. */
  readonly meanVoltage: number;
  readonly minVoltage: number;
  readonly maxVoltage: number;

  constructor(table: OcvTable) {
    const n = Math.round((SOC_MAX - SOC_MIN) / GRID) + 1;
    this.v = new Float64Array(n);
    const first = table[0];
    const last = table[table.length - 1];
    if (first === undefined || last === undefined || Math.abs(first[0] - SOC_MIN) > 1e-9 || Math.abs(last[0] - SOC_MAX) > 1e-9) {
      throw new Error(`hw-sim: an OCV table must span ${SOC_MIN}..${SOC_MAX}`);
    }
    let j = 0;
    for (let i = 0; i < n; i++) {
      const s = SOC_MIN + i * GRID;
      while (j < table.length - 2 && (table[j + 1]?.[0] ?? Infinity) < s - 1e-12) j++;
      const [s0, v0] = table[j] ?? first;
      const [s1, v1] = table[j + 1] ?? last;
      if (!(s1 > s0) || !(v1 > v0)) throw new Error('hw-sim: an OCV table must be strictly ascending in SoC and voltage');
      this.v[i] = v0 + ((v1 - v0) * (s - s0)) / (s1 - s0);
    }
    // Trapezoid rule on the grid is exact for a piecewise-linear curve whose breakpoints lie on it.
    const i0 = Math.round(-SOC_MIN / GRID);
    let sum = 0;
    for (let i = i0; i < i0 + Math.round(1 / GRID); i++) sum += ((this.v[i] ?? 0) + (this.v[i + 1] ?? 0)) / 2;
    this.meanVoltage = sum * GRID;
    this.minVoltage = first[1];
    this.maxVoltage = last[1];
  }

  /** OCV (V) at `soc`, clamped to the table's ends. */
  at(soc: number): number {
    let x = (soc - SOC_MIN) / GRID;
    const top = this.v.length - 1;
    if (x <= 0) return this.v[0] ?? 0;
    if (x >= top) return this.v[top] ?? 0;
    const i = Math.floor(x);
    x -= i;
    const a = this.v[i] ?? 0;
    return a + ((this.v[i + 1] ?? 0) - a) * x;
  }

  /**
   * dOCV/dSoC (V per unit SoC) of the segment the SoC moves into: the one above `soc` when charging
   * (`up`), below it when discharging. Used to solve a step's current limit implicitly.
   */
  slope(soc: number, up: boolean): number {
    const top = this.v.length - 1;
    let i = Math.floor((soc - SOC_MIN) / GRID);
    if (!up && (soc - SOC_MIN) / GRID === i) i -= 1;
    i = Math.min(Math.max(i, 0), top - 1);
    return ((this.v[i + 1] ?? 0) - (this.v[i] ?? 0)) / GRID;
  }
}

const curves: Record<Chemistry, OcvCurve> = { LFP: new OcvCurve(OCV_TABLES.LFP), NMC: new OcvCurve(OCV_TABLES.NMC) };

/** The shared resampled curve of a chemistry. */
export function ocvCurve(chemistry: Chemistry): OcvCurve {
  return curves[chemistry];
}

/** Capacity-fade and resistance-growth rates (docs/hw-sim.md "Ageing"). */
export interface AgeingParams {
  /** Cycle fade = cycleFade · (stress-weighted equivalent full cycles)^cycleExponent. */
  cycleFade: number;
  cycleExponent: number;
  /** Calendar fade = calendarFade · sqrt(stress-weighted days). */
  calendarFade: number;
  /** Arrhenius temperatures Ea/R (K) of cycle and calendar ageing (calendar also scales self-discharge). */
  cycleActivationK: number;
  calendarActivationK: number;
  /** Charging below platingBelowC multiplies cycle stress by 1 + platingPerK · (platingBelowC − T). */
  platingBelowC: number;
  platingPerK: number;
  /** Throughput below lowSocBelow SoC counts up to (1 + lowSocFactor)× (at 0 %). */
  lowSocBelow: number;
  lowSocFactor: number;
  /** Capacity lost by each cell that is below the deep-discharge voltage when an event starts (fraction). */
  deepDischargeFade: number;
  /** Resistance = R0 · (1 + resistancePerFade · fade); self-discharge likewise with selfDischargePerFade. */
  resistancePerFade: number;
  selfDischargePerFade: number;
}

/** Protection thresholds that set the frame's alarm bits (docs/protocol.md §2.1.2). */
export interface AlarmThresholds {
  cellOverVoltage: number; // V, above
  cellUnderVoltage: number; // V, below
  deepDischargeVoltage: number; // V, below: entry into deep discharge
  deepDischargeRecovery: number; // V, above: the event ends (hysteresis, so one dip is one event)
  imbalanceVoltage: number; // V, max − min cell above
  overTemperatureC: number; // any cell above (the max operating temperature)
  underTemperatureC: number; // any cell below (the min operating temperature)
  overTemperatureChargeC: number; // any cell above while charging
  underTemperatureChargeC: number; // any cell below while charging
  overCurrentChargeC: number; // charge current above this C-rate
  overCurrentDischargeC: number; // discharge current above this C-rate
}

export interface ChemistryParams {
  readonly chemistry: Chemistry;
  readonly nominalVoltage: number; // V per cell
  readonly chargeVoltage: number; // V per cell: CC-CV target, = OCV(100 %)
  readonly cutoffVoltage: number; // V per cell: end of a discharge, = OCV(0 %)
  /** Cell resistance times capacity (Ω·Ah): a 100 Ah LFP cell has 0.05/100 = 0.5 mΩ. */
  readonly resistanceOhmAh: number;
  /** Ea/R (K) of the ohmic resistance: R(T) = R25 · exp(B · (1/T − 1/298.15 K)); about ×2 at 0 °C. */
  readonly resistanceActivationK: number;
  /** Cell heat capacity per Ah (J/K/Ah): specific heat ~1 kJ/(kg·K) over specific energy. */
  readonly heatCapacityPerAh: number;
  readonly coulombicEfficiency: number; // on charge
  readonly selfDischargePer30d: number; // fraction of capacity per 30 days at 25 °C
  readonly balanceStartVoltage: number; // V: passive balancing only above this cell voltage
  readonly ageing: Readonly<AgeingParams>;
  readonly alarms: Readonly<AlarmThresholds>;
}

const TEMPS = {
  overTemperatureC: 60,
  underTemperatureC: -20,
  overTemperatureChargeC: 45,
  underTemperatureChargeC: 0,
} as const;

export const CHEMISTRY_PARAMS: Readonly<Record<Chemistry, ChemistryParams>> = {
  LFP: {
    chemistry: 'LFP',
    nominalVoltage: 3.2,
    chargeVoltage: 3.65,
    cutoffVoltage: 2.5,
    resistanceOhmAh: 0.05,
    resistanceActivationK: 2250,
    heatCapacityPerAh: 20,
    coulombicEfficiency: 0.9995,
    selfDischargePer30d: 0.015,
    balanceStartVoltage: 3.4,
    ageing: {
      cycleFade: 2.8e-4, // with calendar fade: ~80 % after ~3500 EFC at 25 °C
      cycleExponent: 0.75,
      calendarFade: 1.3e-3, // ~2.5 % after one year at 25 °C, 50 % SoC
      cycleActivationK: 3000,
      calendarActivationK: 7000,
      platingBelowC: 15,
      platingPerK: 0.1,
      lowSocBelow: 0.1,
      lowSocFactor: 2,
      deepDischargeFade: 0.003,
      resistancePerFade: 2.5,
      selfDischargePerFade: 2,
    },
    alarms: {
      cellOverVoltage: 3.75,
      cellUnderVoltage: 2.4,
      deepDischargeVoltage: 2.0,
      deepDischargeRecovery: 2.3,
      imbalanceVoltage: 0.1,
      ...TEMPS,
      overCurrentChargeC: 1,
      overCurrentDischargeC: 2,
    },
  },
  NMC: {
    chemistry: 'NMC',
    nominalVoltage: 3.65,
    chargeVoltage: 4.2,
    cutoffVoltage: 3.0,
    resistanceOhmAh: 0.06,
    resistanceActivationK: 2250,
    heatCapacityPerAh: 15,
    coulombicEfficiency: 0.9995,
    selfDischargePer30d: 0.02,
    balanceStartVoltage: 4.0,
    ageing: {
      cycleFade: 6.0e-4, // with calendar fade: ~80 % after ~1200 EFC at 25 °C
      cycleExponent: 0.75,
      calendarFade: 1.8e-3, // ~3.5 % after one year at 25 °C, 50 % SoC
      cycleActivationK: 3000,
      calendarActivationK: 7000,
      platingBelowC: 15,
      platingPerK: 0.1,
      lowSocBelow: 0.1,
      lowSocFactor: 2,
      deepDischargeFade: 0.005,
      resistancePerFade: 2.5,
      selfDischargePerFade: 2,
    },
    alarms: {
      cellOverVoltage: 4.25,
      cellUnderVoltage: 2.9,
      deepDischargeVoltage: 2.5,
      deepDischargeRecovery: 2.8,
      imbalanceVoltage: 0.1,
      ...TEMPS,
      overCurrentChargeC: 1,
      overCurrentDischargeC: 2,
    },
  },
};
