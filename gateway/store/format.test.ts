/**
 * The store's record formats: round trips, detection of every single-byte change and of every
 * truncation (a damaged record is reported, never misread), torn tails of the append-only side
 * files, and canonical file names.
 */
import { describe, expect, it } from 'vitest';
import { crc32 } from '../../protocol/index.js';
import {
  checkpointRecord,
  crc,
  parseCheckpointRecords,
  parseLeafRecord,
  parsePruned,
  parseRegistry,
  parseSegmentFileName,
  prunedRecord,
  readIdxRecord,
  registryRecord,
  segmentFileName,
  writeIdxRecord,
  writeLeafRecord,
  LEAF_OVERHEAD,
} from './format.js';
import { bytesOf } from './testkit.js';

const meta = { index: 2 ** 40 + 5, receivedAt: 1_767_225_600_123, counter: 2 ** 53 - 1, packId: 7, batchBack: 3 };

describe('store record formats', () => {
  it('computes the same CRC-32 as protocol', () => {
    for (const n of [0, 1, 37, 1000]) {
      const b = bytesOf(`crc ${n}`, n);
      expect(crc(b)).toBe(crc32(b));
      expect(crc(b, 3, Math.max(3, n - 2))).toBe(crc32(b, 3, Math.max(3, n - 2)));
    }
  });

  it('round-trips a leaf record and an index record', () => {
    const data = bytesOf('leaf', 300);
    const buf = new Uint8Array(10 + LEAF_OVERHEAD + 300);
    expect(writeLeafRecord(buf, 10, meta, data)).toBe(LEAF_OVERHEAD + 300);
    const r = parseLeafRecord(buf, 10, meta.index);
    expect(r).toEqual({ ok: true, record: { ...meta, data, length: LEAF_OVERHEAD + 300 } });
    const idx = new Uint8Array(24);
    writeIdxRecord(idx, 0, { receivedAt: meta.receivedAt, counter: meta.counter, offset: 4_000_000_000, packId: 2 ** 32 - 1 });
    expect(readIdxRecord(idx, 0)).toEqual({ receivedAt: meta.receivedAt, counter: meta.counter, offset: 4_000_000_000, packId: 2 ** 32 - 1 });
  });

  it('reports every single-byte change and every truncation of a leaf record', () => {
    const data = bytesOf('leaf', 60);
    const buf = new Uint8Array(LEAF_OVERHEAD + 60);
    writeLeafRecord(buf, 0, meta, data);
    for (let i = 0; i < buf.length; i++) {
      const bad = buf.slice();
      bad[i] = (bad[i] ?? 0) ^ 0x01;
      expect([i, parseLeafRecord(bad, 0, meta.index).ok]).toEqual([i, false]);
    }
    for (let n = 0; n < buf.length; n++) expect([n, parseLeafRecord(buf.subarray(0, n), 0, meta.index).ok]).toEqual([n, false]);
    expect(parseLeafRecord(buf, 0, meta.index + 1)).toMatchObject({ ok: false, why: expect.stringMatching(/holds entry/) as string });
  });

  it('stops the registry, pruned hashes and checkpoint history at a torn or garbled tail', () => {
    const reg = Buffer.concat([registryRecord(0, 'PACK-0001'), registryRecord(1, 'PACK-0002')]);
    expect(parseRegistry(reg)).toEqual({ serials: ['PACK-0001', 'PACK-0002'], validBytes: reg.length });
    for (let n = 21; n < reg.length; n++) expect(parseRegistry(reg.subarray(0, n))).toEqual({ serials: ['PACK-0001'], validBytes: 21 });
    expect(parseRegistry(Buffer.concat([registryRecord(1, 'PACK-0001')])).serials).toEqual([]); // ids must be dense

    const pr = Buffer.concat([prunedRecord(14, bytesOf('h', 32)), prunedRecord(30, bytesOf('g', 32))]);
    expect([...parsePruned(pr).hashes.keys()]).toEqual([14, 30]);
    const garbled = Buffer.from(pr);
    garbled[50] = (garbled[50] ?? 0) ^ 1;
    expect(parsePruned(garbled)).toMatchObject({ validBytes: 44 });

    const cps = Buffer.concat([checkpointRecord(4, 'note a\n'), checkpointRecord(9, 'note b\n')]);
    expect(parseCheckpointRecords(cps).records).toEqual([{ size: 4, note: 'note a\n' }, { size: 9, note: 'note b\n' }]);
    expect(parseCheckpointRecords(cps.subarray(0, cps.length - 1)).records).toHaveLength(1);
  });

  it('accepts only canonical segment file names', () => {
    expect(segmentFileName(12, 'leaves')).toBe('00000012.leaves');
    expect(segmentFileName(123_456_789, 'idx')).toBe('123456789.idx');
    expect(parseSegmentFileName('00000012.leaves')).toEqual({ k: 12, kind: 'leaves' });
    expect(parseSegmentFileName('123456789.idx')).toEqual({ k: 123_456_789, kind: 'idx' });
    for (const bad of ['12.leaves', '00000012.leaves.tmp', '000000012.leaves', '0000001a.idx', 'state.json', '00000012.LEAVES']) {
      expect([bad, parseSegmentFileName(bad)]).toEqual([bad, undefined]);
    }
  });
});
