/**
 * Per-pack queries: one pack's history in a receive-time window (exact boundaries, across sealed and
 * active segments, after pruning), pack files rebuilt when missing or damaged without a wrong
 * answer in between, the counter lookup the ingest's duplicate check uses, and pack summaries.
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StoredEntry } from './core.js';
import { LogStore } from './log-store.js';
import { T0, TEST_ORIGIN, sampleData, sampleInput, tempDir, testSigner } from './testkit.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const N = 70; // segments of 16: four sealed, one active
const serial = (p: number): string => `PACK-${String(p).padStart(4, '0')}`;

async function build(): Promise<{ dir: string; store: LogStore }> {
  const dir = await tempDir('history');
  dirs.push(dir);
  const store = await LogStore.open({ dir, origin: TEST_ORIGIN, segmentBits: 4 });
  for (let i = 0; i < N; i += 7) await store.append(Array.from({ length: Math.min(7, N - i) }, (_, j) => sampleInput(i + j)));
  return { dir, store };
}

async function collect(it: AsyncIterable<StoredEntry>): Promise<StoredEntry[]> {
  const out: StoredEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** What history must return: pack p's entries with since ≤ T0 + 10·i < until. */
const expected = (p: number, since = -Infinity, until = Infinity): number[] =>
  Array.from({ length: N }, (_, i) => i).filter((i) => i % 5 === p && T0 + i * 10 >= since && T0 + i * 10 < until);

describe('LogStore.history', () => {
  it("returns exactly one pack's entries, oldest first, with their data", async () => {
    const { store } = await build();
    for (let p = 0; p < 5; p++) {
      const got = await collect(store.history(serial(p)));
      expect(got.map((e) => e.index)).toEqual(expected(p));
      for (const e of got) expect([e.serial, e.counter, e.data]).toEqual([serial(p), Math.floor(e.index / 5), sampleData(e.index)]);
    }
    expect(await collect(store.history('PACK-9999'))).toEqual([]);
    await store.close();
  });

  it('honours since (inclusive) and until (exclusive) to the millisecond', async () => {
    const { store } = await build();
    const windows: [number, number][] = [[T0, T0 + 1], [T0 + 150, T0 + 160], [T0 + 149, T0 + 451], [T0 + 155, T0 + 690], [T0 + 690, T0 + 10_000], [T0 - 5, T0 + 5]];
    for (const [since, until] of windows) {
      for (let p = 0; p < 5; p++) {
        const got = await collect(store.history(serial(p), { since, until }));
        expect([since, until, p, got.map((e) => e.index)]).toEqual([since, until, p, expected(p, since, until)]);
      }
    }
    await store.close();
  });

  it('rebuilds a missing or damaged pack file and answers correctly meanwhile', async () => {
    const { dir, store } = await build();
    await store.close();
    const p1 = join(dir, '00000001.packs');
    const good = await readFile(p1);
    await rm(p1);
    const bad = Buffer.from(await readFile(join(dir, '00000002.packs')));
    bad[bad.length - 5] = (bad[bad.length - 5] ?? 0) ^ 0xff;
    await writeFile(join(dir, '00000002.packs'), bad);
    const again = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(await readFile(p1)).toEqual(good); // missing: rebuilt on open
    for (let p = 0; p < 5; p++) expect((await collect(again.history(serial(p)))).map((e) => e.index)).toEqual(expected(p));
    expect(again.stats.packFilesRebuilt).toBeGreaterThan(0); // damaged: noticed on use
    await again.close();
    expect(await readFile(join(dir, '00000002.packs'))).not.toEqual(bad);
    expect((await stat(join(dir, '00000002.packs'))).size).toBe(bad.length);
  });

  it('returns only entries still on disk after pruning', async () => {
    const dir = await tempDir('history');
    dirs.push(dir);
    const store = await LogStore.open({ dir, origin: TEST_ORIGIN, segmentBits: 3, quotaBytes: 12_000 });
    const { signer } = testSigner();
    for (let i = 0; i < 40; i++) {
      if (i % 4 === 0) await store.checkpoint(signer);
      store.markSynced(store.size);
      await store.append([sampleInput(i)]);
    }
    expect(store.firstIndex).toBeGreaterThan(0);
    const got = await collect(store.history(serial(2)));
    expect(got.map((e) => e.index)).toEqual(Array.from({ length: 40 }, (_, i) => i).filter((i) => i % 5 === 2 && i >= store.firstIndex));
    expect(store.pack(serial(2))).toMatchObject({ entries: 8, firstIndex: 2, lastIndex: 37 });
    await store.close();
  });
});

describe('LogStore.findCounter and pack summaries', () => {
  it('finds the entry of a counter, bounded by notBefore, and summarises each pack', async () => {
    const { dir, store } = await build();
    expect(await store.findCounter(serial(3), 0)).toBe(3);
    expect(await store.findCounter(serial(3), 13)).toBe(68);
    expect(await store.findCounter(serial(3), 14)).toBeUndefined();
    expect(await store.findCounter(serial(3), 2, 20)).toBeUndefined();
    expect(await store.findCounter('PACK-9999', 0)).toBeUndefined();
    await store.append([{ ...sampleInput(N), serial: serial(3), counter: 2 }]); // a resend logged again
    expect(await store.findCounter(serial(3), 2)).toBe(N);
    expect(store.pack(serial(3))).toEqual({ serial: serial(3), packId: 3, entries: 15, firstIndex: 3, lastIndex: N, lastCounter: 2, maxCounter: 13, lastReceivedAt: T0 + N * 10 });
    const packs = store.packs();
    await store.close();
    const again = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(again.packs()).toEqual(packs);
    await again.close();
  });
});
