/**
 * Crash recovery on open (docs/gateway.md "Recovery"). The leaf records are the truth; index and
 * hashes are derived from them. Commits are ordered — a commit's three files are fsynced before the
 * next commit starts, and a segment's files are created only after the previous segment is complete
 * — so only the last segment can be torn, and only after the recovery mark (the larger of state.json's
 * size and the latest checkpoint's size: both were written after their entries were durable). Work
 * is therefore bounded by one segment whatever the history: every earlier segment is only checked
 * for its exact file sizes. In the last segment, leaf records from the mark on are read until the
 * first invalid one; the index and hashes of those entries are recomputed and rewritten where they
 * differ; the three files are cut to the same entry count. A torn tail always recovers. An invalid
 * record followed by a valid record of a LATER commit (batchBack tells) cannot be a torn write — that
 * commit was acknowledged — so it is STORE_CORRUPT, as is anything missing below the mark.
 */
import { constants } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HASH_SIZE, leafHash, storedHashCount, storedHashIndex, storedHashesForLeafHash } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import {
  FILE_MODE,
  IDX_RECORD,
  MAX_LEAF_RECORD,
  SEGMENT_FILE_KINDS,
  parseLeafRecord,
  parseSegmentFileName,
  readIdxRecord,
  segmentFileName,
  writeIdxRecord,
  type SegmentFileKind,
} from './format.js';
import { syncDir, type FdCache } from './files.js';
import { FrontierReader, StoreHashReader, type SegmentLayout } from './hashes.js';
import { readSealedLayout } from './sealed.js';

export interface RecoverOptions {
  readonly dir: string;
  readonly layout: SegmentLayout;
  readonly fds: FdCache;
  readonly readOnly: boolean;
  readonly pruned: ReadonlyMap<number, Uint8Array>;
  /** Entries known to have been durable: max(state.json size, latest checkpoint size). */
  readonly mark: number;
  /**
   * Read-only open of a log another live process is appending to: its files are not a snapshot, so
   * an invalid record followed by a later commit's may be a race, not damage; the tail is just cut.
   */
  readonly liveWriter?: boolean;
  readonly names: readonly string[];
}

export interface Recovery {
  readonly size: number;
  readonly firstSegment: number;
  /** Byte length of the valid leaf records of segment segmentOf(size) (0 when it has no files yet). */
  readonly leavesEnd: number;
  readonly cutEntries: number;
  readonly cutBytes: number;
  readonly cutReason?: string;
  readonly repairedIdx: number;
  readonly repairedHashes: number;
  readonly deletedFiles: readonly string[];
  /** Read-only opens report damage here instead of throwing; size stops before it. */
  readonly corrupt?: { readonly index: number; readonly reason: string };
}

const corrupt = (why: string): GatewayError => new GatewayError('STORE_CORRUPT', `gateway: store: ${why}`);
const CHUNK = 1 << 20;

/** Segment numbers with a .leaves file, and the files to delete (left over by a prune, or strays past the end). */
function planDirectory(o: RecoverOptions): { segments: number[]; deletions: string[]; kinds: Map<number, Set<SegmentFileKind>> } {
  const kinds = new Map<number, Set<SegmentFileKind>>();
  for (const name of o.names) {
    const p = parseSegmentFileName(name);
    if (!p) continue;
    let s = kinds.get(p.k);
    if (!s) kinds.set(p.k, (s = new Set()));
    s.add(p.kind);
  }
  const deletions: string[] = [];
  // A pack-order rewrite (sealed.ts) that crashed after its rename and before deleting the files it
  // replaced: the sealed file was complete and fsynced before the rename, so it wins.
  for (const [k, has] of kinds) {
    if (!has.has('sealed')) continue;
    for (const kind of ['leaves', 'idx', 'packs'] as const) {
      if (!has.delete(kind)) continue;
      deletions.push(segmentFileName(k, kind));
    }
  }
  let segments = [...kinds.keys()].filter((k) => kinds.get(k)?.has('leaves') === true || kinds.get(k)?.has('sealed') === true).sort((a, b) => a - b);
  const dropAll = (k: number): void => {
    for (const kind of kinds.get(k) ?? []) deletions.push(segmentFileName(k, kind));
  };
  // An interrupted prune deletes .leaves last: a leading segment missing its index or hashes whose
  // level ≥ b hashes were already saved to pruned.hashes is finished off, not reported.
  while (segments.length > 1) {
    const k = segments[0] as number;
    const has = kinds.get(k);
    if ((has?.has('idx') === true || has?.has('sealed') === true) && has.has('hashes')) break;
    if (!o.layout.topHashIndexes(k).every((i) => o.pruned.has(i))) break;
    dropAll(k);
    kinds.delete(k);
    segments = segments.slice(1);
  }
  const first = segments[0];
  const last = segments.at(-1);
  for (const k of kinds.keys()) {
    if (first !== undefined && last !== undefined && k >= first && k <= last) continue;
    if ((first === undefined || k > (last ?? -1)) && kinds.get(k)?.has('checkpoints')) {
      throw corrupt(`segment ${k} holds checkpoints but its leaf records are gone`);
    }
    if (first === undefined || k < first || k > (last ?? -1)) dropAll(k);
  }
  if (first !== undefined && last !== undefined && last - first + 1 !== segments.length) {
    throw corrupt(`segment files missing between segments ${first} and ${last}`);
  }
  return { segments, deletions, kinds };
}

