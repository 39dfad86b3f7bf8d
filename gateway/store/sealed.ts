/**
 * Pack order for sealed segments (docs/gateway.md §5.2 and §5.7): a service engineer's history of
 * one pack reads 1 % of a busy log's entries, scattered one per ~40 KB through every segment — on a
 * cold page cache (after a reboot, on an SD card) that is one random disk read per frame. Once a
 * segment is sealed and no longer the last one, it is rewritten into `k.sealed` (format.ts): the same
 * leaf records, byte for byte, grouped by pack, with the index and the pack directory in the same
 * file, so one pack's frames of a segment are a single contiguous read.
 *
 * Crash safety: the new file is written in full, fsynced, and renamed into place (writeAtomic), and
 * the directory fsynced, before the old `.leaves`, `.idx` and `.packs` are deleted. The rename is the
 * commit point: an open that finds both the sealed file and the old ones (a crash before the
 * deletes) uses the sealed file and deletes the others (recovery.ts); a crash before the rename
 * leaves only a `.sealed.tmp`, which the next rewrite replaces. Leaf records keep their CRC and
 * entry index, so a damaged sealed file is STORE_CORRUPT when read, never a wrong answer; the
 * stored hashes (`k.hashes`) do not change, so neither do roots, proofs or checkpoints.
 *
 * Only segments below the last are rewritten: recovery scans the last segment's leaf records in
 * entry order (§4), and every earlier one is only checked for its sizes.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import { GatewayError } from '../errors.js';
import { IDX_RECORD, MAX_LEAF_RECORD, PACK_RECORD, SEALED_HEADER, parseLeafRecord, parseSealedHeader, readIdxRecord, sealedHeader, writeIdxRecord, type SealedLayout } from './format.js';
import { syncDir, writeAtomic } from './files.js';
import { buildPackFile } from './packs.js';
import { segPath, type StoreCore } from './core.js';

/**
 * Builds the sealed file of a segment from its index records and its whole leaves file. Throws
 * STORE_CORRUPT if a leaf record is not where the index says (the segment is left as it is).
 */
export function buildSealed(idx: Uint8Array, leaves: Uint8Array, segmentStart: number): { bytes: Uint8Array; layout: SealedLayout } {
  const n = idx.length / IDX_RECORD;
  const byPack = new Map<number, number[]>();
  const records: { offset: number; length: number }[] = [];
  for (let i = 0; i < n; i++) {
    const r = readIdxRecord(idx, i * IDX_RECORD);
    const rec = parseLeafRecord(leaves.subarray(r.offset, Math.min(leaves.length, r.offset + MAX_LEAF_RECORD)), 0, segmentStart + i);
    if (!rec.ok) throw new GatewayError('STORE_CORRUPT', `gateway: store: sealing segment at entry ${segmentStart}: entry ${segmentStart + i}: ${rec.why}`);
    records.push({ offset: r.offset, length: rec.record.length });
    let list = byPack.get(r.packId);
    if (!list) byPack.set(r.packId, (list = []));
    list.push(i);
  }
  const ids = [...byPack.keys()].sort((a, b) => a - b);
  const packsAt = SEALED_HEADER + n * IDX_RECORD;
  const packsLen = 16 + 16 * ids.length + 4 + n * PACK_RECORD; // packs.ts buildPackFile's size
  const leavesAt = packsAt + packsLen;
  const length = leavesAt + leaves.length;
  const out = new Uint8Array(length);
  const newIdx = out.subarray(SEALED_HEADER, packsAt);
  let at = leavesAt;
  for (const id of ids) {
    for (const i of byPack.get(id) ?? []) {
      const { offset, length: len } = records[i] as { offset: number; length: number };
      out.set(leaves.subarray(offset, offset + len), at);
      const r = readIdxRecord(idx, i * IDX_RECORD);
      writeIdxRecord(newIdx, i * IDX_RECORD, { ...r, offset: at });
      at += len;
    }
  }
  if (at !== length) throw new GatewayError('STORE_CORRUPT', `gateway: store: sealing segment at entry ${segmentStart}: the leaves file holds bytes no entry owns`);
  const packs = buildPackFile(newIdx);
  if (packs.length !== packsLen) throw new Error('gateway: store: pack section size'); // a bug: buildPackFile's layout changed
  out.set(packs, packsAt);
  const layout: SealedLayout = { entries: n, idxAt: SEALED_HEADER, packsAt, packsLen, leavesAt, length };
  out.set(sealedHeader(layout), 0);
  return { bytes: out, layout };
}

/** Whether segment k may be rewritten now: complete, below the last segment, not pruned, not yet sealed. */
export function sealable(core: StoreCore, k: number): boolean {
  return core.packOrder && !core.readOnly && k >= core.firstSegment && !core.sealed.has(k) && core.layout.start(k + 2) <= core.size;
}

/**
 * Rewrites sealed segment k in pack order. Call from inside the store's write queue. Throws
 * STORE_CORRUPT (damaged segment: left as it was) or the file-system error.
 */
export async function sealSegment(core: StoreCore, k: number): Promise<void> {
  if (!sealable(core, k)) return;
  const start = core.layout.start(k);
  const idxPath = segPath(core, k, 'idx');
  const leavesPath = segPath(core, k, 'leaves');
  const packsPath = segPath(core, k, 'packs');
  // Read asynchronously: a segment's leaves are tens of MB, and the ingest keeps acknowledging meanwhile.
  const idx = await readFile(idxPath);
  const leaves = await readFile(leavesPath);
  if (idx.length !== core.layout.perSegment * IDX_RECORD) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${idxPath} does not hold a full segment`);
  const packsSize = await stat(packsPath).then(
    (s) => s.size,
    () => 0,
  );
  const { bytes, layout } = buildSealed(idx, leaves, start);
  const added = await writeAtomic(segPath(core, k, 'sealed'), bytes);
  // The commit point has passed (renamed, directory fsynced): from this synchronous step on every
  // read of segment k goes to the sealed file, so no reader ever mixes old offsets with new files.
  if (k < core.firstSegment) {
    await rm(segPath(core, k, 'sealed'), { force: true }); // pruned meanwhile
    return;
  }
  core.sealed.set(k, layout);
  for (const path of [packsPath, idxPath, leavesPath]) core.fds.forget(path);
  core.usage += added - (packsSize + idx.length + leaves.length);
  core.stats.sealedSegments++;
  await rm(packsPath, { force: true });
  await rm(idxPath, { force: true });
  await rm(leavesPath, { force: true });
  await syncDir(core.dir);
}

/** Reads and checks the header of segment k's sealed file; undefined when it is damaged. */
export function readSealedLayout(core: Pick<StoreCore, 'fds'>, path: string, perSegment: number): SealedLayout | undefined {
  const l = parseSealedHeader(core.fds.read(path, 0, SEALED_HEADER));
  if (l?.entries !== perSegment || core.fds.size(path) !== l.length) return undefined;
  return l;
}

/** The pack entries' reader of a sealed file: the pack section, positions relative to it. */
export function sealedPackReader(core: StoreCore, k: number, l: SealedLayout): (position: number, length: number) => Uint8Array {
  const path = segPath(core, k, 'sealed');
  return (position, length) => core.fds.read(path, l.packsAt + position, Math.max(0, Math.min(length, l.packsLen - position)));
}
