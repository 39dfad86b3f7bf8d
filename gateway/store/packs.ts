/**
 * The per-pack side of the log store: pack serial ↔ dense pack id (`packs.registry`, append-only,
 * fsynced before any entry refers to a new id), per-pack summaries for the ingest's duplicate and
 * gap checks (snapshotted in state.json), and the sealed segments' pack files (`k.packs`) that
 * answer "this pack's entries in segment k" with two reads, so one pack's history costs
 * O(segments + its entries), never a scan of the whole log. Pack files are derived from the index
 * and rebuilt when missing or damaged; the active segment is answered from its index directly.
 *
 * Pack file (big-endian):
 *   0 "PCPK" | 4 u32 1 | 8 u32 entries N | 12 u32 packs D
 *   16 D × [u32 packId | u32 first record | u32 count | u32 crc32 of those records], sorted by packId
 *   16+16D u32 crc32 of [0, 16+16D)
 *   20+16D N × [u32 entry − segment start | u32 leaf offset | u64 counter | u64 receivedAt], grouped
 *   by pack, ascending entry within a pack.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { PACK_SERIAL_PATTERN } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { FILE_MODE, IDX_RECORD, PACK_RECORD, crc, getU64, putU64, readIdxRecord, registryRecord, viewOf } from './format.js';
import type { PackSummary, StateSnapshot } from './state.js';

const MAGIC = 0x5043504b; // "PCPK"

/** One entry of a pack, as the pack files and the index give it. */
export interface PackEntry {
  readonly index: number;
  readonly offset: number;
  readonly counter: number;
  readonly receivedAt: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class PackIndex {
  readonly #serials: string[];
  readonly #ids = new Map<string, number>();
  readonly #summaries = new Map<number, Mutable<PackSummary>>();
  #registry: FileHandle | undefined;
  #registryBytes: number;

  constructor(
    private readonly registryPath: string,
    serials: readonly string[],
    registryBytes: number,
  ) {
    this.#serials = [...serials];
    this.#serials.forEach((s, i) => this.#ids.set(s, i));
    this.#registryBytes = registryBytes;
  }

  get count(): number {
    return this.#serials.length;
  }

  idOf(serial: string): number | undefined {
    return this.#ids.get(serial);
  }

  serialOf(packId: number): string | undefined {
    return this.#serials[packId];
  }

  /** Appends new serials to the registry and fsyncs it; returns their ids. Throws the file error. */
  async register(serials: readonly string[]): Promise<number> {
    if (serials.length === 0) return 0;
    const recs = serials.map((s, i) => registryRecord(this.#serials.length + i, s));
    this.#registry ??= await open(this.registryPath, 'a', FILE_MODE);
    const bytes = Buffer.concat(recs);
    await this.#registry.write(bytes, 0, bytes.length, this.#registryBytes);
    await this.#registry.datasync();
    this.#registryBytes += bytes.length;
    for (const s of serials) {
      this.#ids.set(s, this.#serials.length);
      this.#serials.push(s);
    }
    return bytes.length;
  }

  /** Loads summaries from a snapshot; ids the registry does not know are corruption. */
  load(snapshot: StateSnapshot | undefined): void {
    this.#summaries.clear();
    for (const p of snapshot?.packs ?? []) {
      const serial = this.#serials[p.packId];
      if (serial === undefined) throw new GatewayError('STORE_CORRUPT', `gateway: store: state.json names pack id ${p.packId}, which packs.registry does not hold`);
      this.#summaries.set(p.packId, { ...p, serial });
    }
  }

  /** Folds one appended entry into its pack's summary. */
  apply(packId: number, index: number, counter: number, receivedAt: number): void {
    const s = this.#summaries.get(packId);
    if (s === undefined) {
      const serial = this.#serials[packId];
      if (serial === undefined) throw new GatewayError('STORE_CORRUPT', `gateway: store: entry ${index} names pack id ${packId}, which packs.registry does not hold`);
      this.#summaries.set(packId, { serial, packId, entries: 1, firstIndex: index, lastIndex: index, lastCounter: counter, maxCounter: counter, lastReceivedAt: receivedAt });
      return;
    }
    s.entries++;
    s.lastIndex = index;
    s.lastCounter = counter;
    s.maxCounter = Math.max(s.maxCounter, counter);
    s.lastReceivedAt = receivedAt;
  }

  summary(serial: string): PackSummary | undefined {
    const id = this.#ids.get(serial);
    const s = id === undefined ? undefined : this.#summaries.get(id);
    return s && { ...s };
  }

  summaries(): PackSummary[] {
    return [...this.#summaries.values()].map((s) => ({ ...s }));
  }

  snapshotPacks(): Omit<PackSummary, 'serial'>[] {
    return [...this.#summaries.values()].map(({ serial: _serial, ...rest }) => rest);
  }

  async close(): Promise<void> {
    await this.#registry?.close();
    this.#registry = undefined;
  }
}

/** Checks a serial the way the certificate profile does (protocol PACK_SERIAL_PATTERN). */
export function validSerial(serial: unknown): serial is string {
  return typeof serial === 'string' && PACK_SERIAL_PATTERN.test(serial);
}

/** Builds a sealed segment's pack file from its index bytes (one 24-byte record per entry). */
export function buildPackFile(idx: Uint8Array): Uint8Array {
  const n = idx.length / IDX_RECORD;
  const iv = viewOf(idx);
  const byPack = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const id = iv.getUint32(i * IDX_RECORD + 20);
    let list = byPack.get(id);
    if (!list) byPack.set(id, (list = []));
    list.push(i);
  }
  const ids = [...byPack.keys()].sort((a, b) => a - b);
  const dirEnd = 16 + 16 * ids.length;
  const out = new Uint8Array(dirEnd + 4 + n * PACK_RECORD);
  const v = viewOf(out);
  v.setUint32(0, MAGIC);
  v.setUint32(4, 1);
  v.setUint32(8, n);
  v.setUint32(12, ids.length);
  let rec = 0;
  ids.forEach((id, d) => {
    const list = byPack.get(id) ?? [];
    const from = dirEnd + 4 + rec * PACK_RECORD;
    for (const local of list) {
      const r = readIdxRecord(idx, local * IDX_RECORD);
      const at = dirEnd + 4 + rec++ * PACK_RECORD;
      v.setUint32(at, local);
      v.setUint32(at + 4, r.offset);
      putU64(v, at + 8, r.counter);
      putU64(v, at + 16, r.receivedAt);
    }
    v.setUint32(16 + 16 * d, id);
    v.setUint32(20 + 16 * d, rec - list.length);
    v.setUint32(24 + 16 * d, list.length);
    v.setUint32(28 + 16 * d, crc(out, from, from + list.length * PACK_RECORD));
  });
  v.setUint32(dirEnd, crc(out, 0, dirEnd));
  return out;
}

/** Positional reads of one pack file; throws when the file is missing or too short. */
export type ReadAt = (position: number, length: number) => Uint8Array;

/**
 * The entries of `packId` in a sealed segment, from its pack file: undefined when the file is
 * damaged or inconsistent (the caller rebuilds it from the index), [] when the pack has none.
 */
export function readPackEntries(read: ReadAt, packId: number, segmentStart: number, perSegment: number): PackEntry[] | undefined {
  const head = read(0, 16);
  if (head.length < 16) return undefined;
  const hv = viewOf(head);
  const n = hv.getUint32(8);
  const d = hv.getUint32(12);
  if (hv.getUint32(0) !== MAGIC || hv.getUint32(4) !== 1 || n > perSegment || d > n) return undefined;
  const dirEnd = 16 + 16 * d;
  const dir = read(0, dirEnd + 4);
  if (dir.length < dirEnd + 4 || viewOf(dir).getUint32(dirEnd) !== crc(dir, 0, dirEnd)) return undefined;
  const dv = viewOf(dir);
  let lo = 0;
  let hi = d;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (dv.getUint32(16 + 16 * mid) < packId) lo = mid + 1;
    else hi = mid;
  }
  if (lo >= d || dv.getUint32(16 + 16 * lo) !== packId) return [];
  const first = dv.getUint32(20 + 16 * lo);
  const count = dv.getUint32(24 + 16 * lo);
  if (first + count > n) return undefined;
  const recs = read(dirEnd + 4 + first * PACK_RECORD, count * PACK_RECORD);
  if (recs.length !== count * PACK_RECORD || crc(recs) !== dv.getUint32(28 + 16 * lo)) return undefined;
  const rv = viewOf(recs);
  const out: PackEntry[] = [];
  let prev = -1;
  for (let i = 0; i < count; i++) {
    const local = rv.getUint32(i * PACK_RECORD);
    if (local <= prev || local >= perSegment) return undefined;
    prev = local;
    out.push({ index: segmentStart + local, offset: rv.getUint32(i * PACK_RECORD + 4), counter: getU64(rv, i * PACK_RECORD + 8), receivedAt: getU64(rv, i * PACK_RECORD + 16) });
  }
  return out;
}

/** The entries of `packId` among index records `idx` of a segment starting at `segmentStart`. */
export function scanIdxForPack(idx: Uint8Array, packId: number, segmentStart: number): PackEntry[] {
  const out: PackEntry[] = [];
  const v = viewOf(idx);
  for (let at = 0; at + IDX_RECORD <= idx.length; at += IDX_RECORD) {
    if (v.getUint32(at + 20) !== packId) continue;
    const r = readIdxRecord(idx, at);
    out.push({ index: segmentStart + at / IDX_RECORD, offset: r.offset, counter: r.counter, receivedAt: r.receivedAt });
  }
  return out;
}
