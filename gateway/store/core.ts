/**
 * The shared state of one open log store and the read primitives every part uses: the durable
 * size, the first segment still on disk, the usage counted against the quota, and positional reads
 * of index and leaf records. LogStore (the facade) owns a StoreCore; the appender, history and
 * quota code operate on it. Reads never go past the durable size, so they can run while a commit
 * is being written; a damaged record inside the durable log is STORE_CORRUPT, an index outside it
 * (or pruned) is STORE_RANGE.
 */
import { join } from 'node:path';
import { leafHash } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { IDX_RECORD, MAX_LEAF_RECORD, SEALED_HEADER, parseLeafRecord, readIdxRecord, segmentFileName, type IdxRecord, type LeafRecord, type SealedLayout, type SegmentFileKind } from './format.js';
import { copyOut, type FdCache } from './files.js';
import type { SegmentLayout, StoreHashReader } from './hashes.js';
import type { PackIndex } from './packs.js';
import type { LogConfig } from './state.js';
import type { SegmentWriter } from './writer.js';

/** One log entry as read back. */
export interface StoredEntry {
  readonly index: number;
  /** The leaf data (protocol decodeLeaf reads it), exactly as hashed. */
  readonly data: Uint8Array;
  /** RFC 9162 leaf hash of `data`, computed on first use (a history export rarely needs it). */
  readonly leafHash: Uint8Array;
  readonly receivedAt: number;
  readonly counter: number;
  readonly serial: string;
}

export class Entry implements StoredEntry {
  #hash: Uint8Array | undefined;

  constructor(
    readonly index: number,
    readonly data: Uint8Array,
    readonly receivedAt: number,
    readonly counter: number,
    readonly serial: string,
  ) {}

  get leafHash(): Uint8Array {
    this.#hash ??= leafHash(this.data);
    return this.#hash;
  }
}

/** Counters for metrics (the daemon exports them); all only ever increase. */
export interface StoreStats {
  appendCalls: number;
  appendedEntries: number;
  commits: number;
  quotaRejects: number;
  inputRejects: number;
  ioErrors: number;
  prunedSegments: number;
  checkpoints: number;
  packFilesRebuilt: number;
  /** Sealed segments rewritten in pack order (sealed.ts). */
  sealedSegments: number;
}

export interface StoreCore {
  readonly dir: string;
  readonly config: LogConfig;
  readonly layout: SegmentLayout;
  readonly fds: FdCache;
  readonly pruned: Map<number, Uint8Array>;
  readonly reader: StoreHashReader;
  readonly packs: PackIndex;
  readonly readOnly: boolean;
  readonly quotaBytes: number;
  readonly stats: StoreStats;
  readonly writer: SegmentWriter | undefined;
  /** Segments rewritten in pack order (`k.sealed` replaces `.leaves`, `.idx`, `.packs`), by number. */
  readonly sealed: Map<number, SealedLayout>;
  /** Whether sealed segments are rewritten in pack order (sealed.ts). */
  readonly packOrder: boolean;
  size: number;
  firstSegment: number;
  syncedSize: number;
  /** Size of the latest signed checkpoint (0 if none): pruning stays below it too. */
  checkpointSize: number;
  lastReceivedAt: number;
  usage: number;
  /**
   * Runs `task` after every write task queued before it (state.json, pack files, checkpoints,
   * pruning) and settles as it does; a failure does not stop later tasks.
   */
  enqueue<T>(task: () => Promise<T>): Promise<T>;
}

const pathCache = new Map<string, Map<number, Partial<Record<SegmentFileKind, string>>>>();

/** Path of segment k's file of `kind` (memoised: it is on every read's path). */
export function segPath(core: StoreCore, k: number, kind: SegmentFileKind): string {
  let byK = pathCache.get(core.dir);
  if (!byK) pathCache.set(core.dir, (byK = new Map<number, Partial<Record<SegmentFileKind, string>>>()));
  let kinds = byK.get(k);
  if (!kinds) {
    if (byK.size >= 4096) byK.clear();
    byK.set(k, (kinds = {}));
  }
  return (kinds[kind] ??= join(core.dir, segmentFileName(k, kind)));
}

/** First entry still on disk (entries below it were pruned). */
export const firstIndex = (core: StoreCore): number => Math.min(core.size, core.layout.start(core.firstSegment));

