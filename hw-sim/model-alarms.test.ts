// The battery model's alarm bits (docs/protocol.md §2.1.2): each is set by the condition that
// should set it and cleared once the condition ends; and the battery-passport counters: monotonic,
// deep-discharge events counted once per entry, extreme-temperature time counted only when it applies.
import { describe, expect, it } from 'vitest';
import { ALARM_BITS } from '../protocol/index.js';
import { BatteryModel } from './model.js';
import type { Measurements } from './model-measure.js';
import type { PackConfig } from './model-config.js';

type Bit = keyof typeof ALARM_BITS;
const small: PackConfig = { seed: 11, cells: 4, chemistry: 'LFP', capacityAh: 10 };

const has = (m: BatteryModel, bit: Bit): boolean => (m.measure().alarms & ALARM_BITS[bit]) !== 0;

/** Applies a constant C-rate (0 = rest) and steps until `until` holds; returns the simulated seconds taken. */
function drive(m: BatteryModel, cRate: number, until: (m: BatteryModel) => boolean, dt = 10, max = 48 * 3600): number {
  m.setProfile({ kind: 'constant', cRate, seconds: 1e9 });
  for (let t = dt; t <= max; t += dt) {
    m.step(dt);
    if (until(m)) return t;
  }
  throw new Error(`condition not reached within ${max} s at ${cRate} C`);
}

/** Bits other than `bit` that are set. */
const others = (m: BatteryModel, bit: Bit): Bit[] => (Object.keys(ALARM_BITS) as Bit[]).filter((b) => b !== bit && has(m, b));

describe('alarm bits', () => {
  it('cell over-voltage: set by overcharging past the charge voltage, cleared by discharging', () => {
    const m = new BatteryModel({ ...small, initialSoc: 0.9 });
    drive(m, 0.5, (x) => has(x, 'cellOverVoltage'));
    expect(m.maxCellVoltage).toBeGreaterThan(3.75);
    drive(m, -0.5, (x) => !has(x, 'cellOverVoltage'), 10, 3600);
  });

  it('a CC-CV charge to full never raises cell over-voltage', () => {
    const m = new BatteryModel({ ...small, initialSoc: 0.1 }, { kind: 'cccv', cRate: 0.5 });
    while (!m.profileDone) {
      m.step(10);
      expect(has(m, 'cellOverVoltage')).toBe(false);
    }
  });

  it('cell under-voltage: set by discharging past the cutoff, cleared by charging', () => {
    const m = new BatteryModel({ ...small, initialSoc: 0.1 });
    drive(m, -0.5, (x) => has(x, 'cellUnderVoltage'));
    expect(m.minCellVoltage).toBeLessThan(2.4);
    drive(m, 0.5, (x) => !has(x, 'cellUnderVoltage'), 10, 3600);
  });

  it('over-temperature: set above the operating maximum, cleared after cooling', () => {
    const m = new BatteryModel({ ...small, ambientC: 70, initialTempC: 25 });
    drive(m, 0, (x) => has(x, 'overTemperature'), 60);
    expect(m.measure().tempMax).toBeGreaterThan(600);
    m.setAmbient(25);
    drive(m, 0, (x) => !has(x, 'overTemperature'), 60);
  });

  it('over-temperature: set while charging above the charging maximum, not while resting there', () => {
    const m = new BatteryModel({ ...small, ambientC: 50 });
    m.step(10);
    expect(has(m, 'overTemperature')).toBe(false);
    drive(m, 0.2, (x) => has(x, 'overTemperature'), 10, 10);
    drive(m, 0, (x) => !has(x, 'overTemperature'), 10, 10);
  });

  it('under-temperature: set below the operating minimum, cleared after warming', () => {
    const m = new BatteryModel({ ...small, ambientC: -30 });
    drive(m, 0, (x) => has(x, 'underTemperature'), 10, 10);
    m.setAmbient(25);
    drive(m, 0, (x) => !has(x, 'underTemperature'), 60);
  });

  it('under-temperature: set while charging below 0 °C, not while resting there', () => {
    const m = new BatteryModel({ ...small, ambientC: -5 });
    m.step(10);
    expect(has(m, 'underTemperature')).toBe(false);
    drive(m, 0.1, (x) => has(x, 'underTemperature'), 10, 10);
    drive(m, 0, (x) => !has(x, 'underTemperature'), 10, 10);
  });

  it('over-current charge and discharge: set above the C-rate limits, not below them', () => {
    const m = new BatteryModel(small);
    drive(m, 0.9, () => true);
    expect(m.measure().alarms).toBe(0);
    drive(m, 1.2, (x) => has(x, 'overCurrentCharge'), 10, 10);
    expect(others(m, 'overCurrentCharge')).toEqual([]);
    drive(m, -1.9, () => true);
    expect(m.measure().alarms).toBe(0);
    drive(m, -2.5, (x) => has(x, 'overCurrentDischarge'), 10, 10);
    expect(others(m, 'overCurrentDischarge')).toEqual([]);
    drive(m, 0, (x) => x.measure().alarms === 0, 10, 10);
  });

  it('cell imbalance: set when cells sit far apart on the steep end of the curve, cleared on the plateau', () => {
    const m = new BatteryModel({ ...small, cells: 8, initialSoc: 0.05, spread: { soc: 0.03 } });
    m.step(1);
    expect(has(m, 'cellImbalance')).toBe(true);
    expect(m.maxCellVoltage - m.minCellVoltage).toBeGreaterThan(0.1);
    drive(m, 0.5, (x) => x.measure().soc > 350);
    drive(m, 0, (x) => !has(x, 'cellImbalance'), 10, 10);
  });

  it('internal fault: only by injection, until cleared', () => {
    const m = new BatteryModel(small);
    m.step(1);
    expect(has(m, 'internalFault')).toBe(false);
    m.injectFault('internal');
    m.step(1);
    expect(has(m, 'internalFault')).toBe(true);
    m.clearFault('internal');
    m.step(1);
    expect(has(m, 'internalFault')).toBe(false);
  });
});

