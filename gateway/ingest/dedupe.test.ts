import { describe, expect, it } from 'vitest';
import { DedupeTable, GapSet, type Classification, type FrameIdentity } from './dedupe.js';

const h = (n: number): FrameIdentity => String.fromCharCode(n).repeat(32);

/** A table over a fake log: `stored` maps "serial/counter" to the stored hash. */
function table(stored = new Map<string, FrameIdentity>(), opts: { window?: number; maxGaps?: number } = {}) {
  const lookups: number[] = [];
  const t = new DedupeTable({
    ...opts,
    lookup: (serial, counter) => {
      lookups.push(counter);
      return Promise.resolve(stored.get(`${serial}/${counter}`));
    },
  });
  /** classify + commit for stored kinds, like the pipeline with an append that succeeds. */
  const put = async (counter: number, hash = h(counter)): Promise<Classification> => {
    const c = await t.classify('P', counter, hash);
    if (c.kind === 'new' || c.kind === 'gap-fill' || c.kind === 'late') {
      t.commit('P', counter, hash);
      stored.set(`P/${counter}`, hash);
    }
    return c;
  };
  return { t, put, lookups, stored };
}

describe('DedupeTable', () => {
  it('when counters arrive in order › classifies each as new and opens no gap', async () => {
    const { t, put } = table();
    for (let c = 5; c < 10; c++) expect((await put(c)).kind).toBe('new');
    expect(t.snapshot('P')).toMatchObject({ highest: 9, lowest: 5, gaps: [], counts: { frames: 5 } });
  });

  it('when a counter skips ahead › records the skipped range as a gap, and a resend fills it', async () => {
    const { t, put } = table();
    await put(1);
    expect(await put(5)).toEqual({ kind: 'new', gap: [2, 4] });
    expect(t.snapshot('P')?.gaps).toEqual([[2, 4]]);
    expect((await put(3)).kind).toBe('gap-fill');
    expect(t.snapshot('P')?.gaps).toEqual([
      [2, 2],
      [4, 4],
    ]);
    expect(t.missing('P')).toBe(2);
    expect(t.snapshot('P')?.counts).toMatchObject({ gapsOpened: 1, gapFills: 1, frames: 3 });
  });

  it('when the same bytes arrive again › classifies a duplicate (durable) without touching the log', async () => {
    const { put, lookups } = table();
    await put(1);
    const c = await put(1);
    expect(c.kind).toBe('duplicate');
    expect(c.kind === 'duplicate' && c.durable).toBe(true);
    expect(lookups).toEqual([]);
  });

  it('when a stored counter arrives with other bytes › classifies a replay and stores nothing', async () => {
    const { t, put } = table();
    await put(1);
    await put(2);
    expect((await put(1, h(99))).kind).toBe('replay');
    expect(t.snapshot('P')?.counts).toMatchObject({ frames: 2, replays: 1 });
  });

  it('when a copy arrives while the first is still being appended › waits for that append, never stores twice', async () => {
    const { t } = table();
    const first = await t.classify('P', 1, h(1));
    expect(first.kind).toBe('new');
    const second = await t.classify('P', 1, h(1));
    expect(second.kind).toBe('duplicate');
    const rival = await t.classify('P', 1, h(2));
    expect(rival.kind).toBe('replay');
    t.commit('P', 1, h(1));
    expect(second.kind === 'duplicate' && (await second.durable)).toBe(true);
  });

  it('when the first copy\'s append fails › the waiting copy is not acked, and a resend may be stored', async () => {
    const { t } = table();
    await t.classify('P', 1, h(1));
    const copy = await t.classify('P', 1, h(1));
    t.abort('P', 1);
    expect(copy.kind === 'duplicate' && (await copy.durable)).toBe(false);
    expect((await t.classify('P', 1, h(1))).kind).toBe('new');
  });

  it('when a stored counter has left the window › asks the log, and tells duplicate from replay by its hash', async () => {
    const { put, lookups } = table(new Map(), { window: 2 });
    for (let c = 1; c <= 5; c++) await put(c);
    expect((await put(1)).kind).toBe('duplicate');
    expect((await put(2, h(77))).kind).toBe('replay');
    expect(lookups).toEqual([1, 2]);
  });

  it('when a counter below the lowest stored arrives › classifies it late (never stored) without a lookup', async () => {
    const { t, put, lookups } = table();
    await put(10);
    expect((await put(4)).kind).toBe('late');
    expect(lookups).toEqual([]);
    expect(t.snapshot('P')).toMatchObject({ lowest: 4, highest: 10, gaps: [] });
  });

  it('when more gaps open than the cap › forgets the oldest, counts it, and a late fill is confirmed by the log', async () => {
    const { t, put, lookups } = table(new Map(), { maxGaps: 2 });
    await put(0);
    await put(2);
    await put(4);
    await put(6);
    expect(t.snapshot('P')?.gaps).toEqual([
      [3, 3],
      [5, 5],
    ]);
    expect(t.snapshot('P')?.counts.gapsForgotten).toBe(1);
    expect((await put(1)).kind).toBe('late');
    expect(lookups).toEqual([1]);
  });

  it('when restored from a snapshot › classifies like the table it was taken from', async () => {
    const a = table();
    for (const c of [1, 2, 6, 9]) await a.put(c);
    const snap = a.t.snapshot('P');
    const b = table(a.stored);
    if (snap) b.t.restore('P', snap);
    expect((await b.put(4)).kind).toBe('gap-fill');
    expect((await b.put(10)).kind).toBe('new');
    expect((await b.put(2)).kind).toBe('duplicate'); // from the log: the window starts empty
    expect(b.t.snapshot('P')?.gaps).toEqual([
      [3, 3],
      [5, 5],
      [7, 8],
    ]);
  });

  it('when the lookup fails › rejects that classification and keeps serving the pack', async () => {
    let fail = true;
    const t = new DedupeTable({ window: 1, lookup: () => (fail ? Promise.reject(new Error('disk')) : Promise.resolve(undefined)) });
    t.commit('P', 1, h(1));
    t.commit('P', 2, h(2));
    t.commit('P', 3, h(3));
    await expect(t.classify('P', 2, h(2))).rejects.toThrow('disk');
    fail = false;
    expect((await t.classify('P', 4, h(4))).kind).toBe('new');
  });

  it('keeps packs apart', async () => {
    const { t } = table();
    t.commit('A', 1, h(1));
    expect((await t.classify('B', 1, h(2))).kind).toBe('new');
  });

  it('when options are out of range › throws RangeError', () => {
    expect(() => new DedupeTable({ window: 0, lookup: () => Promise.resolve(undefined) })).toThrow(RangeError);
  });
});

describe('GapSet', () => {
  it('finds counters in ranges by binary search and splits ranges on removal', () => {
    const g = new GapSet(10);
    g.addTop(2, 4);
    g.addTop(10, 20);
    expect([1, 2, 4, 5, 10, 15, 20, 21].map((c) => g.has(c))).toEqual([false, true, true, false, true, true, true, false]);
    g.remove(15);
    expect(g.list).toEqual([
      [2, 4],
      [10, 14],
      [16, 20],
    ]);
    g.remove(2);
    g.remove(20);
    expect(g.list).toEqual([
      [3, 4],
      [10, 14],
      [16, 19],
    ]);
    expect(g.missing).toBe(2 + 5 + 4);
  });
});
