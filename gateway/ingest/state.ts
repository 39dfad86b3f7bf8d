/**
 * Crash recovery of the ingest's per-pack counter state (docs/gateway.md "Duplicates, gaps and
 * replays"). The log is the truth; this file only saves re-reading all of it. At intervals the
 * pipeline writes `ingest-state.json` — per pack serial: highest and lowest counter, open gap ranges,
 * counts — together with the log size it covers, atomically (write a temp file 0600, fsync, rename,
 * fsync the directory). On start the snapshot is loaded and every log entry after its size is
 * replayed through DedupeTable.commit, so restart work is bounded by the snapshot interval, not by
 * history, and a kill -9 at any moment loses nothing: entries after the snapshot are still in the
 * log. A snapshot that is missing, unreadable or claims more entries than the log holds (the log lost
 * its tail to disk damage) is ignored and the whole log is replayed instead — slower, never wrong.
 */
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeLeaf, decodeFrame, parseSign1 } from '../../protocol/index.js';
import { identityOf, type DedupeTable, type FrameIdentity, type PackCounts, type PackSnapshot } from './dedupe.js';

export const STATE_FORMAT = 'packchain-ingest-state/v1';
export const STATE_FILE = 'ingest-state.json';
/** Caps on a snapshot read from disk before parsing it. */
const MAX_STATE_BYTES = 64 * 1024 * 1024;

export interface StateFile {
  readonly format: typeof STATE_FORMAT;
  /** Log entries [0, size) are reflected in `packs`. */
  readonly size: number;
  readonly savedAt: number;
  readonly packs: Readonly<Record<string, PackSnapshot>>;
}

export interface RecoveryReport {
  /** Log size the snapshot covered (0 without a usable snapshot). */
  readonly snapshotSize: number;
  /** Entries replayed from the log after the snapshot. */
  readonly replayed: number;
  /** Entries that did not decode during replay (never expected: the pipeline stores only verified frames). */
  readonly undecodable: number;
  /** Why the snapshot was not used, if it was not. */
  readonly ignored: string | undefined;
}

const COUNT_KEYS: readonly (keyof PackCounts)[] = ['frames', 'duplicates', 'replays', 'gapsOpened', 'gapFills', 'late', 'gapsForgotten'];

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Validates a parsed snapshot; returns the reason it is unusable, or undefined. */
function check(doc: unknown): string | undefined {
  if (typeof doc !== 'object' || doc === null) return 'not a JSON object';
  const d = doc as Record<string, unknown>;
  if (d.format !== STATE_FORMAT) return `format is not ${STATE_FORMAT}`;
  if (!isCount(d.size) || !isCount(d.savedAt)) return 'size or savedAt is not a non-negative integer';
  if (typeof d.packs !== 'object' || d.packs === null) return 'packs is not an object';
  for (const [serial, p] of Object.entries(d.packs as Record<string, unknown>)) {
    const s = p as Partial<PackSnapshot> | null;
    const ok =
      s !== null &&
      typeof s === 'object' &&
      isCount(s.highest) &&
      isCount(s.lowest) &&
      s.lowest <= s.highest &&
      Array.isArray(s.gaps) &&
      s.gaps.every((g) => Array.isArray(g) && g.length === 2 && isCount(g[0]) && isCount(g[1]) && g[0] <= g[1]) &&
      typeof s.counts === 'object' &&
      COUNT_KEYS.every((k) => isCount((s.counts as unknown as Record<string, unknown>)[k]));
    if (!ok) return `pack ${JSON.stringify(serial.slice(0, 64))} is malformed`;
  }
  return undefined;
}

/** Reads the snapshot in `dir`; returns it, or the reason it cannot be used. Never throws. */
export async function readState(dir: string): Promise<StateFile | string> {
  let text: string;
  try {
    const fh = await open(join(dir, STATE_FILE), 'r');
    try {
      const { size } = await fh.stat();
      if (size > MAX_STATE_BYTES) return `${size} bytes exceeds the ${MAX_STATE_BYTES}-byte cap`;
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no snapshot' : `unreadable: ${(e as Error).message}`;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  return check(doc) ?? (doc as StateFile);
}

/** Writes the snapshot atomically (temp 0600 + fsync + rename + directory fsync). Throws the fs error. */
export async function writeState(dir: string, table: DedupeTable, size: number, now: number): Promise<void> {
  const packs: Record<string, PackSnapshot> = {};
  for (const serial of table.serials()) {
    const s = table.snapshot(serial);
    if (s !== undefined) packs[serial] = s;
  }
  const doc: StateFile = { format: STATE_FORMAT, size, savedAt: now, packs };
  const tmp = join(dir, `${STATE_FILE}.tmp`);
  await rm(tmp, { force: true });
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(`${JSON.stringify(doc)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, STATE_FILE));
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** The serial, counter and frame identity (its signed payload, dedupe.ts) a stored leaf commits to, or undefined if it does not decode. */
export function leafKey(leafData: Uint8Array): { serial: string; counter: number; identity: FrameIdentity } | undefined {
  try {
    const leaf = decodeLeaf(leafData);
    const { payload } = parseSign1(leaf.frame);
    const frame = decodeFrame(payload);
    return { serial: frame.serial, counter: frame.counter, identity: identityOf(payload) };
  } catch {
    return undefined;
  }
}

/**
 * Restores `table` from the snapshot in `dir` and replays log entries [snapshot size, log size)
 * through `commit`. `leaves(from, to)` yields the leaf data of those entries in order. Rejects only
 * if reading the log fails.
 */
export async function recover(
  dir: string,
  table: DedupeTable,
  logSize: number,
  leaves: (from: number, to: number) => AsyncIterable<Uint8Array>,
): Promise<RecoveryReport> {
  const state = await readState(dir);
  let from = 0;
  let ignored: string | undefined;
  if (typeof state === 'string') ignored = state;
  else if (state.size > logSize) ignored = `snapshot covers ${state.size} entries but the log holds ${logSize}`;
  else {
    for (const [serial, p] of Object.entries(state.packs)) table.restore(serial, p);
    from = state.size;
  }
  let replayed = 0;
  let undecodable = 0;
  if (from < logSize) {
    for await (const data of leaves(from, logSize)) {
      replayed++;
      const k = leafKey(data);
      if (k === undefined) undecodable++;
      else table.commit(k.serial, k.counter, k.identity);
    }
  }
  return { snapshotSize: from, replayed, undecodable, ignored: ignored === 'no snapshot' && logSize === 0 ? undefined : ignored };
}
