/**
 * The device flash: what survives a restart, what survives a power cut (a child process killed with
 * SIGKILL at random moments while it writes, many times over one directory), torn journal tails,
 * compaction, file modes, and refusal of files that are not ours.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeCose } from './flash-crash-child.js';
import { DeviceFlash, type FlashOptions } from './flash.js';
import { frameRecord } from './journal.js';
import { Random } from './random.js';

const here = dirname(fileURLToPath(import.meta.url));
const FACTORY = { model: 'PC-48V-100Ah', firmware: '1.4.2', label: 'PACK-0001' };
const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'hwsim-flash-'));
  dirs.push(d);
  return d;
}

async function open(dir: string, extra: Partial<FlashOptions> = {}): Promise<DeviceFlash> {
  return DeviceFlash.open({ dir, factory: FACTORY, ...extra });
}

async function addFrames(flash: DeviceFlash, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const counter = await flash.takeCounter();
    await flash.appendFrame({ counter, producedAt: 1000 + counter, cose: fakeCose(counter) });
    out.push(counter);
  }
  return out;
}

const liveCounters = (flash: DeviceFlash): number[] => [...flash.ring.entries()].map((e) => e.counter);

describe('DeviceFlash', () => {
  it('keeps the key, the chain, the exact counter and the unacknowledged frames across a clean restart', async () => {
    const dir = await tempDir();
    const flash = await open(dir);
    expect(flash.identity).toMatchObject({ alg: null, publicKey: null, chain: [], serial: '', model: FACTORY.model });
    await flash.setKey('Ed25519', SECRET);
    await flash.setChain([Uint8Array.of(0x30, 1, 2)], 'PACK-0001');
    await addFrames(flash, 3);
    expect(await flash.free([[1, 1]])).toEqual([1]);
    const before = flash.identity;
    await flash.close();

    const again = await open(dir);
    expect(again.identity).toEqual(before);
    expect(again.secretKey()).toEqual(SECRET);
    expect(again.nextCounter).toBe(3);
    expect(again.boot.cleanShutdown).toBe(true);
    expect(liveCounters(again)).toEqual([0, 2]);
    expect(again.ring.get(2)?.cose).toEqual(fakeCose(2));
    await again.close();
  });

  it('after a crash jumps the counter to the reservation, so no counter is ever reused', async () => {
    const dir = await tempDir();
    const flash = await open(dir, { counterBlock: 16 });
    await addFrames(flash, 20); // reservations at 0 → 16 and 16 → 32
    // No close(): the process "dies" here with the journal handle still open.
    const again = await open(dir, { counterBlock: 16 });
    expect(again.boot.cleanShutdown).toBe(false);
    expect(again.nextCounter).toBe(32);
    expect(liveCounters(again)).toHaveLength(20);
    expect(await again.takeCounter()).toBe(32);
    await again.close();
    await flash.close(); // only now, to release the "crashed" instance's file handle
  });

  it('cuts a torn journal tail on boot and keeps every intact record', async () => {
    const dir = await tempDir();
    const flash = await open(dir);
    await addFrames(flash, 3);
    await flash.close();
    const journal = join(dir, 'ring.journal');
    const size = (await stat(journal)).size;
    const torn = frameRecord(3, 5, fakeCose(3)).subarray(0, 25); // power cut 25 bytes into an append
    await appendFile(journal, torn);

    const again = await open(dir);
    expect(again.boot).toMatchObject({ tornBytes: 25, tornReason: expect.stringContaining('cut short') as string });
    expect((await stat(journal)).size).toBe(size);
    expect(liveCounters(again)).toEqual([0, 1, 2]);
    await addFrames(again, 1);
    await again.close();
    const third = await open(dir);
    expect(liveCounters(third)).toEqual([0, 1, 2, 3]);
    await third.close();
  });

  it('stops at a record whose CRC does not match and drops it and everything after it', async () => {
    const dir = await tempDir();
    const flash = await open(dir);
    await addFrames(flash, 2);
    await flash.close();
    const journal = join(dir, 'ring.journal');
    const bad = frameRecord(2, 5, fakeCose(2));
    bad.set([(bad.at(-1) ?? 0) ^ 0xff], bad.length - 1);
    await appendFile(journal, Buffer.concat([bad, frameRecord(3, 6, fakeCose(3))]));
    const again = await open(dir);
    expect(again.boot.tornReason).toContain('CRC');
    expect(liveCounters(again)).toEqual([0, 1]);
    expect(again.nextCounter).toBeGreaterThanOrEqual(2);
    await again.close();
  });

  it('compacts a journal of mostly freed frames and keeps the live ones', async () => {
    const dir = await tempDir();
    const flash = await open(dir, { compactSlackBytes: 1024 });
    await addFrames(flash, 200);
    await flash.free([[0, 194]]);
    const size = (await stat(join(dir, 'ring.journal'))).size;
    expect(size).toBeLessThan(3 * 1024);
    await flash.close();
    const again = await open(dir);
    expect(liveCounters(again)).toEqual([195, 196, 197, 198, 199]);
    await again.close();
  });

  it('applies a smaller ring capacity when replaying, dropping the oldest frames', async () => {
    const dir = await tempDir();
    const flash = await open(dir);
    await addFrames(flash, 10);
    await flash.close();
    const small = await open(dir, { ringCapacity: 4 });
    expect(small.boot.droppedOnReplay).toBe(6);
    expect(liveCounters(small)).toEqual([6, 7, 8, 9]);
    await small.close();
  });

  it('writes every state file with mode 0600, whatever the mode before', async () => {
    const dir = await tempDir();
    const flash = await open(dir);
    await flash.setKey('ES256', SECRET);
    await addFrames(flash, 1);
    await flash.close();
    await chmod(join(dir, 'identity.json'), 0o644);
    const again = await open(dir, { factory: { ...FACTORY, firmware: '1.5.0' } }); // a firmware update rewrites identity
    await again.close();
    const names = await readdir(dir);
    expect(names.sort()).toEqual(['identity.json', 'ring.journal', 'runtime.json']);
    for (const name of names) expect([name, ((await stat(join(dir, name))).mode & 0o777).toString(8)]).toEqual([name, '600']);
  });

  it('refuses a state file that is not its own, and a blank device without factory settings', async () => {
    const dir = await tempDir();
    await expect(DeviceFlash.open({ dir })).rejects.toMatchObject({ code: 'FLASH_CONFIG' });
    await expect(open(dir, { factory: { ...FACTORY, firmware: 'v1' } })).rejects.toMatchObject({ code: 'FLASH_CONFIG' });
    await (await open(dir)).close();
    await writeFile(join(dir, 'ring.journal'), 'not a journal');
    await expect(open(dir)).rejects.toMatchObject({ code: 'FLASH_CORRUPT' });
    await writeFile(join(dir, 'identity.json'), '{"format":"packchain-bmu-identity/v1","secretKey":"zz"}');
    const err = await open(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FLASH_CORRUPT' });
    expect(String(err)).toMatch(/^SimError: hw-sim: /);
  });
});

/** What the child reported before it was killed. */
interface Report {
  taken: number[];
  written: number[];
  /** Ack ranges announced but not confirmed: these counters may or may not be freed. */
  maybeFreed: [number, number][];
  freed: number[];
  /** Serials the identity may hold now: the last confirmed chain write and any announced after it. */
  serials: string[] | undefined;
}

