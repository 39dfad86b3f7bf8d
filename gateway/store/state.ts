/**
 * The two small JSON files of the log store. `log.json` is written once when the log is created and
 * fixes what every later open must agree on: the format, the checkpoint origin (all checkpoints of
 * one tree carry one origin) and the segment size (it fixes every file offset). `state.json` is a
 * snapshot, replaced atomically at each checkpoint, segment seal, prune and close: the durable size
 * it describes, the size the upstream ledger has acknowledged (what pruning may delete), and
 * per-pack summaries for the ingest's duplicate and gap checks. Entries after the snapshot's size
 * are replayed from the index on open, so the snapshot may lag but is never ahead of the data.
 */
import { GatewayError } from '../errors.js';
import { LOG_FORMAT, MAX_SEGMENT_BITS, MIN_SEGMENT_BITS } from './format.js';

export const STATE_FORMAT = 'packchain-gateway-log-state/v1';

export interface LogConfig {
  readonly origin: string;
  readonly segmentBits: number;
}

/** One pack's summary; `entries` counts every entry ever appended, pruned ones included. */
export interface PackSummary {
  readonly serial: string;
  readonly packId: number;
  readonly entries: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** Counter of the pack's most recent entry (resends can make it lower than maxCounter). */
  readonly lastCounter: number;
  readonly maxCounter: number;
  readonly lastReceivedAt: number;
}

export interface StateSnapshot {
  readonly size: number;
  readonly syncedSize: number;
  readonly packs: readonly Omit<PackSummary, 'serial'>[];
}

const corrupt = (file: string, why: string): GatewayError => new GatewayError('STORE_CORRUPT', `gateway: store: ${file}: ${why}`);

function parseObject(text: string, file: string, format: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw corrupt(file, 'not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || (v as Record<string, unknown>).format !== format) {
    throw corrupt(file, `expected a JSON object with format "${format}"`);
  }
  return v as Record<string, unknown>;
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

export function encodeConfig(c: LogConfig): string {
  return JSON.stringify({ format: LOG_FORMAT, origin: c.origin, segmentBits: c.segmentBits }, null, 2) + '\n';
}

/** Parses log.json. Throws STORE_CONFIG for another format (not our directory), STORE_CORRUPT for damage. */
export function parseConfig(text: string, file: string): LogConfig {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw corrupt(file, 'not valid JSON');
  }
  const o = v as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || o.format !== LOG_FORMAT) {
    throw new GatewayError('STORE_CONFIG', `gateway: store: ${file}: expected format "${LOG_FORMAT}" (is this directory another program's?)`);
  }
  const { origin, segmentBits } = o;
  if (typeof origin !== 'string' || origin === '' || origin.length > 200) throw corrupt(file, 'origin must be a non-empty string');
  if (!isCount(segmentBits) || segmentBits < MIN_SEGMENT_BITS || segmentBits > MAX_SEGMENT_BITS) {
    throw corrupt(file, `segmentBits must be an integer in ${MIN_SEGMENT_BITS}..${MAX_SEGMENT_BITS}`);
  }
  return { origin, segmentBits };
}

export function encodeState(s: StateSnapshot): string {
  return JSON.stringify({ format: STATE_FORMAT, size: s.size, syncedSize: s.syncedSize, packs: s.packs }) + '\n';
}

/** Parses state.json. Throws STORE_CORRUPT when it is not a snapshot this version wrote. */
export function parseState(text: string, file: string): StateSnapshot {
  const o = parseObject(text, file, STATE_FORMAT);
  const { size, syncedSize, packs } = o;
  if (!isCount(size) || !isCount(syncedSize) || syncedSize > size) throw corrupt(file, 'size and syncedSize must be counts with syncedSize ≤ size');
  if (!Array.isArray(packs)) throw corrupt(file, 'packs must be an array');
  const out: Omit<PackSummary, 'serial'>[] = [];
  for (const p of packs as unknown[]) {
    const r = p as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null) throw corrupt(file, 'a pack summary is not an object');
    const f = [r.packId, r.entries, r.firstIndex, r.lastIndex, r.lastCounter, r.maxCounter, r.lastReceivedAt];
    if (!f.every(isCount)) throw corrupt(file, 'a pack summary has a field that is not a count');
    const [packId, entries, firstIndex, lastIndex, lastCounter, maxCounter, lastReceivedAt] = f;
    out.push({
      packId: packId as number,
      entries: entries as number,
      firstIndex: firstIndex as number,
      lastIndex: lastIndex as number,
      lastCounter: lastCounter as number,
      maxCounter: maxCounter as number,
      lastReceivedAt: lastReceivedAt as number,
    });
  }
  return { size, syncedSize, packs: out };
}
