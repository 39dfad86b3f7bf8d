/**
 * The physical commit of the log store: one group of entries, all in the active segment, written
 * to its three files at explicit offsets (leaf records at the end of `k.leaves`, index records and
 * stored hashes at computed offsets), then fdatasync'ed — all three, and the directory when this
 * commit created the segment's files — before the commit counts. Only then does the size move and
 * may the caller acknowledge the entries (DESIGN.md decision 4). One writer; callers serialise.
 * A failed commit is rolled back by truncating the files to their previous lengths, so its bytes
 * can never resurface as entries after a crash; if even that fails the writer refuses further
 * commits (STORE_IO) until the store is reopened and recovery has run.
 */
import { constants, existsSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { HASH_SIZE, leafHash, storedHashCount, storedHashIndex, storedHashesForLeafHash } from '../../protocol/index.js';
import { GatewayError, invariant } from '../errors.js';
import { FILE_MODE, IDX_RECORD, LEAF_OVERHEAD, PACK_RECORD, segmentFileName, writeIdxRecord, writeLeafRecord } from './format.js';
import { ioError, syncDir } from './files.js';
import type { FrontierReader, SegmentLayout } from './hashes.js';

/** An entry ready to be written: encoded leaf data and what the index records about it. */
export interface PreparedEntry {
  readonly data: Uint8Array;
  /** RFC 9162 leaf hash of `data` when the caller has it (EncodedLeaf); else the commit computes it. */
  readonly leafHash: Uint8Array | undefined;
  readonly receivedAt: number;
  readonly counter: number;
  readonly packId: number;
}

export interface CommitResult {
  readonly first: number;
  readonly leafHashes: Uint8Array[];
  /** Bytes added to the three files. */
  readonly bytes: number;
}

interface Handles {
  readonly k: number;
  readonly leaves: FileHandle;
  readonly idx: FileHandle;
  readonly hashes: FileHandle;
}

/**
 * Bytes an entry at `index` with `dataLen` bytes of leaf data adds to disk: its leaf record,
 * index record and stored hashes, and its record in the segment's pack file once sealed.
 */
export function entryBytes(index: number, dataLen: number): number {
  let ones = 0;
  for (let n = index; n % 2 === 1; n = (n - 1) / 2) ones++;
  return LEAF_OVERHEAD + dataLen + IDX_RECORD + (1 + ones) * HASH_SIZE + PACK_RECORD;
}

export class SegmentWriter {
  #size: number;
  #leavesEnd: number;
  #handles: Handles | undefined;
  #broken: GatewayError | undefined;

  constructor(
    private readonly dir: string,
    private readonly layout: SegmentLayout,
    private readonly frontier: FrontierReader,
    size: number,
    leavesEnd: number,
  ) {
    this.#size = size;
    this.#leavesEnd = leavesEnd;
  }

  /** Durable number of entries. */
  get size(): number {
    return this.#size;
  }

  /**
   * Writes and syncs `entries` as entries size, size+1, …; they must all fall in one segment.
   * Throws STORE_IO (nothing of the commit counts) for a file-system failure.
   */
  async commit(entries: readonly PreparedEntry[]): Promise<CommitResult> {
    if (this.#broken) throw this.#broken;
    const first = this.#size;
    const end = first + entries.length;
    const k = this.layout.segmentOf(first);
    invariant(entries.length > 0 && this.layout.segmentOf(end - 1) === k, 'commit spans segments');
    // Build the three regions in memory; hashes come from the frontier (in-memory right edge).
    let leavesLen = 0;
    for (const e of entries) leavesLen += LEAF_OVERHEAD + e.data.length;
    const hFirst = storedHashCount(first);
    const leavesBuf = new Uint8Array(leavesLen);
    const idxBuf = new Uint8Array(entries.length * IDX_RECORD);
    const hashBuf = new Uint8Array((storedHashCount(end) - hFirst) * HASH_SIZE);
    const leafHashes: Uint8Array[] = [];
    let lat = 0;
    let hat = 0;
    try {
      entries.forEach((e, i) => {
        const index = first + i;
        writeIdxRecord(idxBuf, i * IDX_RECORD, { receivedAt: e.receivedAt, counter: e.counter, offset: this.#leavesEnd + lat, packId: e.packId });
        lat += writeLeafRecord(leavesBuf, lat, { index, receivedAt: e.receivedAt, counter: e.counter, packId: e.packId, batchBack: i }, e.data);
        const lh = e.leafHash ?? leafHash(e.data);
        leafHashes.push(lh);
        const hs = storedHashesForLeafHash(index, lh, this.frontier);
        const at = storedHashIndex(0, index);
        hs.forEach((h, level) => {
          this.frontier.set(level, at + level, h);
          hashBuf.set(h, hat);
          hat += HASH_SIZE;
        });
      });
    } catch (e) {
      this.frontier.clear();
      throw e;
    }
    invariant(hat === hashBuf.length && lat === leavesBuf.length, 'commit buffer sizes');

    let h: Handles | undefined;
    const before = { leaves: this.#leavesEnd, idx: (first - this.layout.start(k)) * IDX_RECORD, hashes: (hFirst - this.layout.hashBase(k)) * HASH_SIZE };
    try {
      const created = !this.#handles || this.#handles.k !== k ? await this.#openSegment(k) : false;
      h = this.#handles;
      invariant(h !== undefined, 'segment files not open');
      await Promise.all([
        h.leaves.write(leavesBuf, 0, leavesBuf.length, before.leaves),
        h.idx.write(idxBuf, 0, idxBuf.length, before.idx),
        h.hashes.write(hashBuf, 0, hashBuf.length, before.hashes),
      ]);
      await Promise.all([h.leaves.datasync(), h.idx.datasync(), h.hashes.datasync()]);
      if (created) await syncDir(this.dir);
    } catch (e) {
      this.frontier.clear();
      await this.#rollBack(h, before, e);
      throw ioError(`committing entries ${first}..${end - 1}`, e);
    }
    this.#size = end;
    this.#leavesEnd += leavesBuf.length;
    if (end === this.layout.start(k + 1)) {
      // Sealed: the next commit creates segment k+1, whose leaf records start at offset 0.
      this.#leavesEnd = 0;
      await this.#closeHandles();
    }
    return { first, leafHashes, bytes: leavesBuf.length + idxBuf.length + hashBuf.length };
  }

  /** Opens segment k's files for writing; true when any was created (the directory needs an fsync). */
  async #openSegment(k: number): Promise<boolean> {
    await this.#closeHandles();
    const path = (kind: 'leaves' | 'idx' | 'hashes'): string => join(this.dir, segmentFileName(k, kind));
    let created = false;
    const openOne = async (kind: 'leaves' | 'idx' | 'hashes'): Promise<FileHandle> => {
      created ||= !existsSync(path(kind));
      return open(path(kind), constants.O_RDWR | constants.O_CREAT, FILE_MODE);
    };
    // Leaves first: recovery treats a segment without leaves as never written.
    const leaves = await openOne('leaves');
    const idx = await openOne('idx');
    const hashes = await openOne('hashes');
    this.#handles = { k, leaves, idx, hashes };
    return created;
  }

  async #rollBack(h: Handles | undefined, before: { leaves: number; idx: number; hashes: number }, cause: unknown): Promise<void> {
    if (!h) return;
    try {
      await Promise.all([h.leaves.truncate(before.leaves), h.idx.truncate(before.idx), h.hashes.truncate(before.hashes)]);
      await Promise.all([h.leaves.datasync(), h.idx.datasync(), h.hashes.datasync()]);
    } catch {
      this.#broken = new GatewayError('STORE_IO', 'gateway: store: a failed commit could not be rolled back; reopen the store to recover', { cause });
    }
  }

  async #closeHandles(): Promise<void> {
    const h = this.#handles;
    this.#handles = undefined;
    if (h) await Promise.all([h.leaves.close(), h.idx.close(), h.hashes.close()]);
  }

  async close(): Promise<void> {
    await this.#closeHandles();
  }
}
