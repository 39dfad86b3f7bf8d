// Behaviour of the battery model: determinism, charge/discharge dynamics, CC-CV, OCV bounds,
// temperature, ageing, imbalance, snapshot continuity, and that every measurement is a valid frame
// (protocol's encodeFrame → decodeFrame), including a fast-check property over random packs and loads.
// Alarm bits and passport counters are in model-alarms.test.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, type SohFrame } from '../protocol/index.js';
import { CHEMISTRY_PARAMS, ocvCurve } from './chemistry.js';
import { BatteryModel } from './model.js';
import type { Measurements } from './model-measure.js';
import type { PackConfig } from './model-config.js';
import type { ProfileSpec } from './profile.js';

const base: PackConfig = { seed: 1, cells: 8, chemistry: 'NMC', capacityAh: 20 };
const cycle = (times: number): ProfileSpec => ({
  kind: 'repeat', times,
  item: { kind: 'sequence', items: [{ kind: 'cccv', cRate: 0.5 }, { kind: 'rest', seconds: 600 }, { kind: 'discharge', cRate: 0.5 }, { kind: 'rest', seconds: 600 }] },
});

function frameOf(m: Measurements): SohFrame {
  return { v: 1, serial: 'PACK-0001', counter: 1, time: 1_767_225_600_000, firmware: '1.0.0', ...m };
}

/** Measurements after each of `steps` steps of `dt` s. */
function trace(m: BatteryModel, steps: number, dt: number): Measurements[] {
  return Array.from({ length: steps }, () => {
    m.step(dt);
    return m.measure();
  });
}

describe('determinism', () => {
  const profile: ProfileSpec = { kind: 'sequence', items: [{ kind: 'drive', seconds: 3000, seed: 3 }, { kind: 'cccv' }] };

  it('replays bit-identical measurements for the same seed, profile and steps', () => {
    expect(trace(new BatteryModel(base, profile), 2000, 3)).toEqual(trace(new BatteryModel(base, profile), 2000, 3));
  });

  it('gives a different pack for a different seed', () => {
    const a = new BatteryModel(base).cellViews().map((c) => c.capacityAh);
    const b = new BatteryModel({ ...base, seed: 2 }).cellViews().map((c) => c.capacityAh);
    expect(a).not.toEqual(b);
    expect(trace(new BatteryModel(base, profile), 50, 3)).not.toEqual(trace(new BatteryModel({ ...base, seed: 2 }, profile), 50, 3));
  });
});

