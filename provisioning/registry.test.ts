/**
 * The registry on real files through nedb-promises: lookups by serial, key and certificate, writes
 * on disk (fsync'd) before they resolve, a torn last line dropped on reopen while damage elsewhere
 * stops it, concurrent writers in one process, ordering of list/history, the PENDING attempts left
 * by a crash, the writer lock against a second process, and read-only opening that never rewrites
 * the file under a running writer.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './ca-testkit.js';
import { isProvisioningError } from './errors.js';
import { Registry, scanDataFile, type AttemptRecord } from './registry.js';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
const open: Registry[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) await r.close();
});

function dbPath(): string {
  const t = tempDir('registry');
  cleanups.push(t.remove);
  return join(t.dir, 'registry.db');
}

async function openReg(path: string, opts?: Parameters<typeof Registry.open>[1]): Promise<Registry> {
  const r = await Registry.open(path, opts);
  open.push(r);
  return r;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isProvisioningError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

let clock = Date.parse('2026-03-01T08:00:00Z');
const now = (): Date => new Date((clock += 1000));

const who = (serial: string, port = '/dev/ttyUSB0') => ({ serial, model: 'BMU-48V', port, station: 'line-1', operator: 'ana' });

async function passed(reg: Registry, serial: string, n: number): Promise<AttemptRecord> {
  const a = await reg.begin(who(serial));
  return reg.update(a.id, {
    result: 'PASS',
    finishedAt: now().toISOString(),
    keyFingerprint: `AB${String(n).padStart(62, '0')}`,
    certSerialHex: `00${n.toString(16).toUpperCase()}F`,
    certSha256: `CD${String(n).padStart(62, '0')}`,
    certStatus: 'active',
  });
}

describe('Registry', () => {
  describe('begin and update', () => {
    it('records a PENDING attempt with no certificate, then the fields an update sets', async () => {
      const reg = await openReg(dbPath(), { now });
      const a = await reg.begin(who('PK-1'));
      expect(a).toMatchObject({ serial: 'PK-1', result: 'PENDING', certStatus: 'none', station: 'line-1', operator: 'ana' });
      expect(a.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Date.parse(a.startedAt)).toBeGreaterThan(0);
      const b = await reg.update(a.id, { result: 'FAIL', code: 'NO_ANSWER', step: 'identify', reason: 'no hello within 3000 ms' });
      expect(b).toMatchObject({ id: a.id, result: 'FAIL', code: 'NO_ANSWER', step: 'identify', certStatus: 'none' });
    });

    it('normalises hex fields and finds the active certificate by serial, key and certificate hash', async () => {
      const reg = await openReg(dbPath(), { now });
      const r = await passed(reg, 'PK-2', 7);
      expect(r.keyFingerprint).toBe(`ab${'0'.repeat(61)}7`);
      expect(r.certSerialHex).toBe('7F');
      expect((await reg.activeBySerial('PK-2'))?.id).toBe(r.id);
      expect((await reg.activeByKey(`AB${'0'.repeat(61)}7`))?.id).toBe(r.id);
      expect((await reg.byCertSha256(`cd${'0'.repeat(61)}7`))?.id).toBe(r.id);
      expect(await reg.activeBySerial('PK-3')).toBeUndefined();
      await reg.update(r.id, { certStatus: 'revoked', revokedAt: now().toISOString(), revocationReason: 'superseded' });
      expect(await reg.activeBySerial('PK-2')).toBeUndefined();
      expect(await reg.activeByKey(r.keyFingerprint!)).toBeUndefined();
      expect((await reg.byCertSha256(r.certSha256!))?.certStatus).toBe('revoked');
    });

    it('when the id is unknown › throws NOT_FOUND', async () => {
      const reg = await openReg(dbPath());
      expect(await codeOf(reg.update('no-such-id', { result: 'PASS' }))).toBe('NOT_FOUND');
    });
  });

  describe('durability', () => {
    it('has each write in the file (mode 0600) when it resolves, and keeps it across a reopen', async () => {
      const path = dbPath();
      const reg = await openReg(path, { now });
      const r = await passed(reg, 'PK-10', 10);
      const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { _id?: string; result?: string });
      expect(lines.filter((l) => l._id === r.id).at(-1)?.result).toBe('PASS');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      await reg.close();
      const again = await openReg(path);
      expect((await again.history('PK-10')).map((x) => x.result)).toEqual(['PASS']);
    });

    it('creates the file and a missing station directory (0700) on first open', async () => {
      const path = join(dbPath(), '..', 'new-station', 'registry.db');
      const reg = await openReg(path);
      await reg.begin(who('PK-11'));
      expect(statSync(join(path, '..')).mode & 0o777).toBe(0o700);
      expect((await reg.list()).length).toBe(1);
    });

    it('when the last line was torn by a power cut › drops it, keeps the rest and rewrites the file clean', async () => {
      const path = dbPath();
      const reg = await openReg(path, { now });
      for (let i = 0; i < 5; i++) await passed(reg, `PK-T${i}`, i);
      await reg.close();
      appendFileSync(path, '{"_id":"f00","serial":"PK-T9","resu');
      const again = await openReg(path);
      expect(again.recoveredTornLine).toBe(true);
      expect((await again.list()).map((x) => x.serial).sort()).toEqual(['PK-T0', 'PK-T1', 'PK-T2', 'PK-T3', 'PK-T4']);
      expect(scanDataFile(readFileSync(path, 'utf8'), path).tornLine).toBe(false);
      // and the station goes on recording after it
      await passed(again, 'PK-T5', 5);
      expect((await again.list()).length).toBe(6);
    });

    it('when a line before the last is damaged › throws REGISTRY and leaves the file as it was', async () => {
      const path = dbPath();
      const reg = await openReg(path, { now });
      for (let i = 0; i < 3; i++) await reg.begin(who(`PK-D${i}`));
      await reg.close();
      const lines = readFileSync(path, 'utf8').split('\n');
      lines[1] = 'x'.repeat(20);
      writeFileSync(path, lines.join('\n'));
      const before = readFileSync(path, 'utf8');
      expect(await codeOf(Registry.open(path))).toBe('REGISTRY');
      expect(readFileSync(path, 'utf8')).toBe(before);
    });
  });

  describe('concurrent writes', () => {
    it('keeps every one of 40 interleaved begin/update pairs, in begin order', async () => {
      const path = dbPath();
      const reg = await openReg(path, { now });
      const serials = Array.from({ length: 40 }, (_, i) => `PK-C${String(i).padStart(2, '0')}`);
      await Promise.all(serials.map((s, i) => passed(reg, s, 100 + i)));
      await reg.close();
      const again = await openReg(path);
      const all = await again.list();
      expect(all.length).toBe(40);
      expect(all.every((r) => r.result === 'PASS' && r.certStatus === 'active')).toBe(true);
      expect(new Set(all.map((r) => r.serial)).size).toBe(40);
    });
  });

  describe('queries', () => {
    it('lists newest first with filters and a limit; history is oldest first; pending() finds crash leftovers', async () => {
      const reg = await openReg(dbPath(), { now });
      const first = await reg.begin(who('PK-Q1'));
      await reg.update(first.id, { result: 'FAIL', code: 'DEVICE_LOST' });
      const mark = now();
      const second = await passed(reg, 'PK-Q1', 1);
      const other = await reg.begin(who('PK-Q2'));
      expect((await reg.list()).map((r) => r.id)).toEqual([other.id, second.id, first.id]);
      expect((await reg.list({ limit: 2 })).map((r) => r.id)).toEqual([other.id, second.id]);
      expect((await reg.list({ result: 'FAIL' })).map((r) => r.id)).toEqual([first.id]);
      expect((await reg.list({ serial: 'PK-Q1', since: mark })).map((r) => r.id)).toEqual([second.id]);
      expect((await reg.history('PK-Q1')).map((r) => r.id)).toEqual([first.id, second.id]);
      expect((await reg.pending()).map((r) => r.id)).toEqual([other.id]);
    });

    it('gives the revoked certificates for the CRL, "unspecified" as no reason', async () => {
      const reg = await openReg(dbPath(), { now });
      const a = await passed(reg, 'PK-R1', 1);
      const b = await passed(reg, 'PK-R2', 2);
      await passed(reg, 'PK-R3', 3);
      await reg.update(a.id, { certStatus: 'revoked', revokedAt: '2026-03-02T00:00:00.000Z', revocationReason: 'keyCompromise' });
      await reg.update(b.id, { certStatus: 'revoked', revokedAt: '2026-03-03T00:00:00.000Z', revocationReason: 'unspecified' });
      expect(await reg.revokedCerts()).toEqual([
        { serialHex: '1F', date: new Date('2026-03-02T00:00:00.000Z'), reason: 'keyCompromise' },
        { serialHex: '2F', date: new Date('2026-03-03T00:00:00.000Z') },
      ]);
    });
  });

  describe('sharing the file', () => {
    it('when another live process holds the writer lock › throws REGISTRY naming it', async () => {
      const path = dbPath();
      writeFileSync(`${path}.lock`, `${process.ppid}\n`); // the vitest parent: alive
      const err = await Registry.open(path).catch((e: unknown) => e);
      expect(isProvisioningError(err) && err.code).toBe('REGISTRY');
      expect((err as Error).message).toContain(`in use by process ${process.ppid}`);
    });

    it('when the lock holder is dead › takes the lock over', async () => {
      const path = dbPath();
      const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
      writeFileSync(`${path}.lock`, `${gone}\n`);
      const reg = await openReg(path);
      expect(readFileSync(`${path}.lock`, 'utf8').trim()).toBe(String(process.pid));
      await reg.close();
      expect(() => statSync(`${path}.lock`)).toThrow();
    });

    it('opens read-only beside a writer without rewriting the file, and refuses writes there', async () => {
      const path = dbPath();
      const writer = await openReg(path, { now });
      await passed(writer, 'PK-S1', 1);
      await writer.begin(who('PK-S2'));
      const before = readFileSync(path);
      const reader = await openReg(path, { readOnly: true });
      expect((await reader.list()).map((r) => r.serial)).toEqual(['PK-S2', 'PK-S1']);
      expect((await reader.activeBySerial('PK-S1'))?.result).toBe('PASS');
      expect(readFileSync(path).equals(before)).toBe(true);
      expect(await codeOf(reader.begin(who('PK-S3')))).toBe('REGISTRY');
    });
  });
});
