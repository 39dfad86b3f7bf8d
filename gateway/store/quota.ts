/**
 * Disk quota and pruning (DESIGN.md decision 4: "Disk is bounded; nothing is pruned before the
 * ledger has acknowledged it"). Usage counts every file of the store. When an append would exceed
 * the quota, whole segments are deleted oldest first — only segments entirely below the size the
 * upstream ledger acknowledged (markSynced), never the segment holding the newest entry, and only
 * while over quota, so the local history stays as long as the disk allows. Before a segment goes,
 * its level ≥ b stored hashes are appended to `pruned.hashes` and fsynced: they are all that
 * proofs and tree hashes of the remaining log need from it (see hashes.ts). Files go in a fixed
 * order, leaves last, so recovery can finish an interrupted prune. When nothing can be pruned the
 * append fails with STORE_QUOTA and the ingest stops acknowledging; devices keep their frames.
 */
import { constants } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HASH_SIZE } from '../../protocol/index.js';
import { FILE_MODE, FILES, prunedRecord, type SegmentFileKind } from './format.js';
import { ioError, syncDir } from './files.js';
import { segPath, type StoreCore } from './core.js';

/** Total size in bytes of the given files of `dir` (missing ones count 0). */
export async function measureUsage(dir: string, names: readonly string[]): Promise<number> {
  let total = 0;
  for (const name of names) {
    try {
      total += (await stat(join(dir, name))).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return total;
}

/**
 * The oldest segment pruning may delete now, or undefined: all its entries acknowledged by the
 * ledger and covered by the latest checkpoint (so the tree under that checkpoint stays checkable
 * on open), and not the newest entry's segment.
 */
export function prunableSegment(core: StoreCore): number | undefined {
  const k = core.firstSegment;
  if (core.size === 0 || k >= core.layout.segmentOf(core.size - 1)) return undefined;
  return core.layout.start(k + 1) <= Math.min(core.syncedSize, core.checkpointSize) ? k : undefined;
}

/** Deletion order: derived files first, leaf records last (recovery treats leaves or sealed as the segment). */
const PRUNE_ORDER: readonly SegmentFileKind[] = ['packs', 'checkpoints', 'idx', 'hashes', 'leaves', 'sealed'];

/** Called from inside the store's write queue: they must not queue work themselves. */
export interface PruneHooks {
  /** Makes state.json durable (its syncedSize justifies the prune). */
  persistState(): Promise<void>;
  /** Closes any write handle on segment k's files. */
  release(k: number): Promise<void>;
}

/**
 * Deletes segment `core.firstSegment` after saving its level ≥ b hashes. Throws STORE_IO; a failure
 * after the hashes were saved leaves files that the next open finishes deleting.
 */
export async function pruneOldest(core: StoreCore, hooks: PruneHooks): Promise<void> {
  const k = core.firstSegment;
  const tops = core.layout.topHashIndexes(k);
  const hashesPath = segPath(core, k, 'hashes');
  const base = core.layout.hashBase(k);
  const from = (tops[0] as number) - base;
  try {
    const bytes = core.fds.read(hashesPath, from * HASH_SIZE, tops.length * HASH_SIZE);
    if (bytes.length !== tops.length * HASH_SIZE) throw new Error(`${hashesPath} is shorter than a full segment`);
    const recs = Buffer.concat(tops.map((i, j) => prunedRecord(i, bytes.subarray(j * HASH_SIZE, (j + 1) * HASH_SIZE))));
    const prunedPath = join(core.dir, FILES.pruned);
    const h = await open(prunedPath, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, FILE_MODE);
    try {
      await h.write(recs);
      await h.datasync();
    } finally {
      await h.close();
    }
    core.usage += recs.length;
    tops.forEach((i, j) => core.pruned.set(i, bytes.slice(j * HASH_SIZE, (j + 1) * HASH_SIZE)));
    // From here readers see the segment as pruned: STORE_RANGE for its entries, kept hashes from memory.
    core.firstSegment = k + 1;
    await hooks.persistState();
    await hooks.release(k);
    for (const kind of PRUNE_ORDER) {
      const path = segPath(core, k, kind);
      core.fds.forget(path);
      if (kind === 'sealed') core.sealed.delete(k);
      try {
        const size = (await stat(path)).size;
        core.usage -= size;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        continue;
      }
      await rm(path, { force: true });
    }
    await syncDir(core.dir);
  } catch (e) {
    throw ioError(`pruning segment ${k}`, e);
  }
  core.stats.prunedSegments++;
}
