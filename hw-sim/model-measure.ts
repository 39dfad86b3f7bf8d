/**
 * What the BMU measures and derives from the battery model's state, in the state-of-health frame's
 * integer units (docs/protocol.md §2.1.1: mV, mA, 0.1 °C, ‰, mAh, µΩ, Wh, W, s). Every value
 * is rounded and clamped to its field's range from protocol's FRAME_FIELDS, so whatever the pack is
 * doing, `encodeFrame({ v: 1, serial, counter, time, firmware, ...measurements })` never throws.
 * The derived passport quantities (docs/hw-sim.md §2.10 "Frame fields") are computed here, from the
 * state, so a measurement never changes the model.
 */
import { FRAME_FIELD_BY_NAME, type FrameFieldName, type SohFrame } from '../protocol/index.js';
import type { OcvCurve } from './chemistry.js';
import { ENERGY_REFERENCE_C, type ResolvedPackConfig } from './model-config.js';
import type { PackState } from './model-state.js';

/** Every frame field the battery determines: all but the firmware's v, serial, counter, time and firmware. */
export type Measurements = Required<Omit<SohFrame, 'v' | 'serial' | 'counter' | 'time' | 'firmware'>>;

/** Reference state of charge of the power capability (the passport compares it across the pack's life). */
export const POWER_REFERENCE_SOC = 0.5;

const clamp01 = (x: number): number => (x < 0 ? 0 : x > 1 ? 1 : x);

/** Rounds to an integer inside the field's range (a broken invariant if the model produced NaN). */
function fit(name: FrameFieldName, x: number, round: (x: number) => number = Math.round): number {
  const f = FRAME_FIELD_BY_NAME.get(name);
  if (f === undefined || Number.isNaN(x)) throw new Error(`hw-sim: invariant: measurement ${name} is ${x}`);
  const v = round(x) + 0; // + 0 turns −0 into 0
  return v < f.min ? f.min : v > f.max ? f.max : v;
}

/** Quantities of the pack as a whole that the model and the measurement both need. */
export interface PackView {
  /** Usable SoC of the series string: charge left before the first cell empties over that plus room before the first cell is full. */
  soc: number;
  /** Capacity of the string (A·s): the weakest cell's. */
  capacity: number;
}

export function packView(st: PackState, n: number): PackView {
  let avail = Infinity;
  let room = Infinity;
  let cap = Infinity;
  for (let i = 0; i < n; i++) {
    const c = st.cap[i] ?? 0;
    const s = clamp01(st.soc[i] ?? 0);
    avail = Math.min(avail, s * c);
    room = Math.min(room, (1 - s) * c);
    cap = Math.min(cap, c);
  }
  return { soc: avail + room > 0 ? avail / (avail + room) : 0, capacity: cap };
}

/** Resistance of cell i at 25 °C with its present ageing (Ω). */
function r25(cfg: ResolvedPackConfig, st: PackState, i: number): number {
  return (st.r0[i] ?? 0) * (1 + cfg.ageing.resistancePerFade * (st.fade[i] ?? 0));
}

/**
 * Discharge power (W) the pack can deliver at POWER_REFERENCE_SOC and 25 °C with every cell at or
 * above the cutoff voltage, as an HPPC test derives it (the USABC/FreedomCAR "available power" at the
 * minimum voltage): I = min_i (OCV − V_cut) / R_i, P = I · Σ_i (OCV − I · R_i). It is the ohmic limit,
 * not the BMS's current limit, and falls as 1/R, which is what the passport's power fade tracks.
 */
export function powerCapability(cfg: ResolvedPackConfig, curve: OcvCurve, st: PackState, cutoff: number): number {
  const ocv = curve.at(POWER_REFERENCE_SOC);
  let imax = Infinity;
  for (let i = 0; i < cfg.cells; i++) imax = Math.min(imax, (ocv - cutoff) / r25(cfg, st, i));
  let p = 0;
  for (let i = 0; i < cfg.cells; i++) p += imax * (ocv - imax * r25(cfg, st, i));
  return Math.max(0, p);
}