describe('deep discharge', () => {
  it('is counted once per entry, however often the voltage crosses the threshold inside one event', () => {
    const m = new BatteryModel({ ...small, initialSoc: 0.03 });
    drive(m, -0.2, (x) => has(x, 'deepDischarge'), 5);
    expect(m.measure().deepDischargeEvents).toBe(1);
    let crossings = 0;
    for (let k = 0; k < 6; k++) {
      drive(m, 0.2, (x) => x.minCellVoltage > 2.05, 5, 3600);
      drive(m, -0.2, (x) => x.minCellVoltage < 1.95, 5, 3600);
      crossings++;
      expect(has(m, 'deepDischarge')).toBe(true);
    }
    expect(crossings).toBe(6);
    expect(m.measure().deepDischargeEvents).toBe(1);
    drive(m, 0.2, (x) => !has(x, 'deepDischarge'), 5);
    expect(m.minCellVoltage).toBeGreaterThan(2.3);
    drive(m, -0.2, (x) => has(x, 'deepDischarge'), 5);
    expect(m.measure().deepDischargeEvents).toBe(2);
  });

  it('costs capacity: each event adds a fade penalty to the cells that went below the threshold', () => {
    const m = new BatteryModel({ ...small, initialSoc: 0.03 });
    drive(m, -0.2, (x) => has(x, 'deepDischarge'), 5);
    m.advance(120, 10); // one ageing tick
    expect(Math.max(...m.cellViews().map((c) => c.fade))).toBeGreaterThanOrEqual(0.003);
  });

  it('follows months of storage: self-discharge alone takes an empty pack into deep discharge', () => {
    const m = new BatteryModel({ ...small, initialSoc: 0.01 });
    drive(m, 0, (x) => has(x, 'deepDischarge'), 3600, 365 * 86_400);
    expect(m.measure().deepDischargeEvents).toBe(1);
  });
});

