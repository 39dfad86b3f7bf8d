/**
 * Fresh-process measurements for bench/gateway-store.ts: a restarted gateway opens a large log
 * store and answers queries. Run as `node --import tsx bench/gateway-store-child.ts <dir> <pack
 * serial>`; prints one JSON line: open (restart) time, RSS before and after open and after the
 * queries, inclusion and consistency proof times at the full size, and one pack's full history
 * (every frame read back). A separate process so the RSS is that of a restart, not of the builder.
 */
import { verifyInclusion } from '../protocol/index.js';
import { LogStore } from '../gateway/index.js';

const mb = (): number => Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10;
const ms = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6;

async function main(dir: string, serial: string): Promise<void> {
  const rssBefore = mb();
  let t = process.hrtime.bigint();
  const store = await LogStore.open({ dir, quotaBytes: Number.POSITIVE_INFINITY });
  const openMs = ms(t);
  const rssOpen = mb();
  const n = store.size;
  const root = store.root();

  // Inclusion proofs at random indexes of the full tree (each checked once, outside the timing).
  let x = 88172645463325252n;
  const next = (): number => {
    x ^= x << 13n;
    x ^= x >> 7n;
    x ^= x << 17n;
    x &= (1n << 64n) - 1n;
    return Number(x % BigInt(n));
  };
  const idx = Array.from({ length: 2000 }, next);
  t = process.hrtime.bigint();
  const proofs = idx.map((i) => store.inclusionProof(i, n));
  const proofUs = (ms(t) * 1000) / idx.length;
  t = process.hrtime.bigint();
  for (const i of idx) store.inclusionProof(i, n);
  const proofWarmUs = (ms(t) * 1000) / idx.length;
  for (let k = 0; k < 20; k++) verifyInclusion(idx[k]!, n, store.leafHash(idx[k]!), proofs[k]!, root);
  t = process.hrtime.bigint();
  for (let k = 0; k < 200; k++) store.consistencyProof(idx[k]! + 1, n);
  const consistencyUs = (ms(t) * 1000) / 200;

  // One pack's whole history, every frame read back: as the build left the page cache, then again.
  const history = async (): Promise<{ historyMs: number; entries: number; bytes: number }> => {
    const t0 = process.hrtime.bigint();
    let entries = 0;
    let bytes = 0;
    for await (const e of store.history(serial)) {
      entries++;
      bytes += e.data.length;
    }
    return { historyMs: ms(t0), entries, bytes };
  };
  const { historyMs, entries, bytes } = await history();
  const historyWarmMs = (await history()).historyMs;
  const rssAfter = mb();
  await store.close();
  process.stdout.write(JSON.stringify({ size: n, openMs, rssBefore, rssOpen, rssAfter, proofUs, proofWarmUs, consistencyUs, historyMs, historyWarmMs, entries, bytes, report: store.report }) + '\n');
}

const [dir, serial] = process.argv.slice(2);
if (dir === undefined || serial === undefined) throw new Error('usage: gateway-store-child.ts <dir> <pack serial>');
await main(dir, serial);