/**
 * What the child reported. `serials`: the pack serials the flash may hold after the kill — undefined
 * when no chain write started; a write announced (`c`) but not confirmed (`C`) may or may not have
 * landed, so the serial held before it (`startSerial` for the round's first) stays possible.
 */
function parseReport(out: string, startSerial: string): Report {
  const r: Report = { taken: [], written: [], maybeFreed: [], freed: [], serials: undefined };
  for (const line of out.split('\n')) {
    const [tag, a, b, c] = line.split(' ');
    if (tag === 'T') r.taken.push(Number(a));
    else if (tag === 'F') r.written.push(Number(a));
    else if (tag === 'a') r.maybeFreed.push([Number(a), Number(b)]);
    else if (tag === 'A') {
      r.maybeFreed.pop();
      if (c) r.freed.push(...c.split(',').map(Number));
    } else if (tag === 'c' && a) r.serials = [...(r.serials ?? [startSerial]), a];
    else if (tag === 'C' && a) r.serials = [a];
  }
  return r;
}

async function runUntilKilled(dir: string, seed: number, killAfterMs: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'flash-crash-child.ts'), dir, String(seed)], {
    cwd: join(here, '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => { resolve(); }));
  const ready = new Promise<void>((resolve) => {
    const check = (): void => {
      if (out.includes('READY\n')) resolve();
    };
    child.stdout.on('data', check);
    child.on('close', () => { resolve(); });
  });
  await ready;
  await new Promise((r) => setTimeout(r, killAfterMs));
  child.kill('SIGKILL');
  await exited;
  if (!out.includes('READY\n') || child.signalCode !== 'SIGKILL') throw new Error(`child did not run until killed: ${err}`);
  return out;
}

describe('DeviceFlash under power cuts', () => {
  it('after SIGKILL at random moments: state loads, counters never go back, no acked frame returns, no durable frame is lost', { timeout: 120_000 }, async () => {
    const dir = await tempDir();
    const rnd = Random.fromSeed('flash-power-cut');
    const known = new Map<number, 'live' | 'maybe'>(); // frames the parent knows were written and not freed
    let highestTaken = -1;
    let frames = 0;
    let serial = '';
    for (let i = 0; i < 14; i++) {
      const out = await runUntilKilled(dir, i, 20 + Math.floor(rnd.next() * 300));
      const r = parseReport(out, serial);
      frames += r.written.length;
      for (const c of r.written) known.set(c, 'live');
      for (const c of r.freed) known.delete(c);
      for (const [lo, hi] of r.maybeFreed) for (let c = lo; c <= hi; c++) if (known.has(c)) known.set(c, 'maybe');
      highestTaken = Math.max(highestTaken, ...r.taken);

      const flash = await DeviceFlash.open({ dir }); // reload as the next boot would
      const live = new Set(liveCounters(flash));
      expect(flash.nextCounter).toBeGreaterThan(highestTaken);
      for (const c of r.freed) expect(live.has(c)).toBe(false);
      for (const [c, state] of known) if (state === 'live') expect([c, live.has(c)]).toEqual([c, true]);
      for (const c of live) expect(flash.ring.get(c)?.cose).toEqual(fakeCose(c));
      expect(r.serials ?? [serial]).toContain(flash.identity.serial);
      serial = flash.identity.serial;
      // The reload decides the uncertain ones; what it holds is what the next round starts from.
      for (const c of [...known.keys()]) if (!live.has(c)) known.delete(c);
      for (const c of live) known.set(c, 'live');
      highestTaken = Math.max(highestTaken, flash.nextCounter - 1);
      await flash.close();
    }
    expect(frames).toBeGreaterThan(100); // the children really wrote
    const files = await readFile(join(dir, 'runtime.json'), 'utf8');
    expect(JSON.parse(files)).toMatchObject({ format: 'packchain-bmu-runtime/v1', clean: true });
  });
});
