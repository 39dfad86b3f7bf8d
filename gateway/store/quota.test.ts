/**
 * The disk quota: appends fail with STORE_QUOTA rather than delete what the ledger has not
 * acknowledged; after markSynced, whole segments below the synced size are pruned oldest first,
 * only as far as needed; the root, proofs and checkpoints of the remaining log stay valid and
 * survive a restart; an interrupted prune is finished on open; holes and strays in the segment
 * sequence are told apart.
 */
import { cp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { leafHash, openCheckpoint, rootOfLeaves, verifyConsistency, verifyInclusion } from '../../protocol/index.js';
import { LogStore } from './log-store.js';
import { measureUsage } from './quota.js';
import { TEST_ORIGIN, crashCopy, sampleData, sampleInput, tempDir, testSigner } from './testkit.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function dir(): Promise<string> {
  const d = await tempDir('quota');
  dirs.push(d);
  return d;
}

const ref = Array.from({ length: 200 }, (_, i) => leafHash(sampleData(i)));

/** Appends one entry at a time until STORE_QUOTA; returns the size reached. */
async function fill(store: LogStore, limit = 200): Promise<number> {
  while (store.size < limit) {
    try {
      await store.append([sampleInput(store.size)]);
    } catch (e) {
      expect(e).toMatchObject({ code: 'STORE_QUOTA' });
      break;
    }
  }
  return store.size;
}

const { signer } = testSigner();

