/**
 * "Tampered local store" (issue 8 item 3): copies of a gateway log directory damaged two ways —
 * a byte flipped inside one entry's leaf record (the record CRC no longer matches), and one byte of
 * the frame inside the leaf changed with the record CRC recomputed (an attacker who knows the file
 * format) — each checked with `verifyLog` (gateway/audit/verify-log.ts, what `gateway verify` runs),
 * which must report the tampered entry's index, and no other entry.
 */
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NoteVerifier } from '../../protocol/index.js';
import { CertStore, LogStore, verifyLog } from '../../gateway/index.js';
import { crc, LEAF_HEADER, parseLeafRecord, segmentFileName } from '../../gateway/store/format.js';

export interface TamperResult {
  readonly how: 'record-byte-flipped' | 'frame-byte-changed-crc-fixed';
  readonly index: number;
  /** Codes verifyLog reported for that index. */
  readonly codes: readonly string[];
  /** Everything verifyLog reported (the first 5), for a failure's message. */
  readonly problems: readonly string[];
  /** Entry problems verifyLog attributed to other entries (must be 0). */
  readonly elsewhere: number;
  readonly ok: boolean;
}

/** Offset of entry `index`'s record in the first segment's leaves file. */
function offsetOf(buf: Uint8Array, index: number): number {
  let at = 0;
  for (let i = 0; i < index; i++) {
    const r = parseLeafRecord(buf, at, i);
    if (!r.ok) throw new Error(`hostile: leaf record ${i}: ${r.why}`);
    at += r.record.length;
  }
  return at;
}

/** Tampers copies of the log in `logDir` at entry `index` and runs verifyLog on each. */
export async function tamperChecks(logDir: string, certsDir: string, verifier: NoteVerifier, scratch: string, index: number): Promise<TamperResult[]> {
  const out: TamperResult[] = [];
  for (const how of ['record-byte-flipped', 'frame-byte-changed-crc-fixed'] as const) {
    const dir = join(scratch, how);
    await cp(logDir, dir, { recursive: true });
    try {
      const file = join(dir, segmentFileName(0, 'leaves'));
      const buf = new Uint8Array(await readFile(file));
      const at = offsetOf(buf, index);
      const r = parseLeafRecord(buf, at, index);
      if (!r.ok) throw new Error(`hostile: leaf record ${index}: ${r.why}`);
      const end = at + LEAF_HEADER + r.record.data.length;
      const victim = end - 20; // inside the frame's signature or payload, near the leaf's end
      buf[victim] = (buf[victim] ?? 0) ^ 0x01;
      if (how === 'frame-byte-changed-crc-fixed') new DataView(buf.buffer).setUint32(end, crc(buf, at, end));
      await writeFile(file, buf);
      const store = await LogStore.open({ dir, readOnly: true });
      try {
        const report = await verifyLog({ store, certs: CertStore.open(certsDir, false), verifier });
        const codes = report.problems.filter((p) => p.index === index).map((p) => p.code);
        const problems = report.problems.slice(0, 5).map((p) => `${p.index ?? '-'} ${p.code}: ${p.what}`);
        // Entry problems must name the tampered entry and no other (checkpoint problems follow from it).
        const elsewhere = report.problems.filter((p) => p.checkpoint === undefined && p.index !== index).length;
        out.push({ how, index, codes, problems, elsewhere, ok: !report.ok && codes.length > 0 && elsewhere === 0 });
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return out;
}
