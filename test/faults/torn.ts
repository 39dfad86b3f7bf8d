/**
 * The power-cut simulation of the fault harness. A power cut loses only what was not yet fsynced:
 * the commit being written at that instant, never an acknowledged one. After a kill -9 of the
 * gateway (the process is gone, everything it fsynced is on disk) this appends to the active
 * segment's leaf file the first 1…n−1 bytes of a plausible next record — a header naming the next
 * entry, part of its data, no CRC — and, half the time, a partial index record too: the on-disk
 * state a cut in the middle of a commit leaves. Fsynced bytes are never touched. Recovery on the
 * next start must cut exactly this tail (docs/gateway.md "Recovery").
 */
import { appendFileSync, closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Rng } from '../hostile/prng.js';

/** Leaf record: u32 dataLen, u64 index, u64 receivedAt, u64 counter, u32 packId, u16 batchBack, u16 0, data, u32 crc. */
const LEAF_HEADER = 36;
const LEAF_OVERHEAD = LEAF_HEADER + 4;
const IDX_RECORD = 24;

export interface TornTail {
  readonly file: string;
  /** The entry the torn record claims to be. */
  readonly index: number;
  readonly leafBytes: number;
  readonly idxBytes: number;
}

/** The index of the entry after the last complete record of `path` (segment k, 2^bits entries). */
function nextIndex(path: string, k: number, bits: number): number {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(LEAF_HEADER);
    let pos = 0;
    let next = k * 2 ** bits;
    while (pos + LEAF_OVERHEAD <= size) {
      if (readSync(fd, head, 0, LEAF_HEADER, pos) < LEAF_HEADER) break;
      const len = head.readUInt32BE(0);
      if (len < 1 || len > 1024 || pos + LEAF_OVERHEAD + len > size) break;
      next = head.readUInt32BE(4) * 0x1_0000_0000 + head.readUInt32BE(8) + 1;
      pos += LEAF_OVERHEAD + len;
    }
    return next;
  } finally {
    closeSync(fd);
  }
}

/** Appends a torn record to the last segment of the (stopped) gateway's log in `logDir`. */
export function appendTornTail(logDir: string, rng: Rng): TornTail {
  const leaves = readdirSync(logDir).filter((n) => /^\d{8,16}\.leaves$/.test(n)).sort().at(-1);
  if (leaves === undefined) throw new Error(`faults: no leaf segment in ${logDir}`);
  const k = Number(leaves.slice(0, leaves.indexOf('.')));
  const config = JSON.parse(readFileSync(join(logDir, 'log.json'), 'utf8')) as { segmentBits?: number };
  const path = join(logDir, leaves);
  const index = nextIndex(path, k, config.segmentBits ?? 16);
  const dataLen = rng.range(150, 450);
  const record = Buffer.alloc(LEAF_OVERHEAD + dataLen);
  record.writeUInt32BE(dataLen, 0);
  record.writeUInt32BE(Math.floor(index / 0x1_0000_0000), 4);
  record.writeUInt32BE(index >>> 0, 8);
  record.writeUInt32BE(Math.floor(Date.now() / 0x1_0000_0000), 12);
  record.writeUInt32BE(Date.now() >>> 0, 16);
  record.writeUInt32BE(rng.int(100_000), 24);
  record.set(rng.bytes(dataLen + 4), LEAF_HEADER);
  const leafBytes = rng.range(1, record.length - 1);
  appendFileSync(path, record.subarray(0, leafBytes));
  let idxBytes = 0;
  if (rng.chance(0.5)) {
    idxBytes = rng.range(1, IDX_RECORD - 1);
    appendFileSync(join(logDir, leaves.replace('.leaves', '.idx')), rng.bytes(idxBytes));
  }
  return { file: leaves, index, leafBytes, idxBytes };
}