describe('LogStore quota', () => {
  it('refuses appends with STORE_QUOTA while nothing is acknowledged, and stays within the quota', async () => {
    const d = await dir();
    const store = await LogStore.open({ dir: d, origin: TEST_ORIGIN, segmentBits: 3, quotaBytes: 12_000 });
    const n = await fill(store);
    expect(n).toBeGreaterThan(16);
    expect(n).toBeLessThan(40);
    await store.flush();
    // Segment data never goes past the quota; state.json and checkpoints are never refused (tiny).
    expect(store.usage.bytes).toBeLessThanOrEqual(12_000 + 1024);
    expect(store.stats.quotaRejects).toBe(1);
    expect(store.firstIndex).toBe(0);
    await expect(store.append([sampleInput(n)])).rejects.toMatchObject({ code: 'STORE_QUOTA' });
    expect(store.size).toBe(n);
    await store.close();
  });

  it('after markSynced prunes only acknowledged segments, oldest first, and only as needed', async () => {
    const d = await dir();
    const store = await LogStore.open({ dir: d, origin: TEST_ORIGIN, segmentBits: 3, quotaBytes: 12_000 });
    const n = await fill(store);
    await store.checkpoint(signer);
    store.markSynced(12); // segment 0 (entries 0..7) is acknowledged; segment 1 only in part
    await store.append([sampleInput(n)]);
    expect(store.firstIndex).toBe(8);
    expect(store.stats.prunedSegments).toBe(1);
    const m = await fill(store);
    expect(store.firstIndex).toBe(8); // 8..11 of segment 1 are acknowledged but 12..15 are not
    await store.checkpoint(signer);
    store.markSynced(m);
    await store.append([sampleInput(m)]);
    expect(store.firstIndex).toBe(16); // one more segment was enough
    expect(store.usage.bytes).toBeLessThanOrEqual(12_000);
    await store.close();
  });

  it('never prunes past the latest checkpoint, even when the ledger acknowledged more', async () => {
    const d = await dir();
    const store = await LogStore.open({ dir: d, origin: TEST_ORIGIN, segmentBits: 3, quotaBytes: 12_000 });
    const n = await fill(store);
    store.markSynced(n);
    await expect(store.append([sampleInput(n)])).rejects.toMatchObject({ code: 'STORE_QUOTA' });
    expect(store.firstIndex).toBe(0);
    await store.checkpoint(signer);
    await store.append([sampleInput(n)]);
    expect(store.firstIndex).toBeGreaterThan(0);
    await store.close();
  });

  it('never prunes the segment holding the newest entry, even when everything is acknowledged', async () => {
    const d = await dir();
    const first = await LogStore.open({ dir: d, origin: TEST_ORIGIN, segmentBits: 3 });
    await first.append(Array.from({ length: 8 }, (_, i) => sampleInput(i))); // segment 0 exactly full
    await first.close();
    const probe = await LogStore.open({ dir: d, origin: TEST_ORIGIN });
    const used = probe.usage.bytes;
    await probe.close();
    // Room for less than one more entry: the only way to make room would be segment 0 itself.
    const store = await LogStore.open({ dir: d, origin: TEST_ORIGIN, quotaBytes: used + 100 });
    await store.checkpoint(signer);
    store.markSynced(8);
    await expect(store.append([sampleInput(8)])).rejects.toMatchObject({ code: 'STORE_QUOTA' });
    expect(store.firstIndex).toBe(0);
    expect(store.get(7).data).toEqual(sampleData(7));
    await store.close();
  });

  it('keeps roots, proofs and checkpoint consistency valid across pruning and restarts', async () => {
    const d = await dir();
    const { signer, verifier } = testSigner();
    const store = await LogStore.open({ dir: d, origin: TEST_ORIGIN, segmentBits: 3, quotaBytes: 12_000 });
    const n = await fill(store);
    const cps = [await store.checkpoint(signer)];
    store.markSynced(n);
    for (let i = 0; i < 20; i++) {
      store.markSynced(store.size);
      await store.append([sampleInput(store.size)]);
      cps.push(await store.checkpoint(signer));
    }
    expect(store.firstIndex).toBeGreaterThan(0);
    const size = store.size;
    const root = rootOfLeaves(ref.slice(0, size));
    expect(store.root()).toEqual(root); // pruned leaves still count in the tree
    for (let i = store.firstIndex; i < size; i++) verifyInclusion(i, size, ref[i]!, store.inclusionProof(i), root);
    expect(() => store.get(0)).toThrow(expect.objectContaining({ code: 'STORE_RANGE' }) as Error);
    expect(() => store.inclusionProof(0)).toThrow(expect.objectContaining({ code: 'STORE_RANGE' }) as Error);
    // Every checkpoint at or after the pruned boundary is still provably a prefix of the newest.
    const latest = openCheckpoint(cps.at(-1)!.note, { origin: TEST_ORIGIN, verifiers: [verifier] });
    const provable = cps.filter((c) => c.size >= store.firstIndex);
    expect(provable.length).toBeGreaterThan(5);
    for (const c of provable) verifyConsistency(c.size, latest.size, store.consistencyProof(c.size), c.rootHash, latest.rootHash);
    await store.flush();
    expect(store.usage.bytes).toBe(await measureUsage(d, await readdir(d))); // the quota counts what is on disk
    await store.close();

    const again = await LogStore.open({ dir: d, origin: TEST_ORIGIN, quotaBytes: 12_000 });
    expect(again.report.firstIndex).toBe(store.firstIndex);
    expect(again.root()).toEqual(root);
    verifyInclusion(size - 1, size, ref[size - 1]!, again.inclusionProof(size - 1), root);
    await again.append([sampleInput(size)]);
    expect(again.root()).toEqual(rootOfLeaves(ref.slice(0, size + 1)));
    await again.close();
  });

  it('finishes a prune interrupted after the hashes were saved, on the next open', async () => {
    const d = await dir();
    const store = await LogStore.open({ dir: d, origin: TEST_ORIGIN, segmentBits: 3, quotaBytes: 12_000 });
    const n = await fill(store);
    const before = await crashCopy(d);
    dirs.push(before);
    await store.checkpoint(signer);
    store.markSynced(n);
    await store.append([sampleInput(n)]);
    expect(store.firstIndex).toBe(8);
    const after = await crashCopy(d);
    dirs.push(after);
    await store.close();
    // The crash came after pruned.hashes and state.json, and after all but the leaves were deleted.
    await cp(join(before, '00000000.leaves'), join(after, '00000000.leaves'));
    const again = await LogStore.open({ dir: after, origin: TEST_ORIGIN });
expect(again.report.deletedFiles).toEqual(['00000000.leaves']);
    expect(again.firstIndex).toBe(8);
    expect(again.root()).toEqual(rootOfLeaves(ref.slice(0, n + 1)));
    await again.close();
    expect((await readdir(after)).filter((f) => f.startsWith('00000000.'))).toEqual([]);
  });

  it('deletes stray files past the last segment but refuses a hole with STORE_CORRUPT', async () => {
    const d = await dir();
    const store = await LogStore.open({ dir: d, origin: TEST_ORIGIN, segmentBits: 3 });
    for (let i = 0; i < 20; i++) await store.append([sampleInput(i)]);
    await store.close();
    await writeFile(join(d, '00000007.idx'), Buffer.alloc(48));
    const again = await LogStore.open({ dir: d, origin: TEST_ORIGIN });
    expect(again.report.deletedFiles).toEqual(['00000007.idx']);
    expect(again.size).toBe(20);
    await again.close();
    await rm(join(d, '00000001.leaves'));
    await expect(LogStore.open({ dir: d, origin: TEST_ORIGIN })).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
  });
});
