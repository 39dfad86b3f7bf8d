/**
 * Opening a log directory: options, lock, log.json (create or check), the small side files
 * (state.json, packs.registry, pruned.hashes, checkpoint), crash recovery of the last segment, the
 * check that the recovered tree still matches the latest signed checkpoint, and the replay of the
 * entries appended after the state snapshot into the per-pack summaries. Every step reads a bounded
 * amount — the side files grow with packs and pruned segments, never with entries — except a
 * missing or damaged state.json, which is rebuilt by replaying the index once (reported).
 */
import { mkdir, readdir, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { GATEWAY_ORIGIN_PREFIX, bytesEqual, gatewayOrigin, treeHash } from '../../protocol/index.js';
import { GatewayError, isGatewayError } from '../errors.js';
import { DEFAULT_SEGMENT_BITS, DIR_MODE, FILES, IDX_RECORD, MAX_SEGMENT_BITS, MIN_SEGMENT_BITS, parsePruned, parseRegistry, parseSegmentFileName, readIdxRecord } from './format.js';
import { readIfExists, writeAtomic } from './files.js';
import { readLatest, type StoredCheckpoint } from './checkpoints.js';
import { acquireLock, lockHeld } from './lock.js';
import { recover, type Recovery } from './recovery.js';
import { encodeConfig, parseConfig, parseState, type LogConfig, type StateSnapshot } from './state.js';
import { firstIndex, readIdxRange, type StoreCore } from './core.js';
import type { FdCache } from './files.js';
import type { SegmentLayout } from './hashes.js';

export interface LogStoreOptions {
  /** The log directory (the gateway uses `<dataDir>/log`). Created with mode 0700 if missing. */
  readonly dir: string;
  /** Checkpoint origin, `packchain.gateway/<name>`: required to create a log, must match to reopen. */
  readonly origin?: string;
  /** Disk quota for all of the store's files, bytes (default 8 GiB). */
  readonly quotaBytes?: number;
  /** Segment size 2^segmentBits entries (2..16, default 16); only used when creating the log. */
  readonly segmentBits?: number;
  /** Most entries one group commit takes from the queue (default 1024). */
  readonly maxBatchEntries?: number;
  /** Open without the lock and without writing anything (inspection, `gateway verify`, export). */
  readonly readOnly?: boolean;
  /** Clock for the checkpoint policy, ms since the Unix epoch (default Date.now). */
  readonly clock?: () => number;
  /**
   * Rewrite each sealed segment in pack order once the next one is sealed too (sealed.ts), so one
   * pack's history is one read per segment on a cold cache. Default: on for segments of ≥ 2^12
   * entries (a smaller segment is a few reads whatever its order).
   */
  readonly packOrder?: boolean;
}

/** Segment sizes from which sealed segments are rewritten in pack order unless `packOrder` says otherwise. */
export const PACK_ORDER_MIN_BITS = 12;

/** What open found and did; the daemon logs it. */
export interface OpenReport {
  readonly created: boolean;
  readonly size: number;
  readonly firstIndex: number;
  readonly cutEntries: number;
  readonly cutBytes: number;
  readonly cutReason?: string;
  readonly repairedIdx: number;
  readonly repairedHashes: number;
  readonly deletedFiles: readonly string[];
  /** Entries after the state snapshot folded into the pack summaries. */
  readonly replayedEntries: number;
  readonly lockTakenOver?: string;
  /** Why state.json was ignored (then replayed from the index). */
  readonly stateIgnored?: string;
  readonly latestCheckpointSize?: number;
  /** Read-only opens only: damage found (the visible size stops before it). */
  readonly corrupt?: { readonly index: number; readonly reason: string };
}

export const DEFAULT_QUOTA_BYTES = 8 * 2 ** 30;
export const DEFAULT_MAX_BATCH_ENTRIES = 1024;

const config = (why: string): GatewayError => new GatewayError('STORE_CONFIG', `gateway: store: ${why}`);

export interface CheckedOptions {
  readonly dir: string;
  readonly origin: string | undefined;
  readonly quotaBytes: number;
  readonly segmentBits: number | undefined;
  readonly maxBatchEntries: number;
  readonly readOnly: boolean;
  readonly clock: () => number;
  readonly packOrder: boolean | undefined;
}

/** Validates options. Throws STORE_CONFIG. */
export function checkOptions(o: LogStoreOptions): CheckedOptions {
  if (typeof o.dir !== 'string' || o.dir === '') throw config('dir: expected a directory path');
  if (o.origin !== undefined) {
    if (typeof o.origin !== 'string' || !o.origin.startsWith(GATEWAY_ORIGIN_PREFIX)) throw config(`origin: expected "${GATEWAY_ORIGIN_PREFIX}<gateway-name>"`);
    try {
      gatewayOrigin(o.origin.slice(GATEWAY_ORIGIN_PREFIX.length));
    } catch (e) {
      throw new GatewayError('STORE_CONFIG', `gateway: store: origin: ${(e as Error).message}`, { cause: e });
    }
  }
  const quotaBytes = o.quotaBytes ?? DEFAULT_QUOTA_BYTES;
  if (typeof quotaBytes !== 'number' || !(quotaBytes > 0)) throw config('quotaBytes: expected a positive number of bytes');
  const bits = o.segmentBits;
  if (bits !== undefined && (!Number.isSafeInteger(bits) || bits < MIN_SEGMENT_BITS || bits > MAX_SEGMENT_BITS)) {
    throw config(`segmentBits: expected an integer in ${MIN_SEGMENT_BITS}..${MAX_SEGMENT_BITS}`);
  }
  const maxBatchEntries = o.maxBatchEntries ?? DEFAULT_MAX_BATCH_ENTRIES;
  if (!Number.isSafeInteger(maxBatchEntries) || maxBatchEntries < 1 || maxBatchEntries > 65_536) throw config('maxBatchEntries: expected an integer in 1..65536');
  if (o.clock !== undefined && typeof o.clock !== 'function') throw config('clock: expected a function returning ms');
  if (o.packOrder !== undefined && typeof o.packOrder !== 'boolean') throw config('packOrder: expected true or false');
  return { dir: o.dir, origin: o.origin, quotaBytes, segmentBits: bits, maxBatchEntries, readOnly: o.readOnly === true, clock: o.clock ?? Date.now, packOrder: o.packOrder };
}

/** Takes the lock (unless read-only) and reads or creates log.json. */
export async function openConfig(o: CheckedOptions): Promise<{ config: LogConfig; created: boolean; release: () => Promise<void>; takenOver?: string }> {
  if (!o.readOnly) await mkdir(o.dir, { recursive: true, mode: DIR_MODE });
  const lock = o.readOnly ? { release: () => Promise.resolve() } : await acquireLock(join(o.dir, FILES.lock));
  try {
    const path = join(o.dir, FILES.config);
    const bytes = await readIfExists(path);
    let cfg: LogConfig;
    let created = false;
    if (bytes === undefined) {
      if (o.readOnly) throw config(`${path} does not exist: not a log directory`);
      const names = await readdir(o.dir);
      if (names.some((n) => parseSegmentFileName(n) !== undefined)) throw new GatewayError('STORE_CORRUPT', `gateway: store: ${path} is missing but the directory holds segment files`);
      if (o.origin === undefined) throw config('origin is required to create a log');
      cfg = { origin: o.origin, segmentBits: o.segmentBits ?? DEFAULT_SEGMENT_BITS };
      await writeAtomic(path, encodeConfig(cfg));
      created = true;
    } else {
      cfg = parseConfig(Buffer.from(bytes).toString('utf8'), path);
      if (o.origin !== undefined && o.origin !== cfg.origin) throw config(`this log's origin is ${JSON.stringify(cfg.origin)}, not ${JSON.stringify(o.origin)}`);
      if (o.segmentBits !== undefined && o.segmentBits !== cfg.segmentBits) throw config(`this log has segments of 2^${cfg.segmentBits} entries, not 2^${o.segmentBits}`);
    }
    return { config: cfg, created, release: lock.release, ...('takenOver' in lock && lock.takenOver ? { takenOver: lock.takenOver } : {}) };
  } catch (e) {
    await lock.release();
    throw e;
  }
}

export interface SideFiles {
  readonly state: StateSnapshot | undefined;
  readonly stateIgnored?: string;
  readonly serials: string[];
  readonly registryBytes: number;
  readonly pruned: Map<number, Uint8Array>;
  readonly latest: StoredCheckpoint | undefined;
}

/** Reads the side files, cutting torn tails of the append-only ones (unless read-only). */
export async function readSideFiles(dir: string, cfg: LogConfig, readOnly: boolean): Promise<SideFiles> {
  let state: StateSnapshot | undefined;
  let stateIgnored: string | undefined;
  const stateBytes = await readIfExists(join(dir, FILES.state));
  if (stateBytes) {
    try {
      state = parseState(Buffer.from(stateBytes).toString('utf8'), FILES.state);
    } catch (e) {
      if (!isGatewayError(e, 'STORE_CORRUPT')) throw e;
      stateIgnored = e.message; // derived data: rebuilt by replaying the index
    }
  }
  const cut = async (name: string, total: number, valid: number): Promise<void> => {
    if (!readOnly && valid < total) await truncate(join(dir, name), valid);
  };
  const reg = (await readIfExists(join(dir, FILES.registry))) ?? new Uint8Array(0);
  const { serials, validBytes: registryBytes } = parseRegistry(reg);
  await cut(FILES.registry, reg.length, registryBytes);
  const pr = (await readIfExists(join(dir, FILES.pruned))) ?? new Uint8Array(0);
  const { hashes: pruned, validBytes: prunedBytes } = parsePruned(pr);
  await cut(FILES.pruned, pr.length, prunedBytes);
  const latest = await readLatest(dir, cfg.origin);
  return { state, ...(stateIgnored ? { stateIgnored } : {}), serials, registryBytes, pruned, latest };
}

/** Runs recovery with the mark the side files give. */
export async function recoverLog(dir: string, layout: SegmentLayout, fds: FdCache, side: SideFiles, readOnly: boolean): Promise<Recovery> {
  const mark = Math.max(side.state?.size ?? 0, side.latest?.size ?? 0);
  const liveWriter = readOnly && (await lockHeld(join(dir, FILES.lock)));
  return recover({ dir, layout, fds, readOnly, pruned: side.pruned, mark, names: await readdir(dir), liveWriter });
}

/**
 * Checks the recovered tree against the latest checkpoint: same root at its size. A mismatch means
 * the durable log changed under a signed checkpoint: STORE_CORRUPT (read-only: returned). A
 * checkpoint inside a pruned region that cannot be recomputed is skipped.
 */
export function checkLatest(core: StoreCore, latest: StoredCheckpoint | undefined): string | undefined {
  if (!latest) return undefined;
  if (latest.size > core.size) return `the latest checkpoint covers ${latest.size} entries, the log holds ${core.size}`;
  let root: Uint8Array;
  try {
    root = treeHash(latest.size, core.reader);
  } catch (e) {
    if (isGatewayError(e, 'STORE_RANGE')) return undefined;
    throw e;
  }
  return bytesEqual(root, latest.rootHash) ? undefined : `the tree of size ${latest.size} no longer has the root the latest checkpoint signed`;
}

/** Folds entries [from, core.size) into the pack summaries; returns how many. */
export function replayPacks(core: StoreCore, from: number): number {
  const start = Math.max(from, firstIndex(core));
  for (let a = start; a < core.size; ) {
    const b = Math.min(core.size, core.layout.start(core.layout.segmentOf(a) + 1));
    const idx = readIdxRange(core, a, b);
    for (let i = a; i < b; i++) {
      const r = readIdxRecord(idx, (i - a) * IDX_RECORD);
      core.packs.apply(r.packId, i, r.counter, r.receivedAt);
    }
    a = b;
  }
  return Math.max(0, core.size - start);
}