/** Energy (Wh) a full pack delivers now at C/3 and 25 °C: string capacity × Σ_i (mean OCV − I·R_i). */
export function remainingEnergy(cfg: ResolvedPackConfig, curve: OcvCurve, st: PackState, capacityAs: number): number {
  const iRef = ENERGY_REFERENCE_C * cfg.capacityAh;
  let v = 0;
  for (let i = 0; i < cfg.cells; i++) v += curve.meanVoltage - iRef * r25(cfg, st, i);
  return Math.max(0, (capacityAs / 3600) * v);
}

const CELL_FIELD = FRAME_FIELD_BY_NAME.get('cells');
const CELL_MIN = CELL_FIELD?.itemMin ?? 0;
const CELL_MAX = CELL_FIELD?.itemMax ?? 0;

/**
 * The frame's battery fields from the state. `rNow` is each cell's resistance at its present
 * temperature and age (Ω), kept by the model; `cutoff` the per-cell discharge cutoff (V).
 */
export function measure(cfg: ResolvedPackConfig, curve: OcvCurve, st: PackState, rNow: Float64Array, cutoff: number): Measurements {
  const n = cfg.cells;
  const view = packView(st, n);
  const ratedAs = cfg.capacityAh * 3600;
  let vPack = 0;
  let tMin = Infinity;
  let tMax = -Infinity;
  let rPack = 0;
  let sd = 0;
  const cells: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = st.volt[i] ?? 0;
    const t = st.temp[i] ?? 0;
    vPack += v;
    const mv = Math.round(v * 1000) + 0;
    cells.push(mv < CELL_MIN ? CELL_MIN : mv > CELL_MAX ? CELL_MAX : mv);
    tMin = Math.min(tMin, t);
    tMax = Math.max(tMax, t);
    rPack += rNow[i] ?? 0;
    sd += (st.sd[i] ?? 0) * (1 + cfg.ageing.selfDischargePerFade * (st.fade[i] ?? 0));
  }
  const energy = remainingEnergy(cfg, curve, st, view.capacity);
  const throughputAs = st.chargeAs + st.dischargeAs;
  return {
    soc: fit('soc', view.soc * 1000),
    soh: fit('soh', (view.capacity / ratedAs) * 1000),
    voltage: fit('voltage', vPack * 1000),
    current: fit('current', st.current * 1000),
    tempMin: fit('tempMin', tMin * 10),
    tempMax: fit('tempMax', tMax * 10),
    cycles: fit('cycles', throughputAs / (2 * ratedAs), Math.floor),
    cells,
    remainingCapacity: fit('remainingCapacity', view.capacity / 3.6),
    resistance: fit('resistance', rPack * 1e6),
    alarms: fit('alarms', st.alarms),
    ratedCapacity: fit('ratedCapacity', cfg.capacityAh * 1000),
    energyThroughput: fit('energyThroughput', (st.chargeJ + st.dischargeJ) / 3600, Math.floor),
    capacityThroughput: fit('capacityThroughput', throughputAs / 3.6, Math.floor),
    powerCapability: fit('powerCapability', powerCapability(cfg, curve, st, cutoff)),
    roundTripEfficiency: fit('roundTripEfficiency', st.rteOut + st.rteLoss > 0 ? (1000 * st.rteOut) / (st.rteOut + st.rteLoss) : 0),
    selfDischarge: fit('selfDischarge', (sd / n) * 30 * 86_400 * 1000),
    deepDischargeEvents: fit('deepDischargeEvents', st.deepEvents),
    overTempSeconds: fit('overTempSeconds', st.overTempS, Math.floor),
    underTempSeconds: fit('underTempSeconds', st.underTempS, Math.floor),
    overTempChargeSeconds: fit('overTempChargeSeconds', st.overTempChargeS, Math.floor),
    underTempChargeSeconds: fit('underTempChargeSeconds', st.underTempChargeS, Math.floor),
    certifiedEnergy: fit('certifiedEnergy', (energy / cfg.certifiedEnergyWh) * 1000),
    remainingEnergy: fit('remainingEnergy', energy),
  };
}