describe('state of charge and voltage', () => {
  it('rises at every step while charging and falls at every step while discharging', () => {
    const m = new BatteryModel({ ...base, initialSoc: 0.5 }, { kind: 'constant', cRate: 0.5, seconds: 1800 });
    let prev = m.cellViews();
    for (let k = 0; k < 180; k++) {
      m.step(10);
      const now = m.cellViews();
      now.forEach((c, i) => {
        expect(c.soc).toBeGreaterThan(prev[i]!.soc);
      });
      prev = now;
    }
    m.setProfile({ kind: 'constant', cRate: -0.5, seconds: 1800 });
    for (let k = 0; k < 180; k++) {
      m.step(10);
      const now = m.cellViews();
      now.forEach((c, i) => {
        expect(c.soc).toBeLessThan(prev[i]!.soc);
      });
      prev = now;
    }
  });

  it('counts charge in with the coulombic efficiency: a charge/discharge of equal Ah leaves the pack lower', () => {
    const m = new BatteryModel({ ...base, selfDischargePer30d: 0, balancing: { enabled: false } }, { kind: 'sequence', items: [{ kind: 'constant', cRate: 0.5, seconds: 3600 }, { kind: 'constant', cRate: -0.5, seconds: 3600 }] });
    const before = m.cellViews().map((c) => c.soc);
    m.advance(7200, 10);
    m.cellViews().forEach((c, i) => {
      expect(c.soc).toBeLessThan(before[i]!);
      expect(c.soc).toBeGreaterThan(before[i]! - 0.002);
    });
  });

  it.each(['LFP', 'NMC'] as const)('%s: CC-CV ends near full with the current tapering and no cell above the charge voltage', (chemistry) => {
    const m = new BatteryModel({ ...base, chemistry, initialSoc: 0.2 }, { kind: 'cccv', cRate: 0.5, cutoffC: 0.05 });
    const currents: number[] = [];
    while (!m.profileDone) {
      m.step(10);
      if (m.current > 0) currents.push(m.current); // the step that finds the profile finished rests
      expect(m.maxCellVoltage).toBeLessThanOrEqual(CHEMISTRY_PARAMS[chemistry].chargeVoltage + 0.002);
      expect(m.time).toBeLessThan(6 * 3600);
    }
    expect(currents[0]).toBeCloseTo(10, 9); // 0.5 C of 20 Ah
    const cv = currents.findIndex((i) => i < 10 - 1e-9);
    expect(cv).toBeGreaterThan(0);
    for (let k = cv + 1; k < currents.length; k++) expect(currents[k]).toBeLessThanOrEqual(currents[k - 1]! + 1e-9);
    expect(currents.at(-1)).toBeLessThan(0.1 * 20);
    expect(currents.at(-1)).toBeGreaterThanOrEqual(0.05 * 20);
    expect(m.measure().soc).toBeGreaterThanOrEqual(985);
  });

  it('keeps cell voltages at OCV + I·R, inside the charge/cutoff window under its own chargers and loads', () => {
    for (const chemistry of ['LFP', 'NMC'] as const) {
      const curve = ocvCurve(chemistry);
      const { chargeVoltage, cutoffVoltage } = CHEMISTRY_PARAMS[chemistry];
      const m = new BatteryModel({ ...base, chemistry }, { kind: 'sequence', items: [cycle(2), { kind: 'drive', seconds: 7200, seed: 1 }] });
      while (!m.profileDone) {
        m.step(20);
        for (const c of m.cellViews()) {
          const ocv = curve.at(c.soc);
          expect(Math.abs(c.voltage - ocv - m.current * c.resistanceOhm)).toBeLessThan(0.02 + 0.05 * Math.abs(m.current * c.resistanceOhm));
          expect(c.voltage).toBeGreaterThanOrEqual(cutoffVoltage - 0.01);
          expect(c.voltage).toBeLessThanOrEqual(chargeVoltage + 0.01);
          if (m.current === 0) {
            expect(c.voltage).toBeGreaterThanOrEqual(curve.minVoltage);
            expect(c.voltage).toBeLessThanOrEqual(curve.maxVoltage);
          }
        }
      }
    }
  });

  it('has a flatter LFP plateau than NMC between 20 % and 80 %', () => {
    const spread = (chemistry: 'LFP' | 'NMC'): number => {
      const at = (soc: number): number => new BatteryModel({ ...base, chemistry, initialSoc: soc, cells: 1 }).measure().voltage;
      return at(0.8) - at(0.2);
    };
    expect(spread('LFP')).toBeGreaterThan(0);
    expect(spread('LFP')).toBeLessThan(120);
    expect(spread('NMC')).toBeGreaterThan(300);
  });
});

describe('temperature', () => {
  it('rises under high current and relaxes to ambient at rest', () => {
    const m = new BatteryModel({ ...base, ambientC: 25 }, { kind: 'sequence', items: [{ kind: 'constant', cRate: -1.5, seconds: 1800 }, { kind: 'rest', seconds: 6 * 3600 }] });
    m.advance(1800, 5);
    const hot = m.measure().tempMax;
    expect(hot).toBeGreaterThan(250 + 20);
    m.advance(3600, 5);
    expect(m.measure().tempMax).toBeLessThan(hot);
    m.advance(5 * 3600, 5);
    expect(m.measure().tempMax).toBeLessThanOrEqual(252);
    expect(m.measure().tempMin).toBeGreaterThanOrEqual(250);
  });

  it('raises the resistance in the cold', () => {
    const warm = new BatteryModel({ ...base, ambientC: 25 }).measure().resistance;
    const cold = new BatteryModel({ ...base, ambientC: -10 }).measure().resistance;
    expect(cold / warm).toBeGreaterThan(2);
  });
});

