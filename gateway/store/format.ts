/**
 * On-disk record formats of the gateway's log store (docs/gateway.md "Log storage"): file names,
 * the leaf record (the truth), the fixed-size index record (derived), and the small append-only
 * side files (pack registry, pruned-segment hashes, checkpoint history). Everything is big-endian
 * and guarded by CRC-32 so that a torn or garbled tail is detected instead of misread; decoders
 * return undefined for a damaged record and never throw on disk bytes (the caller decides whether a
 * damaged record is a torn tail to cut or corruption to report). u64 fields hold safe integers.
 */
import zlib from 'node:zlib';
import { MAX_LEAF_BYTES, crc32 as jsCrc32 } from '../../protocol/index.js';

/** Format tag of log.json; a directory with another tag is not ours. */
export const LOG_FORMAT = 'packchain-gateway-log/v1';
/** Mode of every file the store writes: the log is the gateway's private data. */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** Segment sizes the store accepts: 2^segmentBits entries; 16 by default (DESIGN.md §6). */
export const MIN_SEGMENT_BITS = 2;
export const MAX_SEGMENT_BITS = 16; // leaf record batchBack is u16; leaf offsets stay far below 2^32
export const DEFAULT_SEGMENT_BITS = 16;

/**
 * CRC-32 (IEEE, the one protocol's crc32 computes). zlib's native one (Node ≥ 20.15) is ~17×
 * faster than the table-driven JavaScript; older Node 20 releases fall back to protocol's.
 */
const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
export function crc(b: Uint8Array, start = 0, end = b.length): number {
  return native ? native(b.subarray(start, end)) : jsCrc32(b, start, end);
}

export const putU64 = (v: DataView, at: number, x: number): void => {
  v.setUint32(at, Math.floor(x / 0x1_0000_0000));
  v.setUint32(at + 4, x >>> 0);
};
export const getU64 = (v: DataView, at: number): number => v.getUint32(at) * 0x1_0000_0000 + v.getUint32(at + 4);
export const viewOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

// ---- file names ------------------------------------------------------------------------------

export type SegmentFileKind = 'leaves' | 'idx' | 'hashes' | 'packs' | 'checkpoints' | 'sealed';
export const SEGMENT_FILE_KINDS: readonly SegmentFileKind[] = ['leaves', 'idx', 'hashes', 'packs', 'checkpoints', 'sealed'];

/** `00000012.leaves`: segment numbers are zero-padded to 8 digits (wider when needed) so names sort. */
export const segmentFileName = (k: number, kind: SegmentFileKind): string => `${String(k).padStart(8, '0')}.${kind}`;

const SEGMENT_NAME = /^(\d{8,16})\.(leaves|idx|hashes|packs|checkpoints|sealed)$/;

export function parseSegmentFileName(name: string): { k: number; kind: SegmentFileKind } | undefined {
  const m = SEGMENT_NAME.exec(name);
  if (!m?.[1] || !m[2]) return undefined;
  const k = Number(m[1]);
  return Number.isSafeInteger(k) && segmentFileName(k, m[2] as SegmentFileKind) === name ? { k, kind: m[2] as SegmentFileKind } : undefined;
}

export const FILES = {
  config: 'log.json',
  state: 'state.json',
  lock: 'LOCK',
  checkpoint: 'checkpoint',
  registry: 'packs.registry',
  pruned: 'pruned.hashes',
} as const;

// ---- leaf records (k.leaves) -------------------------------------------------------------------

/**
 * Leaf record: the entry's leaf data plus what the index and pack files are derived from, so a
 * damaged index can always be rebuilt from the leaves.
 *   0 u32 dataLen (1..1024) | 4 u64 index | 12 u64 receivedAt | 20 u64 counter | 28 u32 packId
 *   32 u16 batchBack (index − first index of its commit) | 34 u16 0 | 36 data | u32 crc32([0, 36+dataLen))
 * The index inside the record makes stale bytes left at a reused offset detectable; batchBack lets
 * recovery tell a torn commit (cut) from damage to an earlier, acknowledged commit (STORE_CORRUPT).
 */
export const LEAF_HEADER = 36;
export const LEAF_OVERHEAD = LEAF_HEADER + 4;
export const MAX_LEAF_RECORD = LEAF_OVERHEAD + MAX_LEAF_BYTES;

export interface LeafMeta {
  readonly index: number;
  readonly receivedAt: number;
  readonly counter: number;
  readonly packId: number;
  readonly batchBack: number;
}

export interface LeafRecord extends LeafMeta {
  readonly data: Uint8Array;
  /** Bytes the record occupies in the file. */
  readonly length: number;
}

/** Writes the leaf record for `meta` and `data` into `out` at `at`; returns its length. */
export function writeLeafRecord(out: Uint8Array, at: number, meta: LeafMeta, data: Uint8Array): number {
  const v = viewOf(out);
  v.setUint32(at, data.length);
  putU64(v, at + 4, meta.index);
  putU64(v, at + 12, meta.receivedAt);
  putU64(v, at + 20, meta.counter);
  v.setUint32(at + 28, meta.packId);
  v.setUint16(at + 32, meta.batchBack);
  v.setUint16(at + 34, 0);
  out.set(data, at + LEAF_HEADER);
  const end = at + LEAF_HEADER + data.length;
  v.setUint32(end, crc(out, at, end));
  return LEAF_OVERHEAD + data.length;
}