describe('passport counters', () => {
  it('never decrease over a mixed life, and each one moves', () => {
    const m = new BatteryModel({ ...small, initialSoc: 0.2 });
    const keys = ['cycles', 'energyThroughput', 'capacityThroughput', 'deepDischargeEvents', 'overTempSeconds', 'underTempSeconds', 'overTempChargeSeconds', 'underTempChargeSeconds'] as const;
    const seen: Measurements[] = [m.measure()];
    const phase = (ambientC: number, profile: Parameters<BatteryModel['setProfile']>[0], seconds: number): void => {
      m.setAmbient(ambientC);
      m.setProfile(profile);
      for (let t = 0; t < seconds; t += 30) {
        m.step(30);
        seen.push(m.measure());
      }
    };
    phase(25, { kind: 'repeat', times: 3, item: { kind: 'sequence', items: [{ kind: 'cccv' }, { kind: 'discharge' }] } }, 20 * 3600);
    phase(70, { kind: 'constant', cRate: 0.2, seconds: 4 * 3600 }, 4 * 3600);
    phase(-30, { kind: 'constant', cRate: 0.1, seconds: 4 * 3600 }, 4 * 3600);
    phase(25, { kind: 'constant', cRate: -0.5, seconds: 4 * 3600 }, 4 * 3600);
    for (const k of keys) {
      for (let i = 1; i < seen.length; i++) expect(seen[i]![k]).toBeGreaterThanOrEqual(seen[i - 1]![k]);
      expect([k, seen.at(-1)![k]]).not.toEqual([k, seen[0]![k]]);
    }
    const last = seen.at(-1)!;
    expect(last.cycles).toBe(Math.floor(last.capacityThroughput / (2 * last.ratedCapacity)));
  });

  it('counts time at extreme temperature in seconds, and charging time there only while charging', () => {
    const m = new BatteryModel({ ...small, ambientC: 65, initialTempC: 65 });
    m.advance(600, 10);
    expect(m.measure().overTempSeconds).toBe(600);
    expect(m.measure().overTempChargeSeconds).toBe(0);
    m.setProfile({ kind: 'constant', cRate: 0.1, seconds: 300 });
    m.advance(600, 10);
    expect(m.measure().overTempSeconds).toBe(1200);
    expect(m.measure().overTempChargeSeconds).toBe(300);
    expect(m.measure().underTempSeconds).toBe(0);
  });

  it('tracks charge and energy throughput in both directions', () => {
    const m = new BatteryModel({ ...small, initialSoc: 0.5 }, { kind: 'sequence', items: [{ kind: 'constant', cRate: 0.5, seconds: 3600 }, { kind: 'constant', cRate: -0.5, seconds: 3600 }] });
    m.advance(7200, 10);
    const x = m.measure();
    expect(x.capacityThroughput).toBe(10_000); // 5 Ah in + 5 Ah out
    expect(x.energyThroughput).toBeGreaterThan(0.95 * 10 * 4 * 3.29);
    expect(x.energyThroughput).toBeLessThan(1.05 * 10 * 4 * 3.29);
  });

  it('reports a round-trip efficiency that falls as the resistance grows', () => {
    const cyc = { kind: 'repeat' as const, times: 20, item: { kind: 'sequence' as const, items: [{ kind: 'cccv' as const }, { kind: 'discharge' as const }] } };
    const rte = (resistanceOhm: number): number => {
      const m = new BatteryModel({ ...small, resistanceOhm }, cyc);
      while (!m.profileDone) m.step(30);
      return m.measure().roundTripEfficiency;
    };
    const low = rte(0.005);
    expect(low).toBeGreaterThan(950);
    expect(low).toBeLessThan(1000);
    expect(rte(0.02)).toBeLessThan(low - 20);
  });
});
