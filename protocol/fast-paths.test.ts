/**
 * decodeFrame and parseSign1 read the shape every device sends in one pass and hand anything else to
 * the general CBOR decoder, which defines what is valid and names each error. These tests hold the
 * fast readers to that definition: over the vectors and many mutations of them, the public function
 * returns exactly what the general path returns — the same frame or parsed message, or the same
 * error code and message.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex } from './bytes.js';
import { parseSign1, parseSign1General } from './cose-sign1.js';
import { ProtocolError } from './errors.js';
import { decodeFrame, decodeFrameGeneral, encodeFrame } from './frame.js';

interface Vector {
  name: string;
  expect: string;
  payload?: string;
  cose?: string;
}
const vectors = (file: string): Vector[] => (JSON.parse(readFileSync(new URL(`../test/vectors/${file}`, import.meta.url), 'utf8')) as { vectors: Vector[] }).vectors;
const payloads = vectors('frame.json').flatMap((v) => (v.payload === undefined ? [] : [fromHex(v.payload)]));
const messages = vectors('cose.json').flatMap((v) => (v.cose === undefined ? [] : [fromHex(v.cose)]));

/** A comparable outcome: the value (byte views as plain arrays) or the error's code and message. */
function outcome(f: () => unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(f(), (_, v: unknown) => (v instanceof Uint8Array ? { bytes: Array.from(v) } : v)));
  } catch (e) {
    if (e instanceof ProtocolError) return { code: e.code, message: e.message };
    throw e;
  }
}

/** Mutations a hostile or broken device produces: byte flips, insertions, deletions, truncation, extension. */
const mutated = (seeds: readonly Uint8Array[]) =>
  fc
    .tuple(
      fc.constantFrom(...seeds),
      fc.array(
        fc.tuple(fc.constantFrom('flip', 'set', 'insert', 'delete', 'cut', 'extend'), fc.nat(800), fc.integer({ min: 0, max: 255 })),
        { minLength: 0, maxLength: 3 },
      ),
    )
    .map(([seed, edits]) => {
      let b = Array.from(seed);
      for (const [op, at, v] of edits) {
        const i = b.length === 0 ? 0 : at % b.length;
        if (op === 'flip') b[i] = (b[i] ?? 0) ^ (1 << (v % 8));
        else if (op === 'set') b[i] = v;
        else if (op === 'insert') b.splice(i, 0, v);
        else if (op === 'delete') b.splice(i, 1);
        else if (op === 'cut') b = b.slice(0, i);
        else b.push(v);
      }
      return Uint8Array.from(b);
    });

describe('decodeFrame (one-pass reader for the common shape)', () => {
  it('returns what the general decoder returns for every frame vector, valid or not', () => {
    expect(payloads.length).toBeGreaterThan(40);
    for (const p of payloads) expect(outcome(() => decodeFrame(p))).toEqual(outcome(() => decodeFrameGeneral(p)));
  });

  it('returns what the general decoder returns for mutated frames', () => {
    fc.assert(
      fc.property(mutated(payloads), (p) => {
        expect(outcome(() => decodeFrame(p))).toEqual(outcome(() => decodeFrameGeneral(p)));
      }),
      { numRuns: 20_000, seed: 1 },
    );
  });

  it('reads integers at every head size and bound as the general decoder does', () => {
    const base = decodeFrameGeneral(payloads[1] ?? new Uint8Array(0));
    const edges = [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 2, 2 ** 53 - 1];
    for (const n of edges) {
      const p = encodeFrame({ ...base, counter: n, time: n, current: -Math.min(n, 2_000_000) });
      const fast = decodeFrame(p);
      expect(fast).toEqual(decodeFrameGeneral(p));
      expect([fast.counter, fast.time]).toEqual([n, n]);
    }
  });
});

describe('parseSign1 (one-pass reader for the profile layout)', () => {
  it('returns what the general parser returns for every COSE vector, valid or not', () => {
    expect(messages.length).toBeGreaterThan(20);
    for (const m of messages) expect(outcome(() => parseSign1(m))).toEqual(outcome(() => parseSign1General(m)));
  });

  it('returns what the general parser returns for mutated messages', () => {
    fc.assert(
      fc.property(mutated(messages), (m) => {
        expect(outcome(() => parseSign1(m))).toEqual(outcome(() => parseSign1General(m)));
      }),
      { numRuns: 20_000, seed: 2 },
    );
  });
});
