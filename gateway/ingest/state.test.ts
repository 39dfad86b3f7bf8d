import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DedupeTable, frameIdentity } from './dedupe.js';
import { MemoryLog, TestFactory, type TestPack } from './ingest-testkit.js';
import { readState, recover, STATE_FILE, writeState } from './state.js';

let pack: TestPack;
const dirs: string[] = [];

beforeAll(async () => {
  pack = await (await TestFactory.create()).pack('PACK-0001');
});

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'ingest-state-'));
  dirs.push(d);
  return d;
}

const table = (log: MemoryLog): DedupeTable => new DedupeTable({ lookup: (s, c) => log.frameIdentity(s, c) });

/** Stores `counters` in `log` and commits them to `t`, as the pipeline would. */
async function store(log: MemoryLog, t: DedupeTable, counters: number[]): Promise<void> {
  for (const c of counters) {
    const frame = pack.frame(c);
    await log.append([{ leaf: { receivedAt: 1, source: 'memory:x', certSha256: pack.certSha256, frame }, serial: pack.serial, counter: c }]);
    t.commit(pack.serial, c, frameIdentity(frame));
  }
}

describe('ingest state snapshot', () => {
  it('writes the snapshot atomically with mode 0600 and reads it back', async () => {
    const dir = tmp();
    const log = new MemoryLog();
    const t = table(log);
    await store(log, t, [0, 1, 4]);
    await writeState(dir, t, log.size, 123);
    expect(statSync(join(dir, STATE_FILE)).mode & 0o777).toBe(0o600);
    const s = await readState(dir);
    expect(typeof s === 'string' ? s : s.packs[pack.serial]).toMatchObject({ highest: 4, lowest: 0, gaps: [[2, 3]] });
  });

  it('when restarted › restores the snapshot and replays only the entries after it', async () => {
    const dir = tmp();
    const log = new MemoryLog();
    const t = table(log);
    await store(log, t, [0, 1, 4]);
    await writeState(dir, t, log.size, 1);
    await store(log, t, [9, 2]); // after the snapshot: a kill -9 would lose only the snapshot's view of these
    const fresh = table(log);
    const report = await recover(dir, fresh, log.size, (a, b) => log.leaves(a, b));
    expect(report).toEqual({ snapshotSize: 3, replayed: 2, undecodable: 0, ignored: undefined });
    expect(fresh.snapshot(pack.serial)).toEqual(t.snapshot(pack.serial));
  });

  it('when the snapshot is garbled, from another format or ahead of the log › ignores it and replays the whole log', async () => {
    const log = new MemoryLog();
    const t = table(log);
    await store(log, t, [0, 1, 4, 7]);
    for (const damage of ['{"format":"other"}', '{not json', '', JSON.stringify({ format: 'packchain-ingest-state/v1', size: 99, savedAt: 1, packs: {} })]) {
      const dir = tmp();
      writeFileSync(join(dir, STATE_FILE), damage);
      const fresh = table(log);
      const report = await recover(dir, fresh, log.size, (a, b) => log.leaves(a, b));
      expect(report.snapshotSize).toBe(0);
      expect(report.replayed).toBe(4);
      expect(report.ignored).toBeTypeOf('string');
      expect(fresh.snapshot(pack.serial)).toEqual(t.snapshot(pack.serial));
    }
  });

  it('when a pack entry in the snapshot is malformed › names it and ignores the snapshot', async () => {
    const dir = tmp();
    writeFileSync(join(dir, STATE_FILE), JSON.stringify({ format: 'packchain-ingest-state/v1', size: 0, savedAt: 1, packs: { P: { highest: 1, lowest: 2, gaps: [], counts: {} } } }));
    expect(await readState(dir)).toMatch(/pack "P" is malformed/);
  });

  it('when there is no snapshot and no log › reports nothing ignored', async () => {
    const log = new MemoryLog();
    const report = await recover(tmp(), table(log), 0, (a, b) => log.leaves(a, b));
    expect(report).toEqual({ snapshotSize: 0, replayed: 0, undecodable: 0, ignored: undefined });
  });

  it('leaves no temp file behind', async () => {
    const dir = tmp();
    const log = new MemoryLog();
    await writeState(dir, table(log), 0, 1);
    await writeState(dir, table(log), 0, 2);
    expect(JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8'))).toMatchObject({ savedAt: 2 });
    expect(() => statSync(join(dir, `${STATE_FILE}.tmp`))).toThrow();
  });
});