/** Checks that a segment before the last is complete: every entry, its index and its hashes. */
function checkFullSegment(o: RecoverOptions, k: number, kinds: Set<SegmentFileKind> | undefined): void {
  const { layout, fds, dir } = o;
  const path = (kind: SegmentFileKind): string => join(dir, segmentFileName(k, kind));
  if (kinds?.has('sealed') === true) {
    // Rewritten in pack order: its header must be intact and agree with the file's size.
    if (!kinds.has('hashes')) throw corrupt(`segment ${k} is missing its hashes file`);
    if (fds.size(path('hashes')) !== layout.hashCount(k) * HASH_SIZE) throw corrupt(`${path('hashes')} does not hold the segment's ${layout.hashCount(k)} hashes`);
    if (readSealedLayout({ fds }, path('sealed'), layout.perSegment) === undefined) throw corrupt(`${path('sealed')}: damaged header, or its size is not the header's`);
    return;
  }
  if (!kinds?.has('idx') || !kinds.has('hashes')) throw corrupt(`segment ${k} is missing its index or hashes file`);
  if (fds.size(path('idx')) !== layout.perSegment * IDX_RECORD) throw corrupt(`${path('idx')} does not hold ${layout.perSegment} entries`);
  if (fds.size(path('hashes')) !== layout.hashCount(k) * HASH_SIZE) throw corrupt(`${path('hashes')} does not hold the segment's ${layout.hashCount(k)} hashes`);
  const lastEntry = layout.start(k + 1) - 1;
  const r = readIdxRecord(fds.read(path('idx'), (layout.perSegment - 1) * IDX_RECORD, IDX_RECORD), 0);
  const size = fds.size(path('leaves'));
  const rec = parseLeafRecord(fds.read(path('leaves'), r.offset, MAX_LEAF_RECORD), 0, lastEntry);
  if (!rec.ok || r.offset + rec.record.length !== size) throw corrupt(`${path('leaves')}: entry ${lastEntry} does not end the file (${rec.ok ? 'trailing bytes' : rec.why})`);
}

/** Opens (creating if needed) a segment file for repair writes. */
async function openRw(path: string): Promise<Awaited<ReturnType<typeof open>>> {
  return open(path, constants.O_RDWR | constants.O_CREAT, FILE_MODE);
}

/**
 * Recovers the log directory: returns the durable size and what was cut or repaired. Throws
 * STORE_CORRUPT (read-only: reports it) for damage that cannot be a torn tail, STORE_IO for file
 * system failures.
 */