describe('ageing', () => {
  /** SoH after each step of `cycles` full cycles at `ambientC`, plus the final model. */
  function age(ambientC: number, cycles: number, extra: Partial<PackConfig> = {}): { soh: number[]; m: BatteryModel } {
    const m = new BatteryModel({ ...base, ambientC, ...extra }, cycle(cycles));
    const soh: number[] = [];
    while (!m.profileDone) {
      m.step(60);
      soh.push(m.measure().soh);
    }
    return { soh, m };
  }
  const normal = age(25, 300);
  const hot = age(45, 300);

  it('loses capacity monotonically with cycles', () => {
    for (let k = 1; k < normal.soh.length; k++) expect(normal.soh[k]).toBeLessThanOrEqual(normal.soh[k - 1]!);
    expect(normal.soh.at(-1)).toBeLessThan(960);
    expect(normal.soh.at(-1)).toBeGreaterThan(850);
    expect(normal.m.measure().cycles).toBeGreaterThanOrEqual(280);
  });

  it('loses capacity faster when hot', () => {
    expect(hot.soh.at(-1)).toBeLessThan(normal.soh.at(-1)! - 20);
  });

  it('grows the internal resistance and lowers power capability and remaining energy', () => {
    const fresh = new BatteryModel({ ...base, ambientC: 25 });
    const aged = normal.m;
    aged.advance(8 * 3600, 60); // back to ambient temperature
    expect(aged.measure().resistance).toBeGreaterThan(fresh.measure().resistance * 1.05);
    expect(aged.measure().powerCapability).toBeLessThan(fresh.measure().powerCapability * 0.95);
    expect(aged.measure().remainingEnergy).toBeLessThan(fresh.measure().remainingEnergy);
    expect(aged.measure().certifiedEnergy).toBeLessThan(fresh.measure().certifiedEnergy);
    expect(aged.measure().remainingCapacity).toBeLessThan(fresh.measure().remainingCapacity);
  });

  it('loses capacity to calendar ageing at rest, faster when hot and at high SoC', () => {
    const rest = (ambientC: number, initialSoc: number): number => {
      const m = new BatteryModel({ ...base, ambientC, initialSoc, selfDischargePer30d: 0 });
      m.advance(365 * 86_400, 3600);
      return m.cellViews()[0]!.fade;
    };
    const mild = rest(25, 0.5);
    expect(mild).toBeGreaterThan(0.01);
    expect(mild).toBeLessThan(0.06);
    expect(rest(45, 0.5)).toBeGreaterThan(mild * 1.8);
    expect(rest(25, 1)).toBeGreaterThan(mild);
  });

  it('lets cells drift apart over many cycles without balancing; balancing holds the drift down', () => {
    const spread = (m: BatteryModel): number => {
      const s = m.cellViews().map((c) => c.soc);
      return Math.max(...s) - Math.min(...s);
    };
    expect(spread(new BatteryModel(base))).toBeLessThan(0.01);
    const unbalanced = age(25, 300, { balancing: { enabled: false } }).m;
    expect(spread(unbalanced)).toBeGreaterThan(0.03);
    expect(spread(normal.m)).toBeLessThan(spread(unbalanced) / 2);
  });
});

describe('snapshot and restore', () => {
  it('continues exactly like a pack that never stopped, through a JSON round trip', () => {
    const profile: ProfileSpec = { kind: 'sequence', items: [{ kind: 'drive', seconds: 2000, seed: 'D' }, cycle(2)] };
    const a = new BatteryModel({ ...base, seed: 'PACK-7' }, profile);
    const b = new BatteryModel({ ...base, seed: 'PACK-7' }, profile);
    a.advance(1500, 7);
    b.advance(1500, 7);
    a.injectFault('internal');
    b.injectFault('internal');
    const restored = BatteryModel.restore(JSON.parse(JSON.stringify(b.snapshot())));
    expect(trace(restored, 3000, 7)).toEqual(trace(a, 3000, 7));
    expect(restored.snapshot()).toEqual(a.snapshot());
  });

  it.each<[string, (s: Record<string, unknown>) => unknown]>([
    ['a foreign format', (s) => ({ ...s, format: 'x' })],
    ['a newer version', (s) => ({ ...s, version: 2 })],
    ['a short cell array', (s) => ({ ...s, cells: { ...(s.cells as object), soc: [0.5] } })],
    ['a non-finite number', (s) => ({ ...s, pack: { ...(s.pack as object), time: null } })],
    ['a missing latch', (s) => ({ ...s, pack: { ...(s.pack as object), inDeep: undefined } })],
  ])('rejects %s with MODEL_SNAPSHOT', (_, mutate) => {
    const snap = JSON.parse(JSON.stringify(new BatteryModel(base).snapshot())) as Record<string, unknown>;
    expect(() => BatteryModel.restore(mutate(snap))).toThrow(expect.objectContaining({ code: 'MODEL_SNAPSHOT' }) as Error);
  });

  it('rejects a snapshot with an out-of-range config with MODEL_CONFIG', () => {
    const snap = new BatteryModel(base).snapshot();
    expect(() => BatteryModel.restore({ ...snap, config: { ...snap.config, cells: 40 } })).toThrow(expect.objectContaining({ code: 'MODEL_CONFIG' }) as Error);
  });
});

