/**
 * Power cuts: a child process appends (group commits in flight, checkpoints, pruning under a
 * quota) and is killed with SIGKILL at a random moment, many times over one directory. After
 * every kill the store opens (never a refusal: the lock is taken over, a torn tail is cut), keeps
 * every acknowledged entry byte for byte, matches its latest checkpoint, stays consistent with
 * every earlier checkpoint, and accepts appends again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { leafHash, verifyConsistency } from '../../protocol/index.js';
import { LogStore } from './log-store.js';
import { TEST_ORIGIN, sampleData, sampleInput, tempDir } from './testkit.js';

const here = dirname(fileURLToPath(import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function runUntilKilled(dir: string, seqBase: number, seed: number, killAfterMs: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'crash-child.ts'), dir, String(seqBase), String(seed)], {
    cwd: join(here, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => { resolve(); }));
  await new Promise<void>((resolve) => {
    child.stdout.on('data', () => {
      if (out.includes('READY')) resolve();
    });
    child.on('close', () => { resolve(); });
  });
  await new Promise((r) => setTimeout(r, killAfterMs));
  child.kill('SIGKILL');
  await exited;
  if (!out.includes('READY') || child.signalCode !== 'SIGKILL') throw new Error(`child did not run until killed: ${err}`);
  return out;
}

describe('LogStore under power cuts', () => {
  it('after SIGKILL at random moments: opens, keeps every acknowledged entry, stays consistent', { timeout: 180_000 }, async () => {
    const dir = await tempDir('crash');
    dirs.push(dir);
    let x = 12345;
    const rnd = (): number => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const acked = new Map<number, number>(); // entry index → seq of its content
    const signed: { size: number; root: Uint8Array }[] = [];
    let appended = 0;
    let checkpoints = 0;
    for (let round = 0; round < 12; round++) {
      const out = await runUntilKilled(dir, (round + 1) * 1_000_000, round + 1, 30 + Math.floor(rnd() * 400));
      let signedSize = 0;
      for (const line of out.split('\n')) {
        const [tag, a, b, c] = line.split(' ');
        if (tag === 'A') {
          for (let i = 0; i < Number(c); i++) acked.set(Number(a) + i, Number(b) + i);
          appended += Number(c);
        } else if (tag === 'C') {
          signedSize = Math.max(signedSize, Number(a));
          checkpoints++;
        }
      }

      const store = await LogStore.open({ dir, origin: TEST_ORIGIN });
      try {
        const maxAcked = Math.max(-1, ...acked.keys());
        expect(store.size).toBeGreaterThan(maxAcked);
        for (const [index, seq] of acked) {
          if (index < store.firstIndex) continue; // pruned after the ledger "acknowledged" it
          const e = store.get(index);
          expect([index, e.data]).toEqual([index, sampleData(seq)]);
          expect(store.leafHash(index)).toEqual(leafHash(sampleData(seq)));
        }
        for await (const e of store.entries()) expect(e.leafHash).toEqual(store.leafHash(e.index)); // every entry readable
        const latest = store.latestCheckpoint();
        expect(latest?.size ?? 0).toBeGreaterThanOrEqual(signedSize);
        if (latest) {
          expect(store.root(latest.size)).toEqual(latest.rootHash);
          for (const old of signed) {
            if (old.size < store.firstIndex) continue;
            verifyConsistency(old.size, latest.size, store.consistencyProof(old.size, latest.size), old.root, latest.rootHash);
          }
          signed.push({ size: latest.size, root: latest.rootHash });
        }
        const seq = (round + 1) * 1_000_000 + 999_999; // after this round's child, before the next one's
        const r = await store.append([sampleInput(seq)]); // writable again
        acked.set(r.entries[0]!.index, seq);
      } finally {
        await store.close();
      }
    }
    expect(appended).toBeGreaterThan(300); // the children really wrote
    expect(checkpoints).toBeGreaterThan(5);
  });
});
