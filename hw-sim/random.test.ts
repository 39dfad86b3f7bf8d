// Tests of the seeded generator: the xoshiro128** reference output, reproducibility and persistence.
import { describe, expect, it } from 'vitest';
import { isSimError } from './errors.js';
import { Random } from './random.js';

const draw = (r: Random, n: number): number[] => Array.from({ length: n }, () => r.nextU32());

describe('Random (xoshiro128**)', () => {
  it('matches the reference implementation from state {1, 2, 3, 4}', () => {
    // Output of xoshiro128starstar.c (prng.di.unimi.it) with s = {1, 2, 3, 4}.
    expect(draw(Random.fromState([1, 2, 3, 4]), 10)).toEqual([
      11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804,
    ]);
  });

  it('gives the same stream for the same seed and different streams for different seeds', () => {
    expect(draw(Random.fromSeed(42), 20)).toEqual(draw(Random.fromSeed(42), 20));
    expect(draw(Random.fromSeed('PACK-0001'), 20)).toEqual(draw(Random.fromSeed('PACK-0001'), 20));
    expect(draw(Random.fromSeed(42), 20)).not.toEqual(draw(Random.fromSeed(43), 20));
    expect(draw(Random.fromSeed(2 ** 40), 20)).not.toEqual(draw(Random.fromSeed(0), 20));
    expect(draw(Random.fromSeed('PACK-0001'), 20)).not.toEqual(draw(Random.fromSeed('PACK-0002'), 20));
  });

  it('continues the same stream after state() → fromState()', () => {
    const a = Random.fromSeed(7);
    draw(a, 5);
    const b = Random.fromState(JSON.parse(JSON.stringify(a.state())));
    expect(draw(b, 50)).toEqual(draw(a, 50));
  });

  it('draws uniforms in [0, 1) and normals with mean ≈ 0 and variance ≈ 1', () => {
    const r = Random.fromSeed(1);
    const u = Array.from({ length: 20_000 }, () => r.next());
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    const z = Array.from({ length: 20_000 }, () => r.normal());
    const mean = z.reduce((a, b) => a + b, 0) / z.length;
    const variance = z.reduce((a, b) => a + (b - mean) ** 2, 0) / z.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });

  it('forks independent named sub-streams', () => {
    const a = Random.fromSeed(3).fork('capacity');
    const b = Random.fromSeed(3).fork('resistance');
    expect(draw(a, 10)).not.toEqual(draw(b, 10));
    expect(draw(Random.fromSeed(3).fork('capacity'), 10)).toEqual(draw(Random.fromSeed(3).fork('capacity'), 10));
  });

  it.each([[[1, 2, 3]], [[0, 0, 0, 0]], [[1, 2, 3, -1]], [[1, 2, 3, 2 ** 32]], [[1, 2, 3, 0.5]], ['abcd'], [null]])(
    'rejects the state %j with MODEL_SNAPSHOT',
    (state) => {
      const err = (() => {
        try {
          Random.fromState(state);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(isSimError(err) && err.code).toBe('MODEL_SNAPSHOT');
    },
  );

  it('rejects a non-integer seed with MODEL_ARGUMENT', () => {
    expect(() => Random.fromSeed(1.5)).toThrow(expect.objectContaining({ code: 'MODEL_ARGUMENT' }) as Error);
  });
});
