/**
 * Pack order for sealed segments (sealed.ts): a segment is rewritten into `k.sealed` once the next
 * one is sealed; every read (entries, get, history, findCounter), root and proof is unchanged; a
 * crash at any step of the rewrite leaves a store that opens with every entry; damage to a sealed
 * file is STORE_CORRUPT, never a wrong frame.
 */
import { cp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { leafHash, rootOfLeaves, verifyInclusion } from '../../protocol/index.js';
import { SEALED_HEADER, parseSealedHeader, readIdxRecord } from './format.js';
import { LogStore } from './log-store.js';
import { TEST_ORIGIN, sampleData, sampleInput, tempDir } from './testkit.js';

const dirs: string[] = [];
const stores: LogStore[] = [];
const PER = 16; // segmentBits 4
const N = 4 * PER + 5; // segments 0–3 sealed, 4 active: 0, 1 and 2 rewritten

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function open(dir: string, packOrder: boolean): Promise<LogStore> {
  const s = await LogStore.open({ dir, origin: TEST_ORIGIN, segmentBits: 4, packOrder });
  stores.push(s);
  return s;
}

async function filled(packOrder: boolean): Promise<{ dir: string; store: LogStore }> {
  const dir = await tempDir('sealed');
  dirs.push(dir);
  const store = await open(dir, packOrder);
  for (let i = 0; i < N; i += 7) await store.append(Array.from({ length: Math.min(7, N - i) }, (_, j) => sampleInput(i + j)));
  await store.flush();
  await store.flush(); // the rewrite queued by the last seal's task
  return { dir, store };
}

async function closeAll(): Promise<void> {
  for (const s of stores.splice(0)) await s.close();
}

/** Everything a reader can see of the log, compared against what was appended. */
async function expectIntact(store: LogStore): Promise<void> {
  expect(store.size).toBe(N);
  const hashes = Array.from({ length: N }, (_, i) => leafHash(sampleData(i)));
  expect(store.root()).toEqual(rootOfLeaves(hashes));
  for (const i of [0, 17, 33, 47, N - 1]) {
    expect(store.get(i).data).toEqual(sampleData(i));
    verifyInclusion(i, N, hashes[i]!, store.inclusionProof(i), store.root());
  }
  const all: Uint8Array[] = [];
  for await (const e of store.entries()) all.push(e.data);
  expect(all).toEqual(Array.from({ length: N }, (_, i) => sampleData(i)));
  for (let p = 0; p < 5; p++) {
    const serial = `PACK-${String(p).padStart(4, '0')}`;
    const got: number[] = [];
    for await (const e of store.history(serial)) {
      expect(e.data).toEqual(sampleData(e.index));
      got.push(e.index);
    }
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i).filter((i) => i % 5 === p));
  }
  expect(await store.findCounter('PACK-0003', 4)).toBe(23); // entry 23 = pack 3, counter 4, in a sealed segment
}

