/**
 * Benchmark harness: every figure is reported as operations per second and as a ratio to a baseline
 * measured in the same run (raw node:crypto Ed25519 verify with a cached KeyObject), because absolute
 * rates on shared machines drift while ratios hold (NOTES.md). Each measurement is the median of 3.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';

export interface Result {
  readonly name: string;
  readonly opsPerSec: number;
  readonly note?: string;
}

/** Runs `fn` repeatedly for about `ms` milliseconds, three times; returns the median ops/s. */
export function measure(fn: () => void, ms = 400): number {
  const rates: number[] = [];
  for (let round = 0; round < 3; round++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(ms) * 1_000_000n;
    let now = start;
    while (now < deadline) {
      for (let i = 0; i < 16; i++) fn();
      n += 16;
      now = process.hrtime.bigint();
    }
    rates.push(n / (Number(now - start) / 1e9));
  }
  rates.sort((a, b) => a - b);
  return rates[1] ?? 0;
}

/** Times one call of `fn` (for operations too long to repeat), median of 3, in ms. */
export function timeOnce(fn: () => void): number {
  const times: number[] = [];
  for (let round = 0; round < 3; round++) {
    const start = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[1] ?? 0;
}

/** The baseline: raw crypto.verify of a 200-byte message, Ed25519, KeyObject created once. */
export function baselineVerifyRate(): number {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const msg = Buffer.alloc(200, 7);
  const sig = sign(null, msg, privateKey);
  return measure(() => {
    if (!verify(null, msg, publicKey, sig)) throw new Error('baseline verify failed');
  });
}

export function formatTable(baseline: number, results: readonly Result[]): string {
  const rows = results.map((r) => {
    const rate = r.opsPerSec >= 100 ? Math.round(r.opsPerSec).toLocaleString('en-US') : r.opsPerSec.toFixed(2);
    return `| ${r.name} | ${rate} | ${(r.opsPerSec / baseline).toFixed(3)} | ${r.note ?? ''} |`;
  });
  return [
    `baseline: raw crypto.verify Ed25519 (cached key) = ${Math.round(baseline).toLocaleString('en-US')}/s`,
    '',
    '| operation | ops/s (median of 3) | ratio to baseline | note |',
    '|---|---|---|---|',
    ...rows,
  ].join('\n');
}
