// Tests of the current profiles: each against a scripted pack (an in-memory ProfileContext whose
// current limits the test sets), composition, save/load continuity and spec validation; formation and
// the daily schedule also against the real battery model.
import { describe, expect, it } from 'vitest';
import { BatteryModel } from './model.js';
import { createProfile, restoreProfile, saveProfile, type Profile, type ProfileContext, type ProfileSpec } from './profile.js';

/** A 100 Ah pack whose charge/discharge limits the test scripts. */
function pack(over: Partial<{ charge: number; discharge: number }> = {}): ProfileContext & { charge: number; discharge: number } {
  return {
    cells: 4, ratedCapacityAh: 100, chargeVoltage: 3.65, cutoffVoltage: 2.5,
    charge: over.charge ?? Infinity, discharge: over.discharge ?? Infinity,
    maxChargeCurrent() {
      return this.charge;
    },
    maxDischargeCurrent() {
      return this.discharge;
    },
  };
}

/** Currents until the profile finishes (or `max` steps). */
function run(p: Profile, ctx: ProfileContext, dt: number, max = 100_000): number[] {
  const out: number[] = [];
  for (let i = 0; i < max; i++) {
    const c = p.next(ctx, dt);
    if (c === null) return out;
    out.push(c);
  }
  return out;
}

const specCode = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return (e as { code?: unknown }).code;
  }
  return 'no error';
};

describe('rest', () => {
  it('gives zero current for its duration, then finishes for good', () => {
    const p = createProfile({ kind: 'rest', seconds: 30 });
    expect(run(p, pack(), 10)).toEqual([0, 0, 0]);
    expect(p.next(pack(), 10)).toBeNull();
  });
});

describe('cccv', () => {
  it('charges at the C-rate, follows the pack limit once it binds, and ends below the cutoff current', () => {
    const ctx = pack();
    const p = createProfile({ kind: 'cccv', cRate: 0.5, cutoffC: 0.05 });
    expect(p.next(ctx, 1)).toBe(50);
    ctx.charge = 30;
    expect(p.next(ctx, 1)).toBe(30);
    ctx.charge = 5.5;
    expect(p.next(ctx, 1)).toBe(5.5);
    ctx.charge = 4.9;
    expect(p.next(ctx, 1)).toBeNull();
  });

  it('stops after maxSeconds even if the pack still takes current', () => {
    expect(run(createProfile({ kind: 'cccv', maxSeconds: 100 }), pack(), 10)).toHaveLength(10);
  });
});

describe('discharge', () => {
  it('discharges at the C-rate and lands its last step on the cutoff limit', () => {
    const ctx = pack();
    const p = createProfile({ kind: 'discharge', cRate: 1 });
    expect(p.next(ctx, 1)).toBe(-100);
    ctx.discharge = 40;
    expect(p.next(ctx, 1)).toBe(-40);
    ctx.discharge = 1000;
    expect(p.next(ctx, 1)).toBeNull();
  });
});

describe('constant', () => {
  it('applies its signed C-rate regardless of the pack limits (abuse)', () => {
    expect(run(createProfile({ kind: 'constant', cRate: -3, seconds: 3 }), pack({ discharge: 0 }), 1)).toEqual([-300, -300, -300]);
  });
});

describe('drive', () => {
  const spec: ProfileSpec = { kind: 'drive', seconds: 3600, seed: 5, cruiseC: 0.3, peakC: 1.5, regenC: 0.3 };

  it('is deterministic per seed and different across seeds', () => {
    expect(run(createProfile(spec), pack(), 1)).toEqual(run(createProfile(spec), pack(), 1));
    expect(run(createProfile(spec), pack(), 1)).not.toEqual(run(createProfile({ ...spec, seed: 6 }), pack(), 1));
  });

  it('mixes idle, cruise, acceleration and regenerative charge within the configured bounds', () => {
    const c = run(createProfile(spec), pack(), 1);
    expect(c).toHaveLength(3600);
    expect(c.some((x) => x === 0)).toBe(true);
    expect(c.some((x) => x > 0)).toBe(true);
    expect(c.some((x) => x < -100)).toBe(true);
    expect(Math.min(...c)).toBeGreaterThanOrEqual(-150);
    expect(Math.max(...c)).toBeLessThanOrEqual(30);
  });

  it('respects the pack limits and ends early when the pack is empty', () => {
    const ctx = pack({ discharge: 20, charge: 5 });
    const c = run(createProfile(spec), ctx, 1, 600);
    expect(Math.min(...c)).toBeGreaterThanOrEqual(-20);
    expect(Math.max(...c)).toBeLessThanOrEqual(5);
    ctx.discharge = 0;
    const p = createProfile(spec);
    expect(run(p, ctx, 1).length).toBeLessThan(200); // the first discharge segment ends it
  });
});

