/**
 * Test helpers for the log store's tests, its crash child and the benchmark: deterministic leaves
 * (entry content is a pure function of a sequence number, so a checker can regenerate what any
 * entry must hold), temporary directories, a "power cut" copy of a live store's directory, and the
 * gateway checkpoint key. Not exported from gateway/index.ts.
 */
import { cp, mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { createNoteSigner, encodeLeaf, gatewayOrigin, verifierOf, type Ed25519NoteSigner, type NoteVerifier } from '../../protocol/index.js';
import type { LeafInput } from './appender.js';

export const TEST_GATEWAY = 'line-3';
export const TEST_ORIGIN = gatewayOrigin(TEST_GATEWAY);
export const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/** Pseudo-random bytes from a label (SHA-256 in counter mode): content checkers can regenerate them. */
export function bytesOf(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0, block = 0; i < n; block++) {
    const h = createHash('sha256').update(`${label}/${block}`).digest();
    out.set(h.subarray(0, Math.min(32, n - i)), i);
    i += 32;
  }
  return out;
}

/**
 * The append input number `seq`: pack `PACK-<seq mod packs>`, counter seq / packs, a frame of
 * 40..339 bytes, receivedAt T0 + seq·10 ms (monotonic in seq).
 */
export function sampleInput(seq: number, packs = 5, receivedAt = T0 + seq * 10): LeafInput {
  const frameLen = 40 + ((seq * 7919) % 300);
  return {
    serial: `PACK-${String(seq % packs).padStart(4, '0')}`,
    counter: Math.floor(seq / packs),
    leaf: { receivedAt, source: seq % 2 === 0 ? 'serial:/dev/ttyUSB0' : 'ble:AA:BB:CC:DD:EE:0F', certSha256: bytesOf(`cert ${seq % packs}`, 32), frame: bytesOf(`frame ${seq}`, frameLen) },
  };
}

/** The leaf data `sampleInput(seq)` stores (when its receivedAt was not clamped). */
export function sampleData(seq: number, packs = 5): Uint8Array {
  return encodeLeaf(sampleInput(seq, packs).leaf);
}

export async function tempDir(label = 'store'): Promise<string> {
  return mkdtemp(join(tmpdir(), `packchain-${label}-`));
}

/**
 * What the disk would hold after a power cut of a store that is still open in this process: a
 * copy of its directory without the lock (whose owner — this process — is alive). Only durable
 * bytes matter here because every resolved append was fsynced before it resolved.
 */
export async function crashCopy(dir: string): Promise<string> {
  const copy = await tempDir('crash');
  // The store's background writes go on while we copy: a temp file renamed or a pruned file
  // deleted between the listing and its copy is simply not on the crashed disk, as with a power cut.
  for (const name of await readdir(dir)) {
    if (name === 'LOCK') continue;
    try {
      await cp(join(dir, name), join(copy, name), { recursive: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return copy;
}

/** The test gateway's checkpoint signer and verifier (seed from a label, never a real key). */
export function testSigner(): { signer: Ed25519NoteSigner; verifier: NoteVerifier } {
  const signer = createNoteSigner(TEST_ORIGIN, bytesOf('packchain test gateway key', 32));
  return { signer, verifier: verifierOf(signer) };
}
