/**
 * The battery model's state and its plain-JSON snapshot (docs/hw-sim.md "Battery model — state").
 * The state is everything the next step depends on and nothing it can recompute: per-cell arrays
 * (typed arrays, for the hot loop) and pack scalars (clock, counters, alarm latches). A snapshot holds
 * the resolved config, the state and the profile's progress; the firmware keeps it in its flash file
 * so a simulated reboot resumes the same pack. JSON numbers round-trip doubles exactly, so a restored
 * model continues bit-for-bit like one that never stopped. Snapshots come back from files, so
 * `readSnapshot` checks every field and length before anything is built from it.
 */
import { SimError } from './errors.js';
import { resolveConfig, type CellBuild, type PackConfig, type ResolvedPackConfig } from './model-config.js';
import type { ProfileSnapshot } from './profile.js';

/** Per-cell quantities, one Float64Array each, indexed by cell (0 = most negative cell). */
export const CELL_KEYS = [
  'soc', // state of charge (fraction; SOC_MIN..SOC_MAX)
  'capBoL', // capacity when new (A·s)
  'cap', // present capacity (A·s)
  'r0', // ohmic resistance when new at 25 °C (Ω)
  'eta', // coulombic efficiency on charge
  'sd', // self-discharge when new at 25 °C (fraction of capacity per s)
  'kCool', // heat transfer to ambient (W/K)
  'heatCap', // heat capacity (J/K)
  'ageRate', // multiplier of the fade rate (manufacturing spread)
  'temp', // temperature (°C)
  'volt', // terminal voltage at the end of the last step (V)
  'stressCyc', // stress-weighted equivalent full cycles
  'stressCal', // stress-weighted calendar time (s)
  'penalty', // capacity lost to deep-discharge events (fraction)
  'fade', // capacity fade (fraction), updated every ageing tick
] as const;
export type CellKey = (typeof CELL_KEYS)[number];

/** Pack scalars; all plain numbers except the deep-discharge latch. */
export const PACK_KEYS = [
  'time', // simulated seconds since the pack was built
  'current', // A of the last step (+ = charge)
  'ambientC',
  'ageClock', // s since the last ageing tick
  'chargeAs', // lifetime charge into the pack (A·s)
  'dischargeAs', // lifetime charge out of the pack (A·s)
  'chargeJ', // lifetime energy into the pack terminals (J)
  'dischargeJ', // lifetime energy out of the pack terminals (J)
  'overTempS',
  'underTempS',
  'overTempChargeS',
  'underTempChargeS',
  'deepEvents',
  'alarms', // alarm bits of the last step
  'faults', // injected faults (bit 0 = internal)
  'rteOut', // energy out, exponentially weighted (J), for the round-trip efficiency
  'rteLoss', // losses, same weighting (J)
] as const;
export type PackKey = (typeof PACK_KEYS)[number];

export type PackState = Record<CellKey, Float64Array> & Record<PackKey, number> & { inDeep: boolean };

export const SNAPSHOT_FORMAT = 'packchain-hw-sim-battery';
export const SNAPSHOT_VERSION = 1;

export interface BatterySnapshot {
  format: typeof SNAPSHOT_FORMAT;
  version: typeof SNAPSHOT_VERSION;
  config: ResolvedPackConfig;
  cells: Record<CellKey, number[]>;
  pack: Record<PackKey, number> & { inDeep: boolean };
  profile: ProfileSnapshot | null;
  /** The profile has finished and the pack rests. */
  profileFinished: boolean;
}

/** The state of a new pack built from `build` (drawn from the seed). */
export function freshState(cfg: ResolvedPackConfig, build: CellBuild, initialRteJ: number, initialRte: number): PackState {
  const n = cfg.cells;
  const zeros = (): Float64Array => new Float64Array(n);
  const st = Object.fromEntries(CELL_KEYS.map((k) => [k, zeros()])) as Record<CellKey, Float64Array>;
  st.soc.set(build.soc);
  st.capBoL.set(build.capacityAs);
  st.cap.set(build.capacityAs);
  st.r0.set(build.resistanceOhm);
  st.eta.set(build.efficiency);
  st.sd.set(build.selfDischargePerS);
  st.kCool.set(build.cooling);
  st.heatCap.set(build.heatCapacity);
  st.ageRate.set(build.ageRate);
  st.temp.fill(cfg.initialTempC);
  const pack = Object.fromEntries(PACK_KEYS.map((k) => [k, 0])) as Record<PackKey, number>;
  pack.ambientC = cfg.ambientC;
  // The round-trip window starts from the new pack's modelled efficiency, so the first frames show a
  // plausible value instead of 0/0; real cycles replace it as energy flows.
  pack.rteOut = initialRteJ * initialRte;
  pack.rteLoss = initialRteJ * (1 - initialRte);
  return { ...st, ...pack, inDeep: false };
}