describe('configuration and arguments', () => {
  it.each<[string, Partial<PackConfig> & Record<string, unknown>]>([
    ['0 cells', { cells: 0 }],
    ['33 cells', { cells: 33 }],
    ['an unknown chemistry', { chemistry: 'LCO' as 'LFP' }],
    ['a zero capacity', { capacityAh: 0 }],
    ['an unknown ageing parameter', { ageing: { speed: 2 } as object }],
    ['a fractional seed', { seed: 1.5 }],
  ])('rejects %s with MODEL_CONFIG', (_, over) => {
    expect(() => new BatteryModel({ ...base, ...over })).toThrow(expect.objectContaining({ code: 'MODEL_CONFIG' }) as Error);
  });

  it('rejects bad step sizes, ambient temperatures and fault names with MODEL_ARGUMENT', () => {
    const m = new BatteryModel(base);
    for (const f of [() => { m.step(0); }, () => { m.step(-1); }, () => { m.step(NaN); }, () => { m.step(3601); }, () => { m.setAmbient(200); }, () => { m.injectFault('x' as 'internal'); }]) {
      expect(f).toThrow(expect.objectContaining({ code: 'MODEL_ARGUMENT' }) as Error);
    }
  });

  it('advances simulated time in steps of at most maxStep (time acceleration is the caller’s)', () => {
    const m = new BatteryModel(base);
    expect(m.advance(3600, 7)).toBe(515);
    expect(m.time).toBeCloseTo(3600, 9);
  });
});

describe('measurements as frames', () => {
  it('every measurement of a long mixed run (abuse included) encodes and decodes unchanged', () => {
    const m = new BatteryModel({ ...base, chemistry: 'LFP', cells: 32 }, {
      kind: 'sequence',
      items: [{ kind: 'formation', cycles: 1, cRate: 0.5 }, { kind: 'drive', seconds: 4000, seed: 4, peakC: 3 }, { kind: 'constant', cRate: 3, seconds: 3600 }, { kind: 'constant', cRate: -5, seconds: 3600 }],
    });
    m.setAmbient(-30);
    while (!m.profileDone) {
      m.step(30);
      const frame = frameOf(m.measure());
      expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
    }
  });

  it('property: for random packs, profiles and step sizes every value stays in the protocol ranges', () => {
    const profile = fc.oneof(
      fc.record({ kind: fc.constant('constant' as const), cRate: fc.double({ min: -100, max: 100, noNaN: true }), seconds: fc.integer({ min: 0, max: 100_000 }) }),
      fc.record({ kind: fc.constant('cccv' as const), cRate: fc.double({ min: 0.01, max: 5, noNaN: true }) }),
      fc.record({ kind: fc.constant('discharge' as const), cRate: fc.double({ min: 0.01, max: 10, noNaN: true }), cutoffVoltage: fc.double({ min: 0, max: 4, noNaN: true }) }),
      fc.record({ kind: fc.constant('drive' as const), seconds: fc.integer({ min: 0, max: 100_000 }), seed: fc.integer(), peakC: fc.double({ min: 0, max: 20, noNaN: true }) }),
    );
    const pack = fc.record({
      seed: fc.oneof(fc.integer(), fc.string({ maxLength: 20 })),
      cells: fc.integer({ min: 1, max: 32 }),
      chemistry: fc.constantFrom('LFP' as const, 'NMC' as const),
      capacityAh: fc.double({ min: 0.01, max: 10_000, noNaN: true }),
      ambientC: fc.double({ min: -50, max: 100, noNaN: true }),
      initialSoc: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(
      fc.property(pack, fc.array(profile, { minLength: 1, maxLength: 4 }), fc.array(fc.double({ min: 0.01, max: 3600, noNaN: true }), { minLength: 1, maxLength: 40 }), (cfg, items, steps) => {
        const m = new BatteryModel(cfg, { kind: 'sequence', items });
        for (const dt of steps) {
          m.step(dt);
          const frame = frameOf(m.measure());
          expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
        }
      }),
      { numRuns: 150 },
    );
  });
});
