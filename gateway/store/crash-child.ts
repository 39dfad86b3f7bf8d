/**
 * Test-only child process for crash.test.ts's power-cut test: it opens a log store and appends as
 * fast as it can — several group commits in flight, checkpoints, acknowledged sizes that let the
 * quota prune — until the parent kills it with SIGKILL at a random moment. A line goes to stdout
 * (a pipe, written synchronously on Linux) only after the await that makes its step durable, so the
 * parent knows what the store must hold after the kill:
 *   `A <first index> <first seq> <count>`  entries appended (entry content = sampleInput(seq))
 *   `C <size>`                              checkpoint signed and durable
 * Usage: `node --import tsx gateway/store/crash-child.ts <dir> <seqBase> <seed>`.
 */
import { pathToFileURL } from 'node:url';
import { LogStore } from './log-store.js';
import { TEST_ORIGIN, sampleInput, testSigner } from './testkit.js';

async function main(dir: string, seqBase: number, seed: number): Promise<void> {
  let x = seed >>> 0 || 1;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const store = await LogStore.open({ dir, origin: TEST_ORIGIN, segmentBits: 4, quotaBytes: 64 * 1024, maxBatchEntries: 24 });
  const { signer } = testSigner();
  say(`READY ${store.size}`);
  let seq = seqBase;
  for (let step = 0; ; step++) {
    const calls: Promise<void>[] = [];
    for (let c = 0, n = 1 + Math.floor(rnd() * 4); c < n; c++) {
      const count = 1 + Math.floor(rnd() * 12);
      const first = seq;
      seq += count;
      calls.push(
        store.append(Array.from({ length: count }, (_, i) => sampleInput(first + i))).then(
          (r) => {
            say(`A ${r.entries[0]?.index} ${first} ${count}`);
          },
          (e: unknown) => {
            if ((e as { code?: string }).code !== 'STORE_QUOTA') throw e;
          },
        ),
      );
    }
    if (rnd() < 0.2) calls.push(store.checkpoint(signer).then((cp) => { say(`C ${cp.size}`); }));
    if (rnd() < 0.3) store.markSynced(Math.floor(store.size * rnd()));
    await Promise.all(calls);
  }
}

// Run only as a program: the test imports nothing from here.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [dir, seqBase, seed] = process.argv.slice(2);
  if (dir === undefined || seqBase === undefined || seed === undefined) throw new Error('usage: crash-child.ts <dir> <seqBase> <seed>');
  await main(dir, Number(seqBase), Number(seed));
}