describe('composition', () => {
  it('sequence runs items in order and skips an item that finishes at once within the same step', () => {
    const p = createProfile({ kind: 'sequence', items: [{ kind: 'rest', seconds: 2 }, { kind: 'cccv' }, { kind: 'constant', cRate: 1, seconds: 2 }] });
    const ctx = pack({ charge: 0 }); // a full pack: the CC-CV ends before it starts
    expect(run(p, ctx, 1)).toEqual([0, 0, 100, 100]);
  });

  it('repeat runs its item the given number of times', () => {
    expect(run(createProfile({ kind: 'repeat', times: 3, item: { kind: 'constant', cRate: -0.5, seconds: 2 } }), pack(), 1)).toEqual(Array(6).fill(-50));
  });

  it('daily schedule starts entries at their time of day, rests between them and runs overnight past midnight', () => {
    const p = createProfile({
      kind: 'daily', days: 2,
      entries: [
        { at: 22 * 3600, item: { kind: 'constant', cRate: 0.1, seconds: 4 * 3600 } }, // 22:00 → 02:00
        { at: 8 * 3600, item: { kind: 'constant', cRate: -0.5, seconds: 3600 } }, // 08:00 → 09:00
      ],
    });
    const c = run(p, pack(), 600);
    expect(c).toHaveLength(2 * 144);
    const at = (h: number, day = 0): number => c[(day * 24 + h) * 6] ?? NaN;
    expect([at(0), at(7), at(8), at(9), at(21), at(22), at(1, 1), at(2, 1), at(8, 1)]).toEqual([0, 0, -50, 0, 0, 10, 10, 0, -50]);
  });
});

describe('save and load', () => {
  const specs: ProfileSpec[] = [
    { kind: 'drive', seconds: 5000, seed: 'X' },
    { kind: 'repeat', times: 3, item: { kind: 'sequence', items: [{ kind: 'drive', seconds: 700, seed: 9 }, { kind: 'rest', seconds: 300 }] } },
    { kind: 'daily', days: 1, entries: [{ at: 3600, item: { kind: 'drive', seconds: 4000, seed: 2 } }] },
    { kind: 'formation', cycles: 1 },
  ];
  it.each(specs)('continues a %j identically after a JSON round trip of its state', (spec) => {
    const a = createProfile(spec);
    const ctx = pack({ charge: 20, discharge: 80 });
    const head = run(a, ctx, 7, 300);
    const b = restoreProfile(JSON.parse(JSON.stringify(saveProfile(a))));
    expect(head).toHaveLength(300);
    expect(run(b, ctx, 7, 2000)).toEqual(run(a, ctx, 7, 2000));
  });
});

describe('with the battery model', () => {
  it('formation cycles the pack slowly: full twice and empty twice', () => {
    const m = new BatteryModel({ seed: 1, cells: 4, chemistry: 'NMC', capacityAh: 10 }, { kind: 'formation', cycles: 2, cRate: 0.1, restSeconds: 600 });
    const socs: number[] = [];
    while (!m.profileDone) {
      m.step(60);
      expect(Math.abs(m.current)).toBeLessThanOrEqual(1.0000001);
      socs.push(m.measure().soc);
    }
    let peaks = 0;
    let troughs = 0;
    let state: 'up' | 'down' = 'up';
    for (const s of socs) {
      if (state === 'up' && s >= 985) [peaks, state] = [peaks + 1, 'down'];
      if (state === 'down' && s <= 10) [troughs, state] = [troughs + 1, 'up'];
    }
    expect([peaks, troughs]).toEqual([2, 2]);
  });
});

describe('spec validation', () => {
  it.each<[string, unknown]>([
    ['an unknown kind', { kind: 'boost' }],
    ['a negative rest', { kind: 'rest', seconds: -1 }],
    ['a non-number rate', { kind: 'cccv', cRate: '1' }],
    ['a fractional repeat count', { kind: 'repeat', times: 1.5, item: { kind: 'rest', seconds: 1 } }],
    ['a bad nested item', { kind: 'sequence', items: [{ kind: 'rest', seconds: 1 }, { kind: 'rest' }] }],
    ['a daily entry outside the day', { kind: 'daily', days: 1, entries: [{ at: 86_400, item: { kind: 'rest', seconds: 1 } }] }],
    ['a drive without a seed', { kind: 'drive', seconds: 10 }],
    ['nesting deeper than 8', Array.from({ length: 10 }).reduce<unknown>((item) => ({ kind: 'repeat', times: 1, item }), { kind: 'rest', seconds: 1 })],
    ['null', null],
  ])('rejects %s with PROFILE_SPEC', (_, spec) => {
    expect(specCode(() => createProfile(spec as ProfileSpec))).toBe('PROFILE_SPEC');
  });

  it('rejects a malformed saved state with PROFILE_SPEC', () => {
    const snap = saveProfile(createProfile({ kind: 'drive', seconds: 10, seed: 1 }));
    expect(specCode(() => restoreProfile({ ...snap, state: { ...snap.state, rng: [0, 0, 0, 0] } }))).toBe('PROFILE_SPEC');
    expect(specCode(() => restoreProfile({ ...snap, state: { ...snap.state, elapsed: 'x' } }))).toBe('PROFILE_SPEC');
    expect(specCode(() => restoreProfile({ spec: snap.spec }))).toBe('PROFILE_SPEC');
  });
});
