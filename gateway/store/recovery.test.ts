/**
 * Crash recovery against damaged files: each of the last segment's files truncated or garbled at
 * many offsets after the recovery mark. A torn leaves tail is cut back to the last whole record;
 * damage to the index or hashes is repaired from the leaves; damage that cannot be a torn write (an
 * earlier, acknowledged commit followed by intact later ones) is STORE_CORRUPT, reported by a
 * read-only open; nothing below the mark is ever cut. After every recovery the log keeps
 * appending with roots that match the reference tree.
 */
import { cp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leafHash, rootOfLeaves, storedHashCount } from '../../protocol/index.js';
import { IDX_RECORD, parseLeafRecord } from './format.js';
import { LogStore } from './log-store.js';
import { TEST_ORIGIN, crashCopy, sampleData, sampleInput, tempDir } from './testkit.js';

const FIRST = 10; // entries before the mark (closed cleanly, so state.json says 10)
const COMMITS = [4, 4, 5, 3]; // then four commits, all acknowledged, the log left open ("power cut")
const TOTAL = FIRST + COMMITS.reduce((a, b) => a + b, 0); // 26, all in segment 0 (2^5 entries)
const commitStart = (c: number): number => FIRST + COMMITS.slice(0, c).reduce((a, b) => a + b, 0);
const LAST_COMMIT = commitStart(COMMITS.length - 1);

let template: string;
let orig: Record<'leaves' | 'idx' | 'hashes', Buffer>;
let offsets: number[]; // leaf record offsets, plus the file end
const scratch: string[] = [];
const ref = Array.from({ length: TOTAL + 5 }, (_, i) => leafHash(sampleData(i)));
const file = (dir: string, kind: string): string => join(dir, `00000000.${kind}`);

beforeAll(async () => {
  const dir = await tempDir();
  scratch.push(dir);
  const a = await LogStore.open({ dir, origin: TEST_ORIGIN, segmentBits: 5 });
  await a.append(Array.from({ length: FIRST }, (_, i) => sampleInput(i)));
  await a.close();
  const b = await LogStore.open({ dir, origin: TEST_ORIGIN });
  for (let c = 0; c < COMMITS.length; c++) await b.append(Array.from({ length: COMMITS[c]! }, (_, i) => sampleInput(commitStart(c) + i)));
  template = await crashCopy(dir);
  scratch.push(template);
  await b.close();
  orig = { leaves: await readFile(file(template, 'leaves')), idx: await readFile(file(template, 'idx')), hashes: await readFile(file(template, 'hashes')) };
  offsets = [0];
  for (let i = 0; i < TOTAL; i++) {
    const r = parseLeafRecord(orig.leaves, offsets[i]!, i);
    if (!r.ok) throw new Error(r.why);
    offsets.push(offsets[i]! + r.record.length);
  }
});

afterAll(async () => {
  for (const d of scratch) await rm(d, { recursive: true, force: true });
});

async function damaged(damage: (dir: string) => Promise<void>): Promise<string> {
  const dir = await tempDir('damaged');
  scratch.push(dir); // removed in afterAll even when a check fails first
  await rm(dir, { recursive: true });
  await cp(template, dir, { recursive: true });
  await damage(dir);
  return dir;
}

async function flip(path: string, at: number): Promise<void> {
  const b = await readFile(path);
  b[at] = (b[at] ?? 0) ^ 0x5a;
  await writeFile(path, b);
}

