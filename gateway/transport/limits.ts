/**
 * The two small controllers every transport endpoint uses: a token bucket that caps what one port
 * may push into the gateway (lines, chunks or bytes per second — a device that floods its link must
 * not starve the others or the event loop), and an exponential backoff with jitter for reconnects
 * (so a hundred packs that lose their adapter together do not retry in lockstep). Clocks and
 * randomness are passed in, so both are tested without sleeping.
 */
import { GatewayError } from '../errors.js';

/** Milliseconds from some monotonic origin. */
export type Clock = () => number;

export const monotonic: Clock = () => performance.now();

/**
 * A token bucket: `rate` tokens per second, holding at most `burst`. Starts full. Throws GatewayError
 * TRANSPORT_CONFIG for a rate or burst that is not a positive finite number.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: Clock = monotonic,
  ) {
    positive(rate, 'rate');
    positive(burst, 'burst');
    this.tokens = burst;
    this.last = now();
  }

  /** Takes `n` tokens if all are there; otherwise takes none and returns false. */
  take(n = 1): boolean {
    this.refill();
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Takes up to `n` whole tokens and returns how many it took (0..n). */
  takeUpTo(n: number): number {
    this.refill();
    const got = Math.max(0, Math.min(n, Math.floor(this.tokens)));
    this.tokens -= got;
    return got;
  }

  private refill(): void {
    const t = this.now();
    if (t > this.last) this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
    this.last = t;
  }
}

export interface BackoffOptions {
  /** First wait (default 100 ms). */
  readonly initialMs?: number;
  /** Largest wait (default 5000 ms). */
  readonly maxMs?: number;
  /** Growth per failed attempt (default 2). */
  readonly factor?: number;
  /** Fraction of each wait drawn at random, 0..1 (default 0.5: a wait d becomes d/2 .. d). */
  readonly jitter?: number;
}

/**
 * Exponential backoff with jitter: the n-th wait is min(maxMs, initialMs · factor^n), of which the
 * `jitter` fraction is randomised downwards. `reset()` after a connection that stayed up. Throws
 * GatewayError TRANSPORT_CONFIG for waits that are not positive and finite, maxMs < initialMs, a
 * factor < 1 or a jitter outside 0..1.
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private attempt = 0;

  constructor(
    options: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.initialMs = options.initialMs ?? 100;
    this.maxMs = options.maxMs ?? 5000;
    this.factor = options.factor ?? 2;
    this.jitter = options.jitter ?? 0.5;
    positive(this.initialMs, 'backoff.initialMs');
    positive(this.maxMs, 'backoff.maxMs');
    if (this.maxMs < this.initialMs) config(`backoff.maxMs (${this.maxMs}) must be at least backoff.initialMs (${this.initialMs})`);
    if (!(this.factor >= 1 && this.factor < Infinity)) config(`backoff.factor must be a finite number ≥ 1, got ${this.factor}`);
    if (!(this.jitter >= 0 && this.jitter <= 1)) config(`backoff.jitter must be in 0..1, got ${this.jitter}`);
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The wait before the next attempt; each call counts one more failed attempt. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** Math.min(this.attempt, 64));
    this.attempt += 1;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  reset(): void {
    this.attempt = 0;
  }
}

function config(why: string): never {
  throw new GatewayError('TRANSPORT_CONFIG', `gateway: transport: ${why}`);
}

/** Asserts a positive finite number. Throws GatewayError TRANSPORT_CONFIG naming the option. */
export function positive(v: number, name: string): void {
  if (!(typeof v === 'number' && v > 0 && v < Infinity)) config(`${name} must be a positive finite number, got ${String(v)}`);
}

/** Asserts an integer in lo..hi. Throws GatewayError TRANSPORT_CONFIG naming the option. */
export function integerIn(v: number, lo: number, hi: number, name: string): void {
  if (!(Number.isInteger(v) && v >= lo && v <= hi)) config(`${name} must be an integer from ${lo} to ${hi}, got ${String(v)}`);
}