export function toSnapshot(cfg: ResolvedPackConfig, st: PackState, profile: ProfileSnapshot | null, profileFinished: boolean): BatterySnapshot {
  const cells = Object.fromEntries(CELL_KEYS.map((k) => [k, Array.from(st[k])])) as Record<CellKey, number[]>;
  const pack = Object.fromEntries(PACK_KEYS.map((k) => [k, st[k]])) as Record<PackKey, number>;
  // structuredClone: the caller may mutate or persist the snapshot; it must share nothing with the model.
  return { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, config: structuredClone(cfg), cells, pack: { ...pack, inDeep: st.inDeep }, profile: structuredClone(profile), profileFinished };
}

function bad(what: string): never {
  throw new SimError('MODEL_SNAPSHOT', `hw-sim: battery snapshot ${what}`);
}

/**
 * Validates a snapshot read back from storage and rebuilds the state. Throws SimError MODEL_SNAPSHOT
 * for a wrong format, version, array length or a non-finite number, and MODEL_CONFIG for a config
 * outside its ranges. The profile snapshot is returned unparsed for restoreProfile to check.
 */
export function readSnapshot(json: unknown): { cfg: ResolvedPackConfig; st: PackState; profile: unknown; profileFinished: boolean } {
  if (typeof json !== 'object' || json === null) bad('must be an object');
  const j = json as Partial<Record<keyof BatterySnapshot, unknown>>;
  if (j.format !== SNAPSHOT_FORMAT) bad(`format must be "${SNAPSHOT_FORMAT}"`);
  if (j.version !== SNAPSHOT_VERSION) bad(`version ${String(j.version)} is not ${SNAPSHOT_VERSION}`);
  const cfg = resolveConfig(j.config as PackConfig);
  const cells = j.cells as Record<string, unknown> | null | undefined;
  const pack = j.pack as Record<string, unknown> | null | undefined;
  if (typeof cells !== 'object' || cells === null) bad('cells must be an object');
  if (typeof pack !== 'object' || pack === null) bad('pack must be an object');
  const st = {} as PackState;
  for (const k of CELL_KEYS) {
    const a = cells[k];
    if (!Array.isArray(a) || a.length !== cfg.cells) bad(`cells.${k} must be an array of ${cfg.cells} numbers`);
    const arr = new Float64Array(cfg.cells);
    (a as unknown[]).forEach((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) bad(`cells.${k}[${i}] must be a finite number`);
      arr[i] = x;
    });
    st[k] = arr;
  }
  for (const k of PACK_KEYS) {
    const x = pack[k];
    if (typeof x !== 'number' || !Number.isFinite(x)) bad(`pack.${k} must be a finite number`);
    st[k] = x;
  }
  if (typeof pack.inDeep !== 'boolean') bad('pack.inDeep must be a boolean');
  st.inDeep = pack.inDeep;
  for (let i = 0; i < cfg.cells; i++) {
    if (!((st.cap[i] ?? 0) > 0 && (st.capBoL[i] ?? 0) > 0 && (st.r0[i] ?? 0) > 0 && (st.heatCap[i] ?? 0) > 0 && (st.kCool[i] ?? 0) > 0)) {
      bad(`cell ${i} must have a positive capacity, resistance, heat capacity and cooling`);
    }
  }
  if (st.time < 0 || st.ageClock < 0 || !Number.isInteger(st.alarms) || !Number.isInteger(st.faults) || !Number.isInteger(st.deepEvents)) {
    bad('pack counters must be non-negative (alarms, faults and deepEvents integers)');
  }
  if (typeof j.profileFinished !== 'boolean') bad('profileFinished must be a boolean');
  return { cfg, st, profile: j.profile ?? null, profileFinished: j.profileFinished };
}
