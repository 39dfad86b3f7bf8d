/**
 * Checkpoints: signed over the durable size with the gateway key, verifiable with protocol's
 * openCheckpoint, consistent with every earlier one across restarts, never re-signed for an
 * unchanged size, due per policy; and on open the tree must still match the latest one — damage
 * under a signed checkpoint is STORE_CORRUPT, never silently re-signed over.
 */
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkConsistentCheckpoints, createNoteSigner, openCheckpoint, storedHashIndex } from '../../protocol/index.js';
import { checkpointDue } from './checkpoints.js';
import { LogStore } from './log-store.js';
import { TEST_ORIGIN, bytesOf, sampleInput, tempDir, testSigner } from './testkit.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function open(extra: { segmentBits?: number } = {}): Promise<{ dir: string; store: LogStore }> {
  const dir = await tempDir('cp');
  dirs.push(dir);
  return { dir, store: await LogStore.open({ dir, origin: TEST_ORIGIN, segmentBits: 5, ...extra }) };
}

const add = async (store: LogStore, n: number): Promise<void> => {
  const from = store.size;
  await store.append(Array.from({ length: n }, (_, i) => sampleInput(from + i)));
};

const { signer, verifier } = testSigner();
const opts = { origin: TEST_ORIGIN, verifiers: [verifier] };

describe('LogStore checkpoints', () => {
  it('signs the durable size and root with the gateway key', async () => {
    const { store } = await open();
    await add(store, 10);
    const cp = await store.checkpoint(signer);
    const opened = openCheckpoint(cp.note, opts);
    expect(opened).toMatchObject({ origin: TEST_ORIGIN, size: 10 });
    expect(opened.rootHash).toEqual(store.root(10));
    expect(store.latestCheckpoint()).toEqual(cp);
    await store.close();
  });

  it('returns the same checkpoint, unsigned anew, while the log has not grown', async () => {
    const { store } = await open();
    await add(store, 3);
    const a = await store.checkpoint(signer);
    const b = await store.checkpoint(signer);
    expect(b).toBe(a);
    expect(store.stats.checkpoints).toBe(1);
    await store.close();
  });

  it('refuses a signer whose name is not the origin with STORE_CONFIG', async () => {
    const { store } = await open();
    const other = createNoteSigner('packchain.gateway/other', bytesOf('other', 32));
    await expect(store.checkpoint(other)).rejects.toMatchObject({ code: 'STORE_CONFIG' });
    await store.close();
  });

  it('keeps every checkpoint consistent with the earlier ones, across restarts and segments', async () => {
    const { dir, store } = await open({ segmentBits: 3 });
    const cps = [];
    for (let round = 0; round < 4; round++) {
      await add(store, 5 + round);
      cps.push(await store.checkpoint(signer));
    }
    await store.close();
    const again = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(again.latestCheckpoint()).toEqual(cps.at(-1));
    await add(again, 7);
    cps.push(await again.checkpoint(signer));
    const listed = [];
    for await (const c of again.checkpoints()) listed.push(c);
    expect(listed).toEqual(cps);
    for (let i = 0; i < cps.length; i++) {
      for (let j = i; j < cps.length; j++) {
        const a = openCheckpoint(cps[i]!.note, opts);
        const b = openCheckpoint(cps[j]!.note, opts);
        checkConsistentCheckpoints(a, b, again.consistencyProof(a.size, b.size));
      }
    }
    await again.close();
  });

  it('signs only when due: every N entries or T ms, and never for an unchanged log', async () => {
    expect(checkpointDue({ everyEntries: 10, everyMs: 1000 }, 0, undefined, 0)).toBe(false);
    expect(checkpointDue({ everyEntries: 10, everyMs: 1000 }, 1, undefined, 0)).toBe(true);
    expect(checkpointDue({ everyEntries: 10, everyMs: 1000 }, 19, { size: 10, at: 0 }, 999)).toBe(false);
    expect(checkpointDue({ everyEntries: 10, everyMs: 1000 }, 20, { size: 10, at: 0 }, 1)).toBe(true);
    expect(checkpointDue({ everyEntries: 10, everyMs: 1000 }, 11, { size: 10, at: 0 }, 1000)).toBe(true);
    expect(checkpointDue({ everyEntries: 10, everyMs: 1000 }, 10, { size: 10, at: 0 }, 1e9)).toBe(false);
    const { store } = await open();
    const policy = { everyEntries: 4, everyMs: 60_000 };
    await add(store, 2);
    const now = Date.now();
    expect((await store.maybeCheckpoint(signer, policy, now))?.size).toBe(2);
    await add(store, 3);
    expect(await store.maybeCheckpoint(signer, policy, now)).toBeUndefined();
    await add(store, 1);
    expect((await store.maybeCheckpoint(signer, policy, now))?.size).toBe(6);
    await add(store, 1);
    expect((await store.maybeCheckpoint(signer, policy, now + 60_000))?.size).toBe(7);
    await store.close();
  });

  it('never covers entries that are not yet durable, even with appends in flight', async () => {
    const { store } = await open();
    const appends = Array.from({ length: 20 }, (_, i) => store.append([sampleInput(i)]));
    const cps = await Promise.all([store.checkpoint(signer), appends[5], store.checkpoint(signer), ...appends]);
    const sizes = [cps[0], cps[2]].map((c) => (c as { size: number }).size);
    for (const s of sizes) expect(s).toBeLessThanOrEqual(20);
    expect(sizes[1]).toBeGreaterThanOrEqual(sizes[0]!);
    await store.close();
  });

  it('refuses to open when the tree no longer matches the latest checkpoint; read-only reports it', async () => {
    const { dir, store } = await open();
    await add(store, 10);
    await store.checkpoint(signer);
    await store.close();
    // Damage a stored hash that the root of size 10 is built from: node (3,0), entries 0..7.
    const path = join(dir, '00000000.hashes');
    const b = await readFile(path);
    const at = storedHashIndex(3, 0) * 32;
    b[at] = (b[at] ?? 0) ^ 1;
    await writeFile(path, b);
    await expect(LogStore.open({ dir, origin: TEST_ORIGIN })).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    const ro = await LogStore.open({ dir, readOnly: true });
    expect(ro.report.corrupt?.reason).toMatch(/no longer has the root the latest checkpoint signed/);
    await ro.close();
  });

  it('cuts a torn record at the end of the checkpoint history before appending', async () => {
    const { dir, store } = await open();
    await add(store, 4);
    const a = await store.checkpoint(signer);
    await store.close();
    await appendFile(join(dir, '00000000.checkpoints'), Buffer.from([0, 0, 0, 200, 0, 0, 0]));
    const again = await LogStore.open({ dir, origin: TEST_ORIGIN });
    const listedTorn = [];
    for await (const c of again.checkpoints()) listedTorn.push(c.size);
    expect(listedTorn).toEqual([4]);
    await add(again, 2);
    const b = await again.checkpoint(signer);
    const listed = [];
    for await (const c of again.checkpoints()) listed.push(c);
    expect(listed).toEqual([a, b]);
    await again.close();
  });
});
