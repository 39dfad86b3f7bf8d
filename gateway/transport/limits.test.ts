/**
 * The token bucket and the reconnect backoff (limits.ts), driven by a fake clock and fixed random
 * draws so every wait and every admitted token is exact.
 */
import { describe, expect, it } from 'vitest';
import { Backoff, TokenBucket } from './limits.js';

describe('TokenBucket', () => {
  it('starts full, refuses when empty, and refills at its rate up to the burst', () => {
    let now = 0;
    const b = new TokenBucket(10, 5, () => now);
    expect([1, 2, 3, 4, 5, 6].map(() => b.take())).toEqual([true, true, true, true, true, false]);
    now = 100; // one token per 100 ms
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
    now = 60_000; // a long silence refills to the burst, no further
    expect(b.takeUpTo(100)).toBe(5);
  });

  it('takeUpTo hands out whole tokens only', () => {
    let now = 0;
    const b = new TokenBucket(1000, 100, () => now);
    expect(b.takeUpTo(30)).toBe(30);
    expect(b.takeUpTo(500)).toBe(70);
    now = 2.5; // 2.5 tokens
    expect(b.takeUpTo(10)).toBe(2);
  });

  it('take(n) takes all or nothing', () => {
    const b = new TokenBucket(1, 10, () => 0);
    expect(b.take(11)).toBe(false);
    expect(b.take(10)).toBe(true);
  });

  it('when the rate or burst is not a positive number › throws TRANSPORT_CONFIG', () => {
    for (const [rate, burst] of [[0, 1], [1, -1], [Number.NaN, 1], [Infinity, 1]] as const) {
      expect(() => new TokenBucket(rate, burst)).toThrow(expect.objectContaining({ code: 'TRANSPORT_CONFIG' }) as Error);
    }
  });
});

describe('Backoff', () => {
  it('doubles from initialMs to maxMs, jitter randomising the lower part, and resets', () => {
    const top = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => 0);
    expect([1, 2, 3, 4, 5, 6].map(() => top.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(top.attempts).toBe(6);
    top.reset();
    expect(top.next()).toBe(100);
    const low = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5 }, () => 0.999_999);
    expect([1, 2, 3].map(() => low.next())).toEqual([50, 100, 200]);
  });

  it('never overflows after very many attempts', () => {
    const b = new Backoff({ initialMs: 1, maxMs: 60_000, jitter: 0 });
    for (let i = 0; i < 5000; i++) b.next();
    expect(b.next()).toBe(60_000);
  });

  it('when the options are out of range › throws TRANSPORT_CONFIG naming the option', () => {
    expect(() => new Backoff({ initialMs: 0 })).toThrow(/backoff.initialMs/);
    expect(() => new Backoff({ initialMs: 500, maxMs: 100 })).toThrow(/backoff.maxMs \(100\) must be at least/);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(/factor/);
    expect(() => new Backoff({ jitter: 2 })).toThrow(expect.objectContaining({ code: 'TRANSPORT_CONFIG', message: expect.stringMatching(/^gateway: /) as unknown }) as Error);
  });
});