/** Throws STORE_RANGE unless `index` is an entry on disk. */
export function checkIndex(core: StoreCore, index: number, what = 'entry'): void {
  if (!Number.isSafeInteger(index) || index < 0 || index >= core.size) {
    throw new GatewayError('STORE_RANGE', `gateway: store: ${what} ${String(index)}: expected an integer in [0, ${core.size})`);
  }
  if (index < firstIndex(core)) throw new GatewayError('STORE_RANGE', `gateway: store: ${what} ${index} was pruned (entries before ${firstIndex(core)} are gone)`);
}

function wrapRead<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof GatewayError) throw e;
    throw new GatewayError('STORE_IO', `gateway: store: reading ${what} failed`, { cause: e });
  }
}

/** The file holding segment k's leaf records: `.sealed` once rewritten in pack order, else `.leaves`. */
export function leavesPath(core: StoreCore, k: number): string {
  return segPath(core, k, core.sealed.has(k) ? 'sealed' : 'leaves');
}

/** Index records of entries [from, to) of one segment (the caller keeps them in one segment). */
export function readIdxRange(core: StoreCore, from: number, to: number): Uint8Array {
  const k = core.layout.segmentOf(from);
  const sealed = core.sealed.has(k);
  const path = segPath(core, k, sealed ? 'sealed' : 'idx');
  const base = sealed ? SEALED_HEADER : 0;
  return wrapRead(path, () =>
    core.fds.readExact(path, base + (from - core.layout.start(k)) * IDX_RECORD, (to - from) * IDX_RECORD, () => {
      return new GatewayError('STORE_CORRUPT', `gateway: store: ${path} ends before entry ${to - 1}`);
    }),
  );
}

export function readIdx(core: StoreCore, index: number): IdxRecord {
  return readIdxRecord(readIdxRange(core, index, index + 1), 0);
}

/** The leaf record of `index` at byte `offset` of its segment; STORE_CORRUPT when it is damaged. */
const scratch = new Uint8Array(MAX_LEAF_RECORD);

export function readLeafAt(core: StoreCore, index: number, offset: number): LeafRecord {
  const path = leavesPath(core, core.layout.segmentOf(index));
  const got = wrapRead(path, () => core.fds.readInto(path, offset, scratch));
  const r = parseLeafRecord(scratch.subarray(0, got), 0, index);
  if (!r.ok) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${path}: entry ${index}: ${r.why}`);
  // The record's data is a view into the shared scratch buffer: hand out a copy.
  return { ...r.record, data: copyOut(r.record.data, 0, r.record.data.length) };
}

/**
 * The leaf records of `entries` of segment k (entry order). When they lie close together — one
 * pack's run in a segment rewritten in pack order — they come from a single read; scattered, one
 * read each. Throws STORE_CORRUPT, STORE_IO.
 */
export function readLeavesOf(core: StoreCore, k: number, entries: readonly { index: number; offset: number }[]): LeafRecord[] {
  if (entries.length === 0) return [];
  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (const e of entries) {
    lo = Math.min(lo, e.offset);
    hi = Math.max(hi, e.offset);
  }
  const span = hi - lo + MAX_LEAF_RECORD;
  if (span > Math.max(1 << 20, 2 * entries.length * MAX_LEAF_RECORD)) return entries.map((e) => readLeafAt(core, e.index, e.offset));
  const path = leavesPath(core, k);
  const buf = wrapRead(path, () => core.fds.read(path, lo, span));
  return entries.map((e) => {
    const r = parseLeafRecord(buf, e.offset - lo, e.index);
    if (!r.ok) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${path}: entry ${e.index}: ${r.why}`);
    return { ...r.record, data: r.record.data.slice() };
  });
}

/** The leaf record of entry `index`. Throws STORE_RANGE, STORE_CORRUPT, STORE_IO. */
export function readLeaf(core: StoreCore, index: number): LeafRecord {
  checkIndex(core, index);
  return readLeafAt(core, index, readIdx(core, index).offset);
}

/** A FIFO of async tasks: each starts after the previous one settled; a failure does not stop the queue. */
export class TaskQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Settles when every task queued so far has settled. */
  async idle(): Promise<void> {
    await this.#tail;
  }
}
