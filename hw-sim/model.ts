/**
 * The battery pack the simulated BMU measures (issue 4, "Must show" 1; equations in docs/hw-sim.md
 * "Battery model"): N cells in series with their own state of charge, capacity, resistance and
 * temperature, driven by a current profile, ageing with throughput, time and temperature, raising the
 * frame's alarm bits and keeping the battery passport's lifetime counters. It is deterministic: the
 * seed fixes every manufacturing spread, the profile's own seed its randomness, and `step(dt)` is a
 * pure function of the state, so the same seed, profile and steps give bit-identical measurements.
 * It has no clock: the caller chooses how much simulated time passes per step (time acceleration is
 * the firmware's `speed` × wall time, passed to `advance`). The hot loop runs over typed arrays with
 * no allocation, because a fleet steps hundreds of packs every simulated second.
 */
import { CHEMISTRY_PARAMS, ocvCurve, SOC_MAX, SOC_MIN, type OcvCurve } from './chemistry.js';
import { SimError } from './errors.js';
import { buildCells, resolveConfig, type PackConfig, type ResolvedPackConfig } from './model-config.js';
import { measure, packView, type Measurements } from './model-measure.js';
import { freshState, readSnapshot, toSnapshot, type BatterySnapshot, type PackState } from './model-state.js';
import { createProfile, restoreProfile, saveProfile, type Profile, type ProfileContext, type ProfileSpec } from './profile.js';
import { ALARM_BITS } from '../protocol/index.js';

/** Largest single step (s): beyond an hour the thermal and ageing updates are still stable, but a profile's phases blur. */
export const MAX_STEP_SECONDS = 3600;
/** Ageing (fade, resistance growth) is re-evaluated every this many simulated seconds, not every step. */
export const AGEING_INTERVAL_SECONDS = 60;
/** Round-trip efficiency forgets energy with this window, in multiples of the certified energy (~10 cycles). */
const RTE_WINDOW_ENERGIES = 20;
const T_REF_INV = 1 / 298.15;
const KELVIN = 273.15;

export type FaultName = 'internal';
const FAULT_BITS: Readonly<Record<FaultName, number>> = { internal: 1 };

/** One cell as the tests and the docs see it (SI units). */
export interface CellView {
  soc: number;
  voltage: number;
  temperatureC: number;
  capacityAh: number;
  resistanceOhm: number;
  fade: number;
  balancing: boolean;
}

export class BatteryModel implements ProfileContext {
  readonly config: Readonly<ResolvedPackConfig>;
  private readonly st: PackState;
  private readonly curve: OcvCurve;
  private profile: Profile | null = null;
  private profileFinished = false;
  // Derived from the state (recomputed on restore, never persisted).
  private readonly rNow: Float64Array; // resistance at the present temperature and age (Ω)
  private readonly rAge: Float64Array; // ageing factor of the resistance
  private readonly decay: Float64Array; // exp(−k·dt/C) per cell for `decayDt`
  private readonly bleeding: Uint8Array;
  private decayDt = NaN;
  private vMin = 0;
  private vMax = 0;

  /** Builds a new pack. Throws SimError MODEL_CONFIG (bad config) or PROFILE_SPEC (bad profile). */
  constructor(config: PackConfig, profile?: Profile | ProfileSpec | null) {
    const cfg = resolveConfig(config);
    const curve = ocvCurve(cfg.chemistry);
    const iRef = 0.5 * cfg.capacityAh;
    const drop = iRef * cfg.resistanceOhm;
    const rte0 = (cfg.coulombicEfficiency * (curve.meanVoltage - drop)) / (curve.meanVoltage + drop);
    this.config = cfg;
    this.curve = curve;
    this.st = freshState(cfg, buildCells(cfg), RTE_WINDOW_ENERGIES * cfg.certifiedEnergyWh * 3600, rte0);
    [this.rNow, this.rAge, this.decay, this.bleeding] = [new Float64Array(cfg.cells), new Float64Array(cfg.cells), new Float64Array(cfg.cells), new Uint8Array(cfg.cells)];
    this.derive();
    for (let i = 0; i < cfg.cells; i++) this.st.volt[i] = curve.at(this.st.soc[i] ?? 0);
    this.extremes();
    this.setProfile(profile ?? null);
  }

