import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { checkConsistentCheckpoints, decodeUploadRequest, MAX_UPLOAD_ENTRIES, parseCheckpoint, parseNote, toHex } from '../../protocol/index.js';
import { LogStore } from '../store/log-store.js';
import { bytesOf, sampleInput, tempDir, testSigner, TEST_ORIGIN } from '../store/testkit.js';
import { backoffCeiling, backoffDelay, checkBackoff } from './backoff.js';
import { clampBatchEntries, uploadBatches, type Batch } from './batches.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function storeWith(n: number): Promise<LogStore> {
  const dir = await tempDir('sync');
  dirs.push(dir);
  const store = await LogStore.open({ dir, origin: TEST_ORIGIN });
  await store.append(Array.from({ length: n }, (_, i) => sampleInput(i)));
  return store;
}

/** Chains by certificate hash: pack k's chain is [device k, one shared intermediate]. */
const chains = (sha: Uint8Array): Uint8Array[] | undefined => {
  for (let k = 0; k < 5; k++) if (toHex(sha) === toHex(bytesOf(`cert ${k}`, 32))) return [bytesOf(`device ${k}`, 300), bytesOf('intermediate', 400)];
  return undefined;
};

async function collect(g: AsyncGenerator<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of g) out.push(b);
  return out;
}

describe('uploadBatches', () => {
  it('cuts [from, to) into batches of at most maxEntries, the checkpoint and its consistency proof on the last only', async () => {
    const store = await storeWith(50);
    try {
      const old = await store.checkpoint(testSigner().signer);
      expect(old.size).toBe(50);
      await store.append(Array.from({ length: 30 }, (_, i) => sampleInput(50 + i)));
      const cp = await store.checkpoint(testSigner().signer);
      const batches = await collect(uploadBatches(store, chains, { from: 50, to: 80, checkpoint: cp, proofFrom: 50, maxEntries: 8, maxBytes: 4 << 20 }));
      expect(batches.map((b) => [b.from, b.count, b.final])).toEqual([[50, 8, false], [58, 8, false], [66, 8, false], [74, 6, true]]);
      const reqs = batches.map((b) => decodeUploadRequest(b.body));
      expect(reqs.slice(0, 3).every((r) => r.checkpoint === undefined)).toBe(true);
      const last = reqs[3];
      expect(last?.checkpoint).toBe(cp.note);
      expect(last?.proofFrom).toBe(50);
      expect(() => {
        checkConsistentCheckpoints(parseCheckpoint(parseNote(old.note).text), parseCheckpoint(parseNote(cp.note).text), last?.proof ?? []);
      }).not.toThrow();
      // Every entry's chain once per batch; the shared intermediate once per batch.
      for (const r of reqs) expect(new Set(r.certs.map((c) => toHex(c))).size).toBe(r.certs.length);
      expect(reqs[0]?.certs.length).toBe(6); // 5 device certificates + the intermediate
    } finally {
      await store.close();
    }
  });

  it('when nothing is left to send but the checkpoint › one batch with no entries and the checkpoint', async () => {
    const store = await storeWith(10);
    try {
      const cp = await store.checkpoint(testSigner().signer);
      const batches = await collect(uploadBatches(store, chains, { from: 10, to: 10, checkpoint: cp, proofFrom: 0, maxEntries: 100, maxBytes: 4 << 20 }));
      expect(batches).toHaveLength(1);
      expect(decodeUploadRequest((batches[0] as Batch).body)).toMatchObject({ from: 10, entries: [], checkpoint: cp.note, proofFrom: 0 });
    } finally {
      await store.close();
    }
  });

  it('sends a leaf whose chain is missing anyway, and counts it', async () => {
    const store = await storeWith(5);
    try {
      const cp = await store.checkpoint(testSigner().signer);
      const [b] = await collect(uploadBatches(store, () => undefined, { from: 0, to: 5, checkpoint: cp, proofFrom: 0, maxEntries: 100, maxBytes: 4 << 20 }));
      expect(b?.count).toBe(5);
      expect(b?.missingChains).toBe(5);
      expect(decodeUploadRequest((b as Batch).body).certs).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('keeps a batch body under maxBytes by cutting earlier', async () => {
    const store = await storeWith(400);
    try {
      const cp = await store.checkpoint(testSigner().signer);
      const batches = await collect(uploadBatches(store, chains, { from: 0, to: 400, checkpoint: cp, proofFrom: 0, maxEntries: 8192, maxBytes: 1 }));
      expect(batches.length).toBeGreaterThan(1); // clamped to the minimum body size, below 400 leaves' worth
      expect(batches.reduce((a, b) => a + b.count, 0)).toBe(400);
      expect(batches.every((b) => b.body.length <= 64 * 1024 + 8192 + 64 * 34 + 512)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('clamps a configured batch size to the protocol cap', () => {
    expect(clampBatchEntries(65_536)).toBe(MAX_UPLOAD_ENTRIES);
    expect(clampBatchEntries(0)).toBe(1);
  });
});

describe('backoff', () => {
  const p = { baseMs: 100, maxMs: 1000 };
  it('doubles the ceiling per failure up to the cap', () => {
    expect([1, 2, 3, 4, 5, 60].map((n) => backoffCeiling(p, n))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
  it('draws the delay uniformly below the ceiling (full jitter)', () => {
    expect(backoffDelay(p, 3, () => 0)).toBe(0);
    expect(backoffDelay(p, 3, () => 0.5)).toBe(200);
    expect(backoffDelay(p, 3, () => 0.999999)).toBeLessThan(400);
    expect(backoffDelay(p, 3, () => Number.NaN)).toBe(200);
  });
  it('when the policy is out of range › SYNC_CONFIG', () => {
    expect(() => {
      checkBackoff({ baseMs: 0, maxMs: 10 });
    }).toThrow(/backoff/);
    expect(() => {
      checkBackoff({ baseMs: 20, maxMs: 10 });
    }).toThrow(/backoff/);
  });
});
