/**
 * Per-pack queries over the log: one pack's entries in a time window (the service engineer's
 * history, DESIGN.md "The people and the job") and "which entry holds this pack's counter c" (the
 * ingest's duplicate check beyond its in-memory window). Time search relies on receivedAt being
 * non-decreasing in entry order (the appender clamps it), so a window maps to an entry range by
 * binary search over index records; the pack's entries in it come from each sealed segment's pack
 * file (two reads) and, for the active segment, from its index. Work is O(segments in the window
 * + the pack's entries), independent of the other packs' traffic. Long scans yield to the event
 * loop between segments so an ingesting gateway keeps acknowledging while a history is read.
 */
import { writeAtomic } from './files.js';
import { buildPackFile, readPackEntries, scanIdxForPack, type PackEntry } from './packs.js';
import { sealedPackReader } from './sealed.js';
import { firstIndex, readIdx, readIdxRange, segPath, type StoreCore } from './core.js';

/** A receive-time window in ms since the Unix epoch: since ≤ receivedAt < until. */
export interface TimeRange {
  readonly since?: number;
  readonly until?: number;
}

const yieldToLoop = (): Promise<void> =>
  new Promise((resolve) => {
    setImmediate(resolve);
  });

/** First entry (≥ firstIndex) whose receivedAt ≥ t; the size when none. */
export function indexAtTime(core: StoreCore, t: number): number {
  let lo = firstIndex(core);
  let hi = core.size;
  // Narrow to a segment first (one read per step), then within it.
  while (hi - lo > core.layout.perSegment) {
    const k = core.layout.segmentOf(Math.floor((lo + hi) / 2));
    const mid = Math.max(lo + 1, core.layout.start(k));
    if (readIdx(core, mid).receivedAt < t) lo = mid;
    else hi = mid;
  }
  if (lo < hi && readIdx(core, lo).receivedAt >= t) return lo;
  // Invariant: receivedAt(lo) < t (or lo is the first entry), the answer is in (lo, hi].
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (readIdx(core, mid).receivedAt < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Rewrites sealed segment k's pack file from its index (at seal, and when one is found damaged). */
export async function writePackFile(core: StoreCore, k: number): Promise<void> {
  if (core.sealed.has(k)) return; // rewritten in pack order meanwhile: its pack section is in k.sealed
  const path = segPath(core, k, 'packs');
  core.fds.forget(path);
  const delta = await writeAtomic(path, buildPackFile(readIdxRange(core, core.layout.start(k), core.layout.start(k + 1))));
  core.usage += delta;
}

/**
 * The pack's entries in segment k, in entry order: from a sealed segment's pack file, or from the
 * index (the active segment, or a pack file that is missing or damaged — which is then rebuilt in
 * the background, serialised with the store's other writes).
 */
export function packEntriesInSegment(core: StoreCore, k: number, packId: number): PackEntry[] {
  const start = core.layout.start(k);
  const end = Math.min(core.size, core.layout.start(k + 1));
  if (end <= start) return [];
  const sealed = core.sealed.get(k);
  if (sealed !== undefined) {
    // Pack order: the pack section of the sealed file; if damaged, the index section answers (the
    // leaf records' CRCs still guard every frame read).
    let got: PackEntry[] | undefined;
    try {
      got = readPackEntries(sealedPackReader(core, k, sealed), packId, start, core.layout.perSegment);
    } catch {
      got = undefined;
    }
    return got ?? scanIdxForPack(readIdxRange(core, start, end), packId, start);
  }
  if (end === core.layout.start(k + 1)) {
    const path = segPath(core, k, 'packs');
    let got: PackEntry[] | undefined;
    try {
      got = readPackEntries((p, n) => core.fds.read(path, p, n), packId, start, core.layout.perSegment);
    } catch {
      got = undefined; // missing or unreadable
    }
    if (got) return got;
    if (!core.readOnly) {
      core.stats.packFilesRebuilt++;
      core.enqueue(() => writePackFile(core, k)).catch(() => {
        core.stats.ioErrors++; // the index answered this query; the next one retries the rebuild
      });
    }
  }
  return scanIdxForPack(readIdxRange(core, start, end), packId, start);
}

/**
 * One pack's entries with since ≤ receivedAt < until, oldest first, one batch per segment, each
 * batch turned into T[] by `read` (the caller reads the leaves) in the same synchronous step that
 * located it. An unknown serial yields nothing. Throws STORE_CORRUPT / STORE_IO for damaged or
 * unreadable files.
 */
export async function* packHistory<T>(core: StoreCore, serial: string, range: TimeRange, read: (k: number, entries: readonly PackEntry[]) => T[]): AsyncGenerator<T[]> {
  const packId = core.packs.idOf(serial);
  if (packId === undefined) return;
  const from = range.since === undefined ? firstIndex(core) : indexAtTime(core, range.since);
  const to = range.until === undefined ? core.size : indexAtTime(core, range.until);
  if (from >= to) return;
  for (let k = core.layout.segmentOf(from); k <= core.layout.segmentOf(to - 1); k++) {
    if (k < core.firstSegment) continue; // pruned while the caller was busy
    const entries = packEntriesInSegment(core, k, packId).filter((e) => e.index >= from && e.index < to);
    if (entries.length > 0) yield read(k, entries);
    await yieldToLoop();
  }
}

/**
 * The newest entry at or after `notBefore` holding `counter` for this pack, scanning segments
 * backwards from the end; undefined when there is none. Bounded by `notBefore` (default: the
 * pack's first entry still on disk).
 */
export async function findCounter(core: StoreCore, serial: string, counter: number, notBefore?: number): Promise<number | undefined> {
  const packId = core.packs.idOf(serial);
  const summary = core.packs.summary(serial);
  if (packId === undefined || summary === undefined || core.size === 0) return undefined;
  const floor = Math.max(notBefore ?? 0, summary.firstIndex, firstIndex(core));
  if (floor >= core.size) return undefined;
  for (let k = core.layout.segmentOf(core.size - 1); k >= core.layout.segmentOf(floor) && k >= core.firstSegment; k--) {
    const entries = packEntriesInSegment(core, k, packId);
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as PackEntry;
      if (e.index < floor) return undefined;
      if (e.counter === counter) return e.index;
    }
    await yieldToLoop();
  }
  return undefined;
}