  /** Rebuilds a pack from `snapshot()`. Throws SimError MODEL_SNAPSHOT, MODEL_CONFIG or PROFILE_SPEC. */
  static restore(json: unknown): BatteryModel {
    const { cfg, st, profile, profileFinished } = readSnapshot(json);
    const m = new BatteryModel(cfg);
    Object.assign(m.st, st);
    m.derive();
    m.extremes();
    m.profile = profile === null ? null : restoreProfile(profile);
    m.profileFinished = profileFinished;
    return m;
  }

  /** The complete state as plain JSON (no typed arrays, nothing shared with the model). */
  snapshot(): BatterySnapshot {
    return toSnapshot(this.config, this.st, this.profile ? saveProfile(this.profile) : null, this.profileFinished);
  }

  /** Attaches a charger/load (a new profile starts from its beginning); null leaves the pack at rest. */
  setProfile(profile: Profile | ProfileSpec | null): void {
    this.profile = profile === null ? null : 'next' in profile ? profile : createProfile(profile);
    this.profileFinished = false;
  }

  /** True once the attached profile has finished (the pack then rests). */
  get profileDone(): boolean {
    return this.profile === null || this.profileFinished;
  }

  setAmbient(celsius: number): void {
    if (!Number.isFinite(celsius) || celsius < -50 || celsius > 100) throw new SimError('MODEL_ARGUMENT', `hw-sim: ambient temperature must be -50..100 °C, got ${celsius}`);
    this.st.ambientC = celsius;
  }

  /** Raises a fault the physics cannot produce (internal fault: bit 8) until `clearFault`. */
  injectFault(name: FaultName): void {
    this.st.faults |= faultBit(name);
  }
  clearFault(name: FaultName): void {
    this.st.faults &= ~faultBit(name);
  }

  // ProfileContext: the ratings and current limits a charger reads from the BMS.
  get cells(): number {
    return this.config.cells;
  }
  get ratedCapacityAh(): number {
    return this.config.capacityAh;
  }
  get chargeVoltage(): number {
    return CHEMISTRY_PARAMS[this.config.chemistry].chargeVoltage;
  }
  get cutoffVoltage(): number {
    return CHEMISTRY_PARAMS[this.config.chemistry].cutoffVoltage;
  }

  /**
   * Largest charge current (A) that keeps every cell ≤ `cellVoltage` at the end of a `dt` step. Solved
   * implicitly on the OCV segment the cell moves into, V = OCV(s) + g·η·I·dt/Q + I·R, so a CV phase is
   * stable at any step size.
   */
  maxChargeCurrent(cellVoltage: number, dt: number): number {
    const { st, curve, rNow } = this;
    let lim = Infinity;
    for (let i = 0; i < this.config.cells; i++) {
      const s = st.soc[i] ?? 0;
      const eta = st.eta[i] ?? 1;
      const x = (cellVoltage - curve.at(s)) / ((rNow[i] ?? 0) + (curve.slope(s, true) * eta * dt) / (st.cap[i] ?? 1));
      if (x < lim) lim = x;
    }
    return lim > 0 ? lim : 0;
  }

  /** Largest discharge current magnitude (A) that keeps every cell ≥ `cellVoltage` at the end of a `dt` step. */
  maxDischargeCurrent(cellVoltage: number, dt: number): number {
    const { st, curve, rNow } = this;
    let lim = Infinity;
    for (let i = 0; i < this.config.cells; i++) {
      const s = st.soc[i] ?? 0;
      const x = (curve.at(s) - cellVoltage) / ((rNow[i] ?? 0) + (curve.slope(s, false) * dt) / (st.cap[i] ?? 1));
      if (x < lim) lim = x;
    }
    return lim > 0 ? lim : 0;
  }

