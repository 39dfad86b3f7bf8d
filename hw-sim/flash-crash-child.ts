/**
 * Test-only child process for flash.test.ts's power-cut test: it opens a device's flash and mutates
 * it as fast as it can — counters, frames, acks, chain rewrites — until the parent kills it with
 * SIGKILL at a random moment. Each step is printed to stdout (a pipe, written synchronously on
 * Linux) only after the await that makes it durable, and acks are announced before they start, so
 * the parent knows exactly what the flash must hold after the kill. Usage: `node --import tsx
 * hw-sim/flash-crash-child.ts <dir> <seed>`.
 */
import { pathToFileURL } from 'node:url';
import { DeviceFlash } from './flash.js';
import { Random } from './random.js';

/** The COSE bytes stored for `counter`: deterministic, so the parent can check them byte for byte. */
export function fakeCose(counter: number): Uint8Array {
  const out = new Uint8Array(40 + (counter % 200));
  for (let i = 0; i < out.length; i++) out[i] = (counter * 31 + i * 7) & 0xff;
  return out;
}

async function main(dir: string, seed: number): Promise<void> {
  const rnd = Random.fromSeed(seed);
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const flash = await DeviceFlash.open({
    dir,
    factory: { model: 'crash-test', firmware: '1.0.0' },
    counterBlock: 8,
    compactSlackBytes: 4096, // compact often, so kills land inside compactions too
  });
  say('READY');
  for (let step = 0; ; step++) {
    const counter = await flash.takeCounter();
    say(`T ${counter}`);
    await flash.appendFrame({ counter, producedAt: step, cose: fakeCose(counter) });
    say(`F ${counter}`);
    const live = [...flash.ring.entries()].map((e) => e.counter);
    if (live.length > 3 && rnd.next() < 0.4) {
      const lo = live[Math.floor(rnd.next() * live.length)] ?? 0;
      const hi = lo + Math.floor(rnd.next() * 6);
      say(`a ${lo} ${hi}`);
      const freed = await flash.free([[lo, hi]]);
      say(`A ${lo} ${hi} ${freed.join(',')}`);
    }
    if (rnd.next() < 0.05) {
      say(`c PACK-${step}`);
      await flash.setChain([Uint8Array.of(0x30, step & 0xff)], `PACK-${step}`);
      say(`C PACK-${step}`);
    }
  }
}

// Run only as a program: flash.test.ts imports fakeCose from this file.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [dir, seed] = process.argv.slice(2);
  if (dir === undefined || seed === undefined) throw new Error('usage: flash-crash-child.ts <dir> <seed>');
  await main(dir, Number(seed));
}
