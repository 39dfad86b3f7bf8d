/**
 * LogStore's main contract: appends resolve with contiguous indexes once durable, entries read back
 * byte for byte, roots and proofs match protocol's reference Merkle tree and verify, everything
 * survives a clean restart, and bad input or misuse yields a GatewayError with the right code.
 */
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeLeaf, leafHash, rootOfLeaves, verifyConsistency, verifyInclusion } from '../../protocol/index.js';
import { LogStore } from './log-store.js';
import { T0, TEST_ORIGIN, sampleData, sampleInput, tempDir } from './testkit.js';

const dirs: string[] = [];
const stores: LogStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function fresh(extra: Partial<Parameters<typeof LogStore.open>[0]> = {}): Promise<{ dir: string; store: LogStore }> {
  const dir = await tempDir();
  dirs.push(dir);
  const store = await LogStore.open({ dir, origin: TEST_ORIGIN, segmentBits: 4, ...extra });
  stores.push(store);
  return { dir, store };
}

async function reopen(dir: string, extra: Partial<Parameters<typeof LogStore.open>[0]> = {}): Promise<LogStore> {
  const store = await LogStore.open({ dir, origin: TEST_ORIGIN, ...extra });
  stores.push(store);
  return store;
}

async function appendSeq(store: LogStore, from: number, n: number): Promise<number[]> {
  const r = await store.append(Array.from({ length: n }, (_, i) => sampleInput(from + i)));
  return r.entries.map((e) => e.index);
}

const leaves = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => sampleData(i));