  /** Simulated seconds since the pack was built. */
  get time(): number {
    return this.st.time;
  }
  /** Pack current of the last step (A, + = charge). */
  get current(): number {
    return this.st.current;
  }
  /** Usable state of charge of the string (fraction). */
  get soc(): number {
    return packView(this.st, this.config.cells).soc;
  }
  get minCellVoltage(): number {
    return this.vMin;
  }
  get maxCellVoltage(): number {
    return this.vMax;
  }

  cellViews(): CellView[] {
    const { st } = this;
    return Array.from({ length: this.config.cells }, (_, i) => ({
      soc: st.soc[i] ?? 0, voltage: st.volt[i] ?? 0, temperatureC: st.temp[i] ?? 0, capacityAh: (st.cap[i] ?? 0) / 3600,
      resistanceOhm: this.rNow[i] ?? 0, fade: st.fade[i] ?? 0, balancing: this.bleeding[i] === 1,
    }));
  }

  /** The frame's battery fields, in frame units and ranges (see Measurements). Does not change the model. */
  measure(): Measurements {
    return measure(this.config, this.curve, this.st, this.rNow, this.cutoffVoltage);
  }

  /** Steps until `seconds` of simulated time have passed, at most `maxStep` s per step. Returns the step count. */
  advance(seconds: number, maxStep = 1): number {
    if (!(seconds >= 0 && seconds < 1e12) || !(maxStep > 0)) throw new SimError('MODEL_ARGUMENT', `hw-sim: advance(${seconds}, ${maxStep}) needs seconds ≥ 0 and maxStep > 0`);
    let left = seconds;
    let n = 0;
    while (left > 1e-9) {
      const dt = Math.min(maxStep, left, MAX_STEP_SECONDS);
      this.step(dt);
      left -= dt;
      n++;
    }
    return n;
  }