/** Opens, checks the recovered log against the reference, appends one entry; returns the size. */
async function recoverAndCheck(dir: string): Promise<number> {
  const s = await LogStore.open({ dir, origin: TEST_ORIGIN });
  try {
    expect(s.size).toBeGreaterThanOrEqual(FIRST);
    for (let i = 0; i < s.size; i++) expect(s.get(i).data).toEqual(sampleData(i));
    expect(s.root()).toEqual(rootOfLeaves(ref.slice(0, s.size)));
    const n = s.size;
    await s.append([sampleInput(n)]);
    expect(s.root()).toEqual(rootOfLeaves(ref.slice(0, n + 1)));
    return n;
  } finally {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Offsets to damage in [from, to): every record boundary and its neighbourhood, plus a stride. */
function samples(from: number, to: number, marks: readonly number[], deltas: readonly number[] = [-1, 0, 1, 5, 36]): number[] {
  const out = new Set<number>();
  for (const m of marks) for (const d of deltas) if (m + d >= from && m + d < to) out.add(m + d);
  for (let x = from; x < to; x += 211) out.add(x);
  return [...out].sort((a, b) => a - b);
}

describe('recovery of the last segment', () => {
  it('cuts a leaves file truncated anywhere after the mark back to the last whole record', { timeout: 120_000 }, async () => {
    for (const x of samples(offsets[FIRST]!, orig.leaves.length, offsets)) {
      const whole = offsets.filter((o, i) => i > 0 && o <= x).length;
      const dir = await damaged((d) => truncate(file(d, 'leaves'), x));
      expect([x, await recoverAndCheck(dir)]).toEqual([x, whole]);
    }
  });

  it('cuts at a garbled record of the last commit (indistinguishable from a torn write)', { timeout: 120_000 }, async () => {
    for (const x of samples(offsets[LAST_COMMIT]!, orig.leaves.length, offsets)) {
      const entry = offsets.filter((o, i) => i > 0 && o <= x).length;
      const dir = await damaged((d) => flip(file(d, 'leaves'), x));
      expect([x, await recoverAndCheck(dir)]).toEqual([x, entry]);
    }
  });

  it('refuses a garbled record of an earlier acknowledged commit with STORE_CORRUPT; read-only reports it', { timeout: 120_000 }, async () => {
    for (const x of samples(offsets[FIRST]!, offsets[LAST_COMMIT]!, offsets)) {
      const entry = offsets.filter((o, i) => i > 0 && o <= x).length;
      const dir = await damaged((d) => flip(file(d, 'leaves'), x));
      const before = await readFile(file(dir, 'leaves'));
      await expect(LogStore.open({ dir, origin: TEST_ORIGIN })).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
      expect(await readFile(file(dir, 'leaves'))).toEqual(before); // nothing was cut
      const ro = await LogStore.open({ dir, readOnly: true });
      expect([x, ro.report.corrupt?.index, ro.size]).toEqual([x, entry, entry]);
      await ro.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const kind of ['idx', 'hashes'] as const) {
    it(`repairs a ${kind} file truncated or garbled after the mark from the leaves`, { timeout: 120_000 }, async () => {
      const unit = kind === 'idx' ? IDX_RECORD : 32;
      const from = kind === 'idx' ? FIRST * IDX_RECORD : 0;
      const marks = Array.from({ length: orig[kind].length / unit }, (_, i) => i * unit);
      for (const x of samples(from, orig[kind].length, marks, [0, unit - 1])) {
        for (const how of ['truncate', 'flip'] as const) {
          // Hashes before the mark are trusted (fsynced before state.json said so): damage only after it.
          if (kind === 'hashes' && x < storedHashCount(FIRST) * 32) continue;
          const dir = await damaged((d) => (how === 'truncate' ? truncate(file(d, kind), x) : flip(file(d, kind), x)));
          const s = await LogStore.open({ dir, origin: TEST_ORIGIN });
          expect([how, x, s.size]).toEqual([how, x, TOTAL]);
          if (how === 'flip') expect(kind === 'idx' ? s.report.repairedIdx : s.report.repairedHashes).toBeGreaterThan(0);
          await s.close();
          expect(await readFile(file(dir, kind))).toEqual(orig[kind]);
          await rm(dir, { recursive: true, force: true });
        }
      }
    });
  }

  it('cuts bytes after the last record and reports what it cut', async () => {
    const dir = await damaged(async (d) => {
      await writeFile(file(d, 'leaves'), Buffer.concat([orig.leaves, Buffer.alloc(100, 0)]));
    });
    const s = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(s.report).toMatchObject({ size: TOTAL, cutBytes: 100, cutReason: expect.stringMatching(/data length 0/) as string });
    await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the entries it cut when a commit was torn in all three files', async () => {
    const dir = await damaged(async (d) => {
      await truncate(file(d, 'leaves'), offsets[LAST_COMMIT + 1]! + 7);
    });
    const s = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(s.report).toMatchObject({ size: LAST_COMMIT + 1, cutEntries: TOTAL - LAST_COMMIT - 1 });
    await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('never cuts below the mark: a leaves file shorter than state.json says is STORE_CORRUPT', async () => {
    const dir = await damaged((d) => truncate(file(d, 'leaves'), offsets[FIRST - 2]));
    await expect(LogStore.open({ dir, origin: TEST_ORIGIN })).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    expect((await readFile(file(dir, 'leaves'))).length).toBe(offsets[FIRST - 2]);
    await rm(dir, { recursive: true, force: true });
  });

  it('reports damage inside the durable region when the entry is read, not as a silent wrong answer', async () => {
    const dir = await damaged((d) => flip(file(d, 'leaves'), offsets[3]! + 40));
    const s = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(() => s.get(3)).toThrow(expect.objectContaining({ code: 'STORE_CORRUPT' }) as Error);
    expect(s.get(4).data).toEqual(sampleData(4));
    await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('ignores a damaged state.json and rebuilds the pack summaries from the index', async () => {
    const healthy = await LogStore.open({ dir: await damaged(() => Promise.resolve()), origin: TEST_ORIGIN });
    const packs = healthy.packs();
    await healthy.close();
    const dir = await damaged((d) => writeFile(join(d, 'state.json'), '{"format":"packchain-gateway-log-state/v1","size":'));
    const s = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(s.report.stateIgnored).toMatch(/not valid JSON/);
    expect(s.report.replayedEntries).toBe(TOTAL);
    expect(s.packs()).toEqual(packs);
    await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('cuts a torn record at the end of the pack registry and registers new packs after it', async () => {
    const reg = await readFile(join(template, 'packs.registry'));
    const dir = await damaged((d) => writeFile(join(d, 'packs.registry'), Buffer.concat([reg, Buffer.from([0, 0, 0, 9, 0, 0, 0, 5, 0x50])])));
    const s = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(s.size).toBe(TOTAL);
    expect(s.packs()).toHaveLength(5);
    await s.append([{ ...sampleInput(TOTAL), serial: 'PACK-NEW' }]);
    await s.close();
    expect((await readFile(join(dir, 'packs.registry'))).length).toBe(reg.length + 12 + 'PACK-NEW'.length);
    const again = await LogStore.open({ dir, origin: TEST_ORIGIN });
    expect(again.get(TOTAL).serial).toBe('PACK-NEW');
    expect(again.pack('PACK-NEW')).toMatchObject({ entries: 1, firstIndex: TOTAL });
    await again.close();
    await rm(dir, { recursive: true, force: true });
  });
});