export type LeafParse = { readonly ok: true; readonly record: LeafRecord } | { readonly ok: false; readonly why: string };

/**
 * Parses the leaf record at `at` in `buf` (bytes read from the file starting somewhere before).
 * `expectIndex` is the entry the caller expects there. Never throws: returns why it is not a valid
 * record (cut short, bad length, wrong index, CRC mismatch). `data` is a view into `buf`.
 */
export function parseLeafRecord(buf: Uint8Array, at: number, expectIndex: number): LeafParse {
  if (buf.length - at < LEAF_HEADER) return { ok: false, why: 'record header cut short' };
  const v = viewOf(buf);
  const len = v.getUint32(at);
  if (len < 1 || len > MAX_LEAF_BYTES) return { ok: false, why: `data length ${len} outside 1..${MAX_LEAF_BYTES}` };
  if (buf.length - at < LEAF_OVERHEAD + len) return { ok: false, why: 'record cut short' };
  const end = at + LEAF_HEADER + len;
  if (v.getUint32(end) !== crc(buf, at, end)) return { ok: false, why: 'CRC mismatch' };
  const index = getU64(v, at + 4);
  if (index !== expectIndex) return { ok: false, why: `record holds entry ${index}, expected ${expectIndex}` };
  if (v.getUint16(at + 34) !== 0) return { ok: false, why: 'reserved bytes not zero' };
  const batchBack = v.getUint16(at + 32);
  if (batchBack > index) return { ok: false, why: 'commit start before entry 0' };
  return {
    ok: true,
    record: {
      index,
      receivedAt: getU64(v, at + 12),
      counter: getU64(v, at + 20),
      packId: v.getUint32(at + 28),
      batchBack,
      data: buf.subarray(at + LEAF_HEADER, end),
      length: LEAF_OVERHEAD + len,
    },
  };
}

// ---- index records (k.idx) ---------------------------------------------------------------------

/**
 * Index record, one per entry at (index − segment start) × 24, derived from the leaf record:
 *   0 u64 receivedAt | 8 u64 counter | 16 u32 leaf record offset in k.leaves | 20 u32 packId
 * No CRC: entries below the recovery mark were fsynced with their leaves; the rest are recomputed
 * from the leaves on open.
 */
export const IDX_RECORD = 24;

export interface IdxRecord {
  readonly receivedAt: number;
  readonly counter: number;
  readonly offset: number;
  readonly packId: number;
}

export function writeIdxRecord(out: Uint8Array, at: number, r: IdxRecord): void {
  const v = viewOf(out);
  putU64(v, at, r.receivedAt);
  putU64(v, at + 8, r.counter);
  v.setUint32(at + 16, r.offset);
  v.setUint32(at + 20, r.packId);
}

export function readIdxRecord(buf: Uint8Array, at: number): IdxRecord {
  const v = viewOf(buf);
  return { receivedAt: getU64(v, at), counter: getU64(v, at + 8), offset: v.getUint32(at + 16), packId: v.getUint32(at + 20) };
}

/** Bytes per entry in a sealed segment's pack file (packs.ts). */
export const PACK_RECORD = 24;

// ---- sealed segments in pack order (k.sealed) ----------------------------------------------------

/**
 * A sealed segment rewritten in pack order (sealed.ts) replaces its `.leaves`, `.idx` and `.packs`
 * with one file: a header, then the index section (N index records in entry order, leaf offsets
 * absolute in this file), the pack section (the pack file format, offsets absolute in this file),
 * then the leaf records, byte for byte as they were, grouped by pack (pack id ascending) and in
 * entry order within a pack — so one pack's frames of the segment are one contiguous read.
 *   0 "PCSL" | 4 u32 1 | 8 u32 entries N | 12 u32 packsAt | 16 u32 packsLen | 20 u32 leavesAt
 *   24 u32 file length | 28 u32 crc32 of [0, 28) | 32 N × index record | packsAt pack section
 *   | leavesAt leaf records
 */
export const SEALED_HEADER = 32;
const SEALED_MAGIC = 0x5043534c; // "PCSL"

export interface SealedLayout {
  readonly entries: number;
  readonly idxAt: number;
  readonly packsAt: number;
  readonly packsLen: number;
  readonly leavesAt: number;
  readonly length: number;
}

export function sealedHeader(l: Omit<SealedLayout, 'idxAt'>): Uint8Array {
  const out = new Uint8Array(SEALED_HEADER);
  const v = viewOf(out);
  v.setUint32(0, SEALED_MAGIC);
  v.setUint32(4, 1);
  v.setUint32(8, l.entries);
  v.setUint32(12, l.packsAt);
  v.setUint32(16, l.packsLen);
  v.setUint32(20, l.leavesAt);
  v.setUint32(24, l.length);
  v.setUint32(28, crc(out, 0, 28));
  return out;
}

