/**
 * The seeded pseudo-random generator every part of hw-sim draws from, so a simulation is a pure
 * function of its seed: xoshiro128** 1.1 (Blackman & Vigna, https://prng.di.unimi.it/), 128 bits of
 * state, period 2^128 − 1, seeded through splitmix32 so that nearby seeds give unrelated streams.
 * Chosen over mulberry32 (32-bit state, fails statistical tests) and over Math.random (unseedable,
 * not reproducible). Not cryptographic: keys come from @noble/curves' CSPRNG, never from here.
 * The state is four uint32 words, exposed as a plain array so it can be persisted and restored.
 */
import { SimError } from './errors.js';

/** FNV-1a over the UTF-16 code units: turns a text seed (a pack serial) into 32 bits. */
function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** splitmix32 step (the 32-bit variant of Steele, Lea & Flood's SplitMix): a well-mixed seed expander. */
function splitmix32(x: number): [number, number] {
  const next = (x + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return [next, (z ^ (z >>> 15)) >>> 0];
}

export class Random {
  // The four state words, kept as uint32 values in plain fields (faster than a typed array here and
  // free of index checks).
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  private constructor(a: number, b: number, c: number, d: number) {
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }

  /**
   * A generator seeded from a number (any safe integer; both 32-bit halves feed the seed) or a text.
   * Throws SimError MODEL_ARGUMENT for a non-integer or unsafe number.
   */
  static fromSeed(seed: number | string): Random {
    let x: number;
    if (typeof seed === 'string') {
      x = hashText(seed);
    } else {
      if (!Number.isSafeInteger(seed)) throw new SimError('MODEL_ARGUMENT', `hw-sim: a seed must be a safe integer or a text, got ${seed}`);
      const hi = Math.floor(Math.abs(seed) / 0x1_0000_0000) >>> 0;
      x = ((seed >>> 0) ^ Math.imul(hi, 0x85ebca6b) ^ (seed < 0 ? 0x5bd1e995 : 0)) >>> 0;
    }
    const w: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [nx, out] = splitmix32(x);
      x = nx;
      w.push(out);
    }
    const [a = 0, b = 0, c = 0, d = 0] = w;
    // The all-zero state is xoshiro's one fixed point; splitmix32 outputs cannot all be zero for
    // distinct counters, but the guard costs nothing.
    return new Random((a | b | c | d) === 0 ? 1 : a, b, c, d);
  }

  /** Restores a generator from `state()`. Throws SimError MODEL_SNAPSHOT for anything else. */
  static fromState(state: unknown): Random {
    if (!Array.isArray(state) || state.length !== 4) throw new SimError('MODEL_SNAPSHOT', 'hw-sim: a random generator state must be four uint32 words');
    const w: number[] = [];
    for (const x of state as unknown[]) {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) {
        throw new SimError('MODEL_SNAPSHOT', 'hw-sim: a random generator state must be four uint32 words');
      }
      w.push(x);
    }
    const [a = 0, b = 0, c = 0, d = 0] = w;
    if ((a | b | c | d) === 0) throw new SimError('MODEL_SNAPSHOT', 'hw-sim: a random generator state must not be all zero');
    return new Random(a, b, c, d);
  }

  /** The four state words, for persisting; `Random.fromState(r.state())` continues the same stream. */
  state(): number[] {
    return [this.a, this.b, this.c, this.d];
  }

  /** Next 32 random bits as an unsigned integer (xoshiro128** output function and state update). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c = (this.c ^ this.a) >>> 0;
    this.d = (this.d ^ this.b) >>> 0;
    this.b = (this.b ^ this.c) >>> 0;
    this.a = (this.a ^ this.d) >>> 0;
    this.c = (this.c ^ t) >>> 0;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /**
   * Standard normal deviate (Box–Muller, cosine branch only): two draws per call and no cached spare,
   * so the whole generator state stays the four words of `state()`.
   */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: log(0) is impossible
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** An independent generator for a named sub-stream, so adding a draw in one place does not shift another. */
  fork(label: string): Random {
    const lo = (this.nextU32() ^ hashText(label)) >>> 0;
    const hi = this.nextU32() & 0x1f_ffff;
    return Random.fromSeed(hi * 0x1_0000_0000 + lo);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