describe('pack order for sealed segments', () => {
  it('rewrites every segment below the last sealed one into k.sealed and reads, roots and proofs are unchanged', async () => {
    const { dir, store } = await filled(true);
    const names = (await readdir(dir)).sort();
    for (const k of ['00000000', '00000001', '00000002']) {
      expect(names).toContain(`${k}.sealed`);
      expect(names).not.toContain(`${k}.leaves`);
      expect(names).not.toContain(`${k}.idx`);
      expect(names).not.toContain(`${k}.packs`);
    }
    expect(names).toContain('00000003.leaves'); // the last sealed segment stays in entry order
    expect(store.stats.sealedSegments).toBe(3);
    await expectIntact(store);
    await closeAll();
    await expectIntact(await open(dir, true));
  });

  it("groups each pack's leaf records of a segment into one contiguous run", async () => {
    const { dir } = await filled(true);
    const bytes = await readFile(join(dir, '00000001.sealed'));
    const l = parseSealedHeader(bytes);
    expect(l).toBeDefined();
    const recs = Array.from({ length: PER }, (_, i) => readIdxRecord(bytes, SEALED_HEADER + i * 24));
    const packIds = [...new Set(recs.map((r) => r.packId))];
    expect(packIds).toHaveLength(5);
    for (const id of packIds) {
      const mine = recs.filter((r) => r.packId === id).map((r) => r.offset);
      expect(mine).toEqual([...mine].sort((a, b) => a - b)); // entry order within the pack
      // contiguous: each record starts where the previous one ended (40 bytes + its data length)
      for (let j = 1; j < mine.length; j++) {
        const prev = mine[j - 1] ?? 0;
        expect(mine[j]).toBe(prev + 40 + bytes.readUInt32BE(prev));
      }
    }
  });

  it('without packOrder leaves segments in entry order; a later open with it rewrites the backlog', async () => {
    const { dir, store } = await filled(false);
    expect((await readdir(dir)).some((n) => n.endsWith('.sealed'))).toBe(false);
    await expectIntact(store);
    await closeAll();
    const again = await open(dir, true);
    await again.flush();
    await expect.poll(() => again.stats.sealedSegments).toBe(3);
    await expectIntact(again);
  });

  it('after a crash between the rename and the deletes › opens with the sealed file and deletes the files it replaced', async () => {
    const { dir } = await filled(false);
    await closeAll();
    const before = await tempDir('sealed-before');
    dirs.push(before);
    await cp(dir, before, { recursive: true });
    const s = await open(dir, true);
    await expect.poll(() => s.stats.sealedSegments).toBe(3);
    await closeAll();
    for (const kind of ['leaves', 'idx', 'packs']) await cp(join(before, `00000001.${kind}`), join(dir, `00000001.${kind}`));
    const again = await open(dir, false);
    expect([...again.report.deletedFiles].sort()).toEqual(['00000001.idx', '00000001.leaves', '00000001.packs']);
    await expectIntact(again);
  });

  it('after a crash before the rename (a partial .sealed.tmp) › opens in entry order and the rewrite starts over', async () => {
    const { dir } = await filled(false);
    await closeAll();
    await writeFile(join(dir, '00000000.sealed.tmp'), Buffer.alloc(100, 7));
    const again = await open(dir, true);
    await expect.poll(() => again.stats.sealedSegments).toBe(3);
    expect((await readdir(dir)).some((n) => n.endsWith('.tmp'))).toBe(false);
    await expectIntact(again);
  });

  it('when a sealed file header is damaged › open refuses with STORE_CORRUPT', async () => {
    const { dir } = await filled(true);
    await closeAll();
    const path = join(dir, '00000001.sealed');
    const bytes = await readFile(path);
    bytes[9] = (bytes[9] ?? 0) ^ 0x40;
    await writeFile(path, bytes);
    await expect(LogStore.open({ dir, origin: TEST_ORIGIN })).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
  });

  it("when a byte of a sealed leaf record is flipped › reading that frame is STORE_CORRUPT, never another frame's bytes", async () => {
    const { dir } = await filled(true);
    await closeAll();
    const path = join(dir, '00000000.sealed');
    const bytes = await readFile(path);
    const at = readIdxRecord(bytes, SEALED_HEADER + 3 * 24).offset + 50; // inside entry 3's leaf data
    bytes[at] = (bytes[at] ?? 0) ^ 0x01;
    await writeFile(path, bytes);
    const s = await open(dir, true);
    expect(() => s.get(3)).toThrow(expect.objectContaining({ code: 'STORE_CORRUPT' }) as Error);
    expect(s.get(4).data).toEqual(sampleData(4));
    const history = async (): Promise<void> => {
      let n = 0;
      for await (const e of s.history('PACK-0003')) n += e.data.length;
      expect(n).toBe(-1); // not reached: the damaged frame is in the first segment
    };
    await expect(history()).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
  });
});