/** The layout a sealed file's header gives, or undefined when the header is damaged or inconsistent. */
export function parseSealedHeader(b: Uint8Array): SealedLayout | undefined {
  if (b.length < SEALED_HEADER) return undefined;
  const v = viewOf(b);
  if (v.getUint32(0) !== SEALED_MAGIC || v.getUint32(4) !== 1 || v.getUint32(28) !== crc(b, 0, 28)) return undefined;
  const entries = v.getUint32(8);
  const l: SealedLayout = { entries, idxAt: SEALED_HEADER, packsAt: v.getUint32(12), packsLen: v.getUint32(16), leavesAt: v.getUint32(20), length: v.getUint32(24) };
  const ordered = l.packsAt === SEALED_HEADER + entries * IDX_RECORD && l.leavesAt === l.packsAt + l.packsLen && l.length >= l.leavesAt + entries * LEAF_OVERHEAD;
  return ordered ? l : undefined;
}

// ---- pack registry (packs.registry) -------------------------------------------------------------

/** Registry record: u32 serialLen | u32 packId | serial (UTF-8) | u32 crc32. Pack ids are dense from 0. */
export const MAX_SERIAL_BYTES = 64;
/** Bytes a registry record adds besides the serial. */
export const REGISTRY_OVERHEAD = 12;

export function registryRecord(packId: number, serial: string): Uint8Array {
  const s = Buffer.from(serial, 'utf8');
  const out = new Uint8Array(12 + s.length);
  const v = viewOf(out);
  v.setUint32(0, s.length);
  v.setUint32(4, packId);
  out.set(s, 8);
  v.setUint32(8 + s.length, crc(out, 0, 8 + s.length));
  return out;
}

/** Reads registry records until the first damaged one; `validBytes` is where a torn tail starts. */
export function parseRegistry(buf: Uint8Array): { serials: string[]; validBytes: number } {
  const v = viewOf(buf);
  const serials: string[] = [];
  let at = 0;
  while (buf.length - at >= 12) {
    const len = v.getUint32(at);
    if (len < 1 || len > MAX_SERIAL_BYTES || buf.length - at < 12 + len) break;
    if (v.getUint32(at + 8 + len) !== crc(buf, at, at + 8 + len) || v.getUint32(at + 4) !== serials.length) break;
    serials.push(Buffer.from(buf.subarray(at + 8, at + 8 + len)).toString('utf8'));
    at += 12 + len;
  }
  return { serials, validBytes: at };
}

// ---- pruned-segment hashes (pruned.hashes) --------------------------------------------------------

/** u64 stored hash index | 32-byte hash | u32 crc32: the level ≥ segmentBits hashes of pruned segments. */
export const PRUNED_RECORD = 44;

export function prunedRecord(storedIndex: number, hash: Uint8Array): Uint8Array {
  const out = new Uint8Array(PRUNED_RECORD);
  const v = viewOf(out);
  putU64(v, 0, storedIndex);
  out.set(hash, 8);
  v.setUint32(40, crc(out, 0, 40));
  return out;
}

export function parsePruned(buf: Uint8Array): { hashes: Map<number, Uint8Array>; validBytes: number } {
  const v = viewOf(buf);
  const hashes = new Map<number, Uint8Array>();
  let at = 0;
  for (; buf.length - at >= PRUNED_RECORD; at += PRUNED_RECORD) {
    if (v.getUint32(at + 40) !== crc(buf, at, at + 40)) break;
    hashes.set(getU64(v, at), buf.slice(at + 8, at + 40));
  }
  return { hashes, validBytes: at };
}

// ---- checkpoint history (k.checkpoints) -----------------------------------------------------------

/** u32 noteLen | u64 tree size | signed note (UTF-8) | u32 crc32: every checkpoint whose last entry is in segment k. */
export function checkpointRecord(size: number, note: string): Uint8Array {
  const n = Buffer.from(note, 'utf8');
  const out = new Uint8Array(16 + n.length);
  const v = viewOf(out);
  v.setUint32(0, n.length);
  putU64(v, 4, size);
  out.set(n, 12);
  v.setUint32(12 + n.length, crc(out, 0, 12 + n.length));
  return out;
}

export function parseCheckpointRecords(buf: Uint8Array): { records: { size: number; note: string }[]; validBytes: number } {
  const v = viewOf(buf);
  const records: { size: number; note: string }[] = [];
  let at = 0;
  while (buf.length - at >= 16) {
    const len = v.getUint32(at);
    if (len < 1 || len > 65_536 || buf.length - at < 16 + len) break;
    if (v.getUint32(at + 12 + len) !== crc(buf, at, at + 12 + len)) break;
    records.push({ size: getU64(v, at + 4), note: Buffer.from(buf.subarray(at + 12, at + 12 + len)).toString('utf8') });
    at += 16 + len;
  }
  return { records, validBytes: at };
}