  /** Advances the pack by `dt` simulated seconds (0 < dt ≤ MAX_STEP_SECONDS). Throws SimError MODEL_ARGUMENT. */
  step(dt: number): void {
    if (!(dt > 0 && dt <= MAX_STEP_SECONDS)) throw new SimError('MODEL_ARGUMENT', `hw-sim: step size must be in (0, ${MAX_STEP_SECONDS}] s, got ${dt}`);
    const I = this.nextCurrent(dt);
    const { st, curve, rNow, config: cfg } = this;
    const n = cfg.cells;
    const ag = cfg.ageing;
    const chem = CHEMISTRY_PARAMS[cfg.chemistry];
    if (dt !== this.decayDt) this.cacheDecay(dt);
    const { soc, cap, eta, sd, temp, volt, kCool, stressCyc, stressCal, fade } = st;
    const amb = st.ambientC;
    const charging = I > 0;
    // Passive balancing: while not discharging and the top cell is near full, bleed every cell more
    // than `delta` above the lowest (decided on the last step's voltages, as a BMS would).
    const bal = cfg.balancing;
    const balOn = bal.enabled && I >= 0 && this.vMax > bal.startVoltage;
    const bleedAs = bal.currentA * dt;
    let vPack = 0;
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const R = rNow[i] ?? 0;
      const T = temp[i] ?? 0;
      const s = soc[i] ?? 0;
      const c = cap[i] ?? 1;
      const q = charging ? I * (eta[i] ?? 1) * dt : I * dt; // A·s into the cell's active material
      const x = 1 / (T + KELVIN) - T_REF_INV;
      const fCal = Math.exp(-ag.calendarActivationK * x);
      const bleeding = balOn && (volt[i] ?? 0) > this.vMin + bal.delta;
      this.bleeding[i] = bleeding ? 1 : 0;
      const sdFrac = (sd[i] ?? 0) * fCal * (1 + ag.selfDischargePerFade * (fade[i] ?? 0)) * dt;
      let s1 = s + (q - (bleeding ? bleedAs : 0)) / c - sdFrac;
      s1 = s1 < SOC_MIN ? SOC_MIN : s1 > SOC_MAX ? SOC_MAX : s1;
      soc[i] = s1;
      // Ageing stress: throughput (half a cycle per capacity moved), weighted by temperature, plating and low SoC.
      if (q !== 0) {
        let w = Math.exp(-ag.cycleActivationK * x);
        if (charging && T < ag.platingBelowC) w *= 1 + ag.platingPerK * (ag.platingBelowC - T);
        if (s < ag.lowSocBelow) w *= 1 + (ag.lowSocFactor * (ag.lowSocBelow - (s > 0 ? s : 0))) / ag.lowSocBelow;
        stressCyc[i] = (stressCyc[i] ?? 0) + ((q < 0 ? -q : q) / c) * 0.5 * w;
      }
      stressCal[i] = (stressCal[i] ?? 0) + dt * fCal * (0.5 + (s < 0 ? 0 : s > 1 ? 1 : s));
      const ocv = curve.at(s1);
      const v = ocv + I * R;
      volt[i] = v;
      vPack += v;
      // Heat: ohmic I²R plus, on charge, the side reactions that take the coulombic loss.
      const heat = I * I * R + (charging ? I * (1 - (eta[i] ?? 1)) * ocv : 0);
      loss += heat * dt + (bleeding ? bleedAs * v : 0);
      // Exact solution of C·dT/dt = P − k·(T − T_amb) over the step (stable for any dt).
      const teq = amb + heat / (kCool[i] ?? 1);
      const t1 = teq + (T - teq) * (this.decay[i] ?? 0);
      temp[i] = t1;
      rNow[i] = (st.r0[i] ?? 0) * (this.rAge[i] ?? 1) * Math.exp(chem.resistanceActivationK * (1 / (t1 + KELVIN) - T_REF_INV));
    }
    this.extremes();
    this.account(I, dt, vPack, loss);
    st.ageClock += dt;
    if (st.ageClock >= AGEING_INTERVAL_SECONDS) {
      st.ageClock = 0;
      this.age();
    }
    st.time += dt;
  }

  private nextCurrent(dt: number): number {
    if (this.profile === null || this.profileFinished) return 0;
    const i = this.profile.next(this, dt);
    if (i === null) {
      this.profileFinished = true;
      return 0;
    }
    if (!Number.isFinite(i)) throw new Error(`hw-sim: invariant: profile ${this.profile.spec.kind} produced current ${i}`);
    return i;
  }

  /** Counters, round-trip window, deep-discharge latch and alarm bits after a step at current I. */
  private account(I: number, dt: number, vPack: number, loss: number): void {
    const { st, config: cfg } = this;
    const al = cfg.alarms;
    const charging = I > 0;
    const e = (I < 0 ? -I : I) * vPack * dt;
    if (charging) {
      st.chargeAs += I * dt;
      st.chargeJ += e;
    } else if (I < 0) {
      st.dischargeAs -= I * dt;
      st.dischargeJ += e;
    }
    if (I !== 0) {
      const keep = Math.exp(-e / (RTE_WINDOW_ENERGIES * cfg.certifiedEnergyWh * 3600));
      st.rteOut = st.rteOut * keep + (I < 0 ? e : 0);
      st.rteLoss = st.rteLoss * keep;
    }
    st.rteLoss += loss;
    let tMin = Infinity;
    let tMax = -Infinity;
    for (const t of st.temp) {
      if (t < tMin) tMin = t;
      if (t > tMax) tMax = t;
    }
    const hot = tMax > al.overTemperatureC;
    const cold = tMin < al.underTemperatureC;
    const hotCharge = charging && tMax > al.overTemperatureChargeC;
    const coldCharge = charging && tMin < al.underTemperatureChargeC;
    if (hot) st.overTempS += dt;
    if (cold) st.underTempS += dt;
    if (hotCharge) st.overTempChargeS += dt;
    if (coldCharge) st.underTempChargeS += dt;
    if (!st.inDeep && this.vMin < al.deepDischargeVoltage) {
      st.inDeep = true;
      st.deepEvents += 1;
      for (let i = 0; i < cfg.cells; i++) if ((st.volt[i] ?? 0) < al.deepDischargeVoltage) st.penalty[i] = (st.penalty[i] ?? 0) + cfg.ageing.deepDischargeFade;
    } else if (st.inDeep && this.vMin > al.deepDischargeRecovery) {
      st.inDeep = false;
    }
    const B = ALARM_BITS;
    st.alarms =
      (this.vMax > al.cellOverVoltage ? B.cellOverVoltage : 0) |
      (this.vMin < al.cellUnderVoltage ? B.cellUnderVoltage : 0) |
      (hot || hotCharge ? B.overTemperature : 0) |
      (cold || coldCharge ? B.underTemperature : 0) |
      (I > al.overCurrentChargeC * cfg.capacityAh ? B.overCurrentCharge : 0) |
      (-I > al.overCurrentDischargeC * cfg.capacityAh ? B.overCurrentDischarge : 0) |
      (this.vMax - this.vMin > al.imbalanceVoltage ? B.cellImbalance : 0) |
      (st.inDeep ? B.deepDischarge : 0) |
      (st.faults & FAULT_BITS.internal ? B.internalFault : 0);
    st.current = I;
  }

  /** Ageing tick: fade = rate · (a · EFC_w^z + b · √days_w) + deep-discharge penalties; capacity and resistance follow. */
  private age(): void {
    const { st, config: cfg } = this;
    const ag = cfg.ageing;
    for (let i = 0; i < cfg.cells; i++) {
      const f = (st.ageRate[i] ?? 1) * (ag.cycleFade * Math.pow(st.stressCyc[i] ?? 0, ag.cycleExponent) + ag.calendarFade * Math.sqrt((st.stressCal[i] ?? 0) / 86_400)) + (st.penalty[i] ?? 0);
      // Fade only grows (every term is monotone); the cap keeps a worn-out cell's capacity positive.
      st.fade[i] = Math.min(0.95, Math.max(st.fade[i] ?? 0, f));
      st.cap[i] = (st.capBoL[i] ?? 0) * (1 - (st.fade[i] ?? 0));
    }
    this.derive();
  }

  /** Recomputes the derived arrays from the state (after a tick or a restore). */
  private derive(): void {
    const { st, config: cfg } = this;
    const kR = CHEMISTRY_PARAMS[cfg.chemistry].resistanceActivationK;
    for (let i = 0; i < cfg.cells; i++) {
      this.rAge[i] = 1 + cfg.ageing.resistancePerFade * (st.fade[i] ?? 0);
      this.rNow[i] = (st.r0[i] ?? 0) * (this.rAge[i] ?? 1) * Math.exp(kR * (1 / ((st.temp[i] ?? 0) + KELVIN) - T_REF_INV));
    }
  }

  private extremes(): void {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of this.st.volt) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.vMin = lo;
    this.vMax = hi;
  }

  private cacheDecay(dt: number): void {
    const { st } = this;
    for (let i = 0; i < this.config.cells; i++) this.decay[i] = Math.exp((-(st.kCool[i] ?? 0) * dt) / (st.heatCap[i] ?? 1));
    this.decayDt = dt;
  }
}

function faultBit(name: FaultName): number {
  const bit = (FAULT_BITS as Record<string, number | undefined>)[name];
  if (bit === undefined) throw new SimError('MODEL_ARGUMENT', `hw-sim: unknown fault ${JSON.stringify(name)} (known: ${Object.keys(FAULT_BITS).join(', ')})`);
  return bit;
}