export async function recover(o: RecoverOptions): Promise<Recovery> {
  const { layout, fds, dir } = o;
  const plan = planDirectory(o);
  if (!o.readOnly) for (const name of plan.deletions) await rm(join(dir, name), { force: true });
  const first = plan.segments[0];
  const last = plan.segments.at(-1);
  const common = { deletedFiles: o.readOnly ? [] : plan.deletions, repairedIdx: 0, repairedHashes: 0 };
  if (first === undefined || last === undefined) {
    if (o.mark > 0 || o.pruned.size > 0) throw corrupt(`no segment files, but the log held ${o.mark} entries (state.json, checkpoint or pruned.hashes)`);
    return { size: 0, firstSegment: 0, leavesEnd: 0, cutEntries: 0, cutBytes: 0, ...common };
  }
  for (let k = first; k < last; k++) checkFullSegment(o, k, plan.kinds.get(k));
  if (plan.kinds.get(last)?.has('sealed') === true) {
    // Only segments below the last are rewritten in pack order; a sealed last segment means the
    // segments after it were deleted by hand (their entries were durable): checked as complete.
    if (o.mark > layout.start(last + 1)) throw corrupt(`the log ends in segment ${last} but ${o.mark} entries were durable`);
    checkFullSegment(o, last, plan.kinds.get(last));
    return { size: layout.start(last + 1), firstSegment: first, leavesEnd: 0, cutEntries: 0, cutBytes: 0, ...common };
  }

  const base = layout.start(last);
  const P = layout.perSegment;
  const path = (kind: SegmentFileKind): string => join(dir, segmentFileName(last, kind));
  if (o.mark > base + P) throw corrupt(`the log ends in segment ${last} but ${o.mark} entries were durable`);
  const kinds = plan.kinds.get(last);
  const sizeOf = (kind: SegmentFileKind): number => (kinds?.has(kind) ? fds.size(path(kind)) : 0);
  const leavesSize = sizeOf('leaves');

  // Where trusted data ends and the scan starts.
  const s = Math.max(o.mark, base);
  let start = 0;
  let prevReceivedAt = 0;
  if (s > base) {
    if (sizeOf('idx') < (s - base) * IDX_RECORD) throw corrupt(`${path('idx')} ends before durable entry ${s - 1}`);
    const r = readIdxRecord(fds.read(path('idx'), (s - 1 - base) * IDX_RECORD, IDX_RECORD), 0);
    const rec = parseLeafRecord(fds.read(path('leaves'), r.offset, MAX_LEAF_RECORD), 0, s - 1);
    if (!rec.ok) throw corrupt(`${path('leaves')}: durable entry ${s - 1}: ${rec.why}`);
    start = r.offset + rec.record.length;
    prevReceivedAt = rec.record.receivedAt;
  }

  // Scan leaf records from the mark; build the index and hashes they imply.
  const hashReader = new StoreHashReader(dir, layout, fds, o.pruned, () => storedHashCount(s), () => first);
  const frontier = new FrontierReader(hashReader);
  const idx = new Uint8Array((base + P - s) * IDX_RECORD);
  const hashChunks: Uint8Array[] = [];
  let e = s;
  let pos = start;
  let buf: Uint8Array = new Uint8Array(0);
  let bufPos = start;
  let why: string | undefined;
  while (e < base + P) {
    if (pos >= leavesSize) break;
    if (bufPos + buf.length < Math.min(pos + MAX_LEAF_RECORD, leavesSize)) {
      buf = fds.read(path('leaves'), pos, CHUNK);
      bufPos = pos;
    }
    const r = parseLeafRecord(buf, pos - bufPos, e);
    if (!r.ok) {
      why = r.why;
      break;
    }
    const m = r.record;
    if (e - m.batchBack < base) (why = 'commit spans a segment boundary');
    else if (m.receivedAt < prevReceivedAt) (why = 'receivedAt goes back in time');
    if (why !== undefined) break;
    writeIdxRecord(idx, (e - s) * IDX_RECORD, { receivedAt: m.receivedAt, counter: m.counter, offset: pos, packId: m.packId });
    const hs = storedHashesForLeafHash(e, leafHash(m.data), frontier);
    const at = storedHashIndex(0, e);
    hs.forEach((h, level) => {
      frontier.set(level, at + level, h);
    });
    hashChunks.push(...hs);
    prevReceivedAt = m.receivedAt;
    pos += m.length;
    e++;
  }
  if (why === undefined && pos < leavesSize) why = e === base + P ? 'bytes after the last entry of a full segment' : 'record cut short';

  // A later commit's valid record after the first invalid one proves the invalid one was acknowledged.
  let size = e;
  let damage: { index: number; reason: string } | undefined;
  if (why !== undefined && o.liveWriter !== true) {
    const later = laterCommit(o, last, e, leavesSize, sizeOf('idx'));
    if (later !== undefined) damage = { index: e, reason: `entry ${e}: ${why}, yet entry ${later} of a later commit is intact` };
  }

  // Compare the derived index and hashes with the files.
  const idxHave = kinds?.has('idx') ? fds.read(path('idx'), (s - base) * IDX_RECORD, (size - s) * IDX_RECORD) : new Uint8Array(0);
  const hb = layout.hashBase(last);
  const hFrom = storedHashCount(s);
  const hashes = Buffer.concat(hashChunks);
  const hashHave = kinds?.has('hashes') ? fds.read(path('hashes'), (hFrom - hb) * HASH_SIZE, hashes.length) : new Uint8Array(0);
  let badIdx = size;
  let badHash = size;
  let repairedIdx = 0;
  let repairedHashes = 0;
  for (let x = s; x < size; x++) {
    const a = (x - s) * IDX_RECORD;
    if (!Buffer.from(idxHave.buffer, idxHave.byteOffset + a, Math.max(0, Math.min(IDX_RECORD, idxHave.length - a))).equals(idx.subarray(a, a + IDX_RECORD))) {
      badIdx = Math.min(badIdx, x);
      repairedIdx++;
    }
    const h0 = (storedHashIndex(0, x) - hFrom) * HASH_SIZE;
    const h1 = (storedHashCount(x + 1) - hFrom) * HASH_SIZE;
    if (!Buffer.from(hashHave.buffer, hashHave.byteOffset + Math.min(h0, hashHave.length), Math.max(0, Math.min(h1, hashHave.length) - h0)).equals(hashes.subarray(h0, h1))) {
      badHash = Math.min(badHash, x);
      repairedHashes++;
    }
  }
  if (o.readOnly) {
    size = Math.min(size, badIdx, badHash);
    if (damage) size = Math.min(size, damage.index);
    const leavesEnd = size === base + P ? 0 : leavesSize;
    return { size, firstSegment: first, leavesEnd, cutEntries: 0, cutBytes: 0, repairedIdx: 0, repairedHashes: 0, deletedFiles: [], ...(damage ? { corrupt: damage } : {}), ...(why ? { cutReason: why } : {}) };
  }
  if (damage) throw corrupt(damage.reason);

  // Cut every file to `size` entries and write the repaired parts.
  // Entries cut (counted before cutting), as the index counted them (a record torn before its index entry was written counts only in bytes).
  const cutEntries = Math.max(0, base + Math.floor(sizeOf('idx') / IDX_RECORD) - size);
  const leavesLen = pos;
  const idxLen = (size - base) * IDX_RECORD;
  const hashLen = (storedHashCount(size) - hb) * HASH_SIZE;
  const touched = { created: false };
  const fix = async (kind: SegmentFileKind, len: number, patch?: { at: number; bytes: Uint8Array }): Promise<number> => {
    const had = kinds?.has(kind) ?? false;
    const h = await openRw(path(kind));
    try {
      const before = (await h.stat()).size;
      if (patch && patch.bytes.length > 0) await h.write(patch.bytes, 0, patch.bytes.length, patch.at);
      if (before !== len || patch) {
        await h.truncate(len);
        await h.datasync();
      }
      touched.created ||= !had;
      return Math.max(0, before - len);
    } finally {
      await h.close();
    }
  };
  let cutBytes = await fix('leaves', leavesLen);
  cutBytes += await fix('idx', idxLen, repairedIdx > 0 ? { at: (s - base) * IDX_RECORD, bytes: idx.subarray(0, (size - s) * IDX_RECORD) } : undefined);
  cutBytes += await fix('hashes', hashLen, repairedHashes > 0 ? { at: (hFrom - hb) * HASH_SIZE, bytes: hashes } : undefined);
  if (touched.created || plan.deletions.length > 0) await syncDir(dir);
  for (const kind of SEGMENT_FILE_KINDS) fds.forget(path(kind));
  return {
    size,
    firstSegment: first,
    leavesEnd: size === base + P ? 0 : leavesLen,
    cutEntries,
    cutBytes,
    ...(why ? { cutReason: why } : {}),
    repairedIdx,
    repairedHashes,
    deletedFiles: plan.deletions,
  };
}

/**
 * Looks past the first invalid entry `bad` for an intact entry whose commit started after `bad`:
 * index records past `bad` point at leaf records; returns that entry's index, if any.
 */
function laterCommit(o: RecoverOptions, k: number, bad: number, leavesSize: number, idxSize: number): number | undefined {
  const base = o.layout.start(k);
  const n = Math.floor(idxSize / IDX_RECORD);
  if (bad + 1 >= base + n) return undefined;
  const idxPath = join(o.dir, segmentFileName(k, 'idx'));
  const leavesPath = join(o.dir, segmentFileName(k, 'leaves'));
  const idx = o.fds.read(idxPath, (bad + 1 - base) * IDX_RECORD, (base + n - bad - 1) * IDX_RECORD);
  for (let e = bad + 1; e < base + n; e++) {
    const r = readIdxRecord(idx, (e - bad - 1) * IDX_RECORD);
    if (r.offset >= leavesSize) continue;
    const rec = parseLeafRecord(o.fds.read(leavesPath, r.offset, MAX_LEAF_RECORD), 0, e);
    if (rec.ok && e - rec.record.batchBack > bad) return e;
  }
  return undefined;
}