describe('LogStore', () => {
  describe('when entries are appended', () => {
    it('resolves with contiguous indexes, the leaf hashes and the durable size', async () => {
      const { store } = await fresh();
      const r = await store.append([sampleInput(0), sampleInput(1), sampleInput(2)]);
      expect(r.entries.map((e) => e.index)).toEqual([0, 1, 2]);
      expect(r.entries.map((e) => e.leafHash)).toEqual(leaves(3).map(leafHash));
      expect(r.size).toBe(3);
      expect(store.size).toBe(3);
    });

    it('with a pre-encoded leaf › stores those bytes and hashes that leaf hash into the tree', async () => {
      const { store } = await fresh();
      const a = sampleInput(0);
      const data = sampleData(0);
      const r = await store.append([{ ...a, encoded: { data, leafHash: leafHash(data) } }, sampleInput(1)]);
      expect(r.entries.map((e) => e.leafHash)).toEqual(leaves(2).map(leafHash));
      expect(store.get(0).data).toEqual(data);
      expect(store.root()).toEqual(rootOfLeaves(leaves(2).map(leafHash)));
    });

    it('with a pre-encoded leaf whose receivedAt must be raised › encodes and hashes the clamped leaf anew', async () => {
      const { store } = await fresh();
      await store.append([sampleInput(5)]);
      const late = sampleInput(1); // receivedAt before entry 0's: raised to it
      const data = sampleData(1);
      const r = await store.append([{ ...late, encoded: { data, leafHash: leafHash(data) } }]);
      const stored = store.get(1);
      expect(decodeLeaf(stored.data).receivedAt).toBe(T0 + 50);
      expect(stored.data).not.toEqual(data);
      expect(r.entries[0]?.leafHash).toEqual(leafHash(stored.data));
      expect(store.root()).toEqual(rootOfLeaves([sampleData(5), stored.data].map(leafHash)));
    });

    it('with a pre-encoded leaf of a wrong size or hash length › rejects STORE_INPUT and stores nothing', async () => {
      const { store } = await fresh();
      const data = sampleData(0);
      await expect(store.append([{ ...sampleInput(0), encoded: { data, leafHash: new Uint8Array(31) } }])).rejects.toMatchObject({ code: 'STORE_INPUT' });
      await expect(store.append([{ ...sampleInput(0), encoded: { data: new Uint8Array(0), leafHash: leafHash(data) } }])).rejects.toMatchObject({ code: 'STORE_INPUT' });
      expect(store.size).toBe(0);
    });

    it('groups concurrent appends into commits without reordering or losing any', async () => {
      const { store } = await fresh({ maxBatchEntries: 16 });
      const calls = Array.from({ length: 40 }, (_, c) => store.append([sampleInput(2 * c), sampleInput(2 * c + 1)]));
      const results = await Promise.all(calls);
      expect(results.flatMap((r) => r.entries.map((e) => e.index))).toEqual(Array.from({ length: 80 }, (_, i) => i));
      expect(store.stats.commits).toBeLessThan(40);
      expect(store.stats.appendedEntries).toBe(80);
      for (let i = 0; i < 80; i++) expect(store.get(i).data).toEqual(sampleData(i));
    });

    it('reads every entry back byte for byte, across segment boundaries', async () => {
      const { store } = await fresh();
      await appendSeq(store, 0, 37); // segments of 16: two sealed, one active
      for (let i = 0; i < 37; i++) {
        const e = store.get(i);
        expect(e.data).toEqual(sampleData(i));
        expect(e.leafHash).toEqual(leafHash(sampleData(i)));
        expect(store.leafHash(i)).toEqual(e.leafHash);
        expect(e).toMatchObject({ index: i, serial: sampleInput(i).serial, counter: sampleInput(i).counter, receivedAt: T0 + i * 10 });
      }
      const all: number[] = [];
      for await (const e of store.entries()) all.push(e.index);
      expect(all).toEqual(Array.from({ length: 37 }, (_, i) => i));
      const some: Uint8Array[] = [];
      for await (const e of store.entries(15, 33)) some.push(e.data);
      expect(some).toEqual(leaves(33).slice(15));
    });

    it('never strands an append queued just as the previous commit settles', async () => {
      const { store } = await fresh();
      for (let i = 0; i < 60; i++) {
        await store.append([sampleInput(i)]);
        for (let hop = 0; hop < i % 6; hop++) await Promise.resolve(); // land in every microtask slot
      }
      expect(store.size).toBe(60);
    });

    it('raises receivedAt to the last one seen when the clock steps back, and stores that in the leaf', async () => {
      const { store } = await fresh();
      await store.append([sampleInput(0, 5, T0 + 5000)]);
      const r = await store.append([sampleInput(1, 5, T0 + 1000)]);
      expect(r.entries[0]?.receivedAt).toBe(T0 + 5000);
      expect(decodeLeaf(store.get(1).data).receivedAt).toBe(T0 + 5000);
      expect(store.get(1).leafHash).toEqual(r.entries[0]?.leafHash);
    });
  });

  describe('roots and proofs', () => {
    it('match the reference tree and verify for every index and size', async () => {
      const { store } = await fresh();
      await appendSeq(store, 0, 35);
      const all = leaves(35);
      for (let n = 0; n <= 35; n++) expect(store.root(n)).toEqual(rootOfLeaves(all.slice(0, n).map(leafHash)));
      for (let n = 1; n <= 35; n += 3) {
        const root = store.root(n);
        for (let i = 0; i < n; i++) verifyInclusion(i, n, leafHash(all[i]!), store.inclusionProof(i, n), root);
        for (let m = 0; m <= n; m++) verifyConsistency(m, n, store.consistencyProof(m, n), store.root(m), root);
      }
    });

    it('rejects indexes and sizes beyond the log with STORE_RANGE', async () => {
      const { store } = await fresh();
      await appendSeq(store, 0, 3);
      expect(() => store.get(3)).toThrow(expect.objectContaining({ code: 'STORE_RANGE' }) as Error);
      expect(() => store.get(-1)).toThrow(expect.objectContaining({ code: 'STORE_RANGE' }) as Error);
      expect(() => store.root(4)).toThrow(expect.objectContaining({ code: 'STORE_RANGE' }) as Error);
      expect(() => store.inclusionProof(3, 3)).toThrow(expect.objectContaining({ code: 'STORE_RANGE' }) as Error);
      expect(() => store.consistencyProof(4)).toThrow(expect.objectContaining({ code: 'STORE_RANGE' }) as Error);
      expect(() => store.leafHash(1.5)).toThrow(expect.objectContaining({ code: 'STORE_RANGE' }) as Error);
    });
  });

  describe('after a clean restart', () => {
    it('has the same size, entries, root and pack summaries, and keeps appending', async () => {
      const { dir, store } = await fresh();
      await appendSeq(store, 0, 21);
      const root = store.root();
      const packs = store.packs();
      await store.close();
      const again = await reopen(dir);
      expect(again.report).toMatchObject({ created: false, size: 21, cutEntries: 0, cutBytes: 0, repairedIdx: 0, repairedHashes: 0, replayedEntries: 0 });
      expect(again.root()).toEqual(root);
      expect(again.packs()).toEqual(packs);
      expect(await appendSeq(again, 21, 4)).toEqual([21, 22, 23, 24]);
      expect(again.root()).toEqual(rootOfLeaves(leaves(25).map(leafHash)));
    });

    it('opens read-only without the lock while the writer runs, and refuses writes there', async () => {
      const { dir, store } = await fresh();
      await appendSeq(store, 0, 10);
      const ro = await LogStore.open({ dir, readOnly: true });
      stores.push(ro);
      expect(ro.size).toBe(10);
      expect(ro.root()).toEqual(store.root());
      await expect(ro.append([sampleInput(10)])).rejects.toMatchObject({ code: 'STORE_CLOSED' });
    });
  });

  describe('when given bad input or misused', () => {
    it('rejects a malformed leaf, serial or counter with STORE_INPUT and queues nothing', async () => {
      const { store } = await fresh();
      const good = sampleInput(0);
      await expect(store.append([{ ...good, serial: 'bad serial!' }])).rejects.toMatchObject({ code: 'STORE_INPUT' });
      await expect(store.append([{ ...good, counter: -1 }])).rejects.toMatchObject({ code: 'STORE_INPUT' });
      await expect(store.append([good, { ...good, leaf: { ...good.leaf, frame: new Uint8Array(0) } }])).rejects.toMatchObject({ code: 'STORE_INPUT' });
      await expect(store.append([{ ...good, leaf: { ...good.leaf, certSha256: new Uint8Array(3) } }])).rejects.toThrow(/^gateway: store: append: item 0/);
      expect(store.size).toBe(0);
      expect(store.stats.inputRejects).toBe(4);
    });

    it('refuses appends and reads after close with STORE_CLOSED', async () => {
      const { store } = await fresh();
      await appendSeq(store, 0, 3);
      await store.close();
      await expect(store.append([sampleInput(3)])).rejects.toMatchObject({ code: 'STORE_CLOSED' });
      expect(() => store.get(1)).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }) as Error);
      expect(() => store.inclusionProof(1)).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }) as Error);
    });

    it('refuses to reopen with another origin or segment size, or to create without an origin', async () => {
      const { dir, store } = await fresh();
      await store.close();
      await expect(LogStore.open({ dir, origin: 'packchain.gateway/other' })).rejects.toMatchObject({ code: 'STORE_CONFIG' });
      await expect(LogStore.open({ dir, segmentBits: 5 })).rejects.toMatchObject({ code: 'STORE_CONFIG' });
      const empty = await tempDir();
      dirs.push(empty);
      await expect(LogStore.open({ dir: empty })).rejects.toMatchObject({ code: 'STORE_CONFIG' });
      await expect(LogStore.open({ dir: empty, origin: 'not-an-origin' })).rejects.toMatchObject({ code: 'STORE_CONFIG' });
      await expect(LogStore.open({ dir: empty, origin: TEST_ORIGIN, segmentBits: 17 })).rejects.toMatchObject({ code: 'STORE_CONFIG' });
    });
  });
});
