/**
 * The file primitives flash.ts builds crash safety from (docs/hw-sim.md §3 "Crash safety"):
 * a small file is replaced atomically by writing a temporary file (mode 0600), fsyncing it,
 * renaming it over the old name and fsyncing the directory, so after a power cut the name holds
 * either the old bytes or the new ones, never a mixture (POSIX rename(2) atomicity; the directory
 * fsync makes the rename itself durable). With `durable: false` the fsyncs are skipped: the files
 * then survive a crash of the process (the kernel has the bytes) but not of the machine, which is
 * what a fleet of hundreds of simulated devices on one disk may prefer.
 */
import { constants } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SimError } from './errors.js';

/** Mode of every state file: the identity holds a private key (STYLE.md habit 9). */
export const STATE_FILE_MODE = 0o600;

/** fsyncs a directory so a rename or create in it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Replaces `path` with `data` atomically (write temp, fsync, rename, fsync dir), mode 0600. */
export async function writeAtomic(path: string, data: Uint8Array | string, durable: boolean): Promise<void> {
  const tmp = `${path}.tmp`;
  // A stale temp file from a crash may have another mode: 'w' would keep it, so remove it first.
  await rm(tmp, { force: true });
  const h = await open(tmp, 'wx', STATE_FILE_MODE);
  try {
    await h.chmod(STATE_FILE_MODE); // the process umask may have narrowed or widened nothing; be exact
    await h.writeFile(data);
    if (durable) await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, path);
  if (durable) await syncDir(dirname(path));
}

/**
 * Reads a file as a plain Uint8Array (not a Buffer, whose `slice` makes views that would pin the
 * whole file in memory), or undefined when it does not exist. Other errors propagate.
 */
export async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    const b = await readFile(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Parses a JSON state file whose `format` field must equal `format`. Throws FLASH_CORRUPT naming the
 * file but never quoting its contents (the identity file holds the private key).
 */
export function parseStateJson(bytes: Uint8Array, path: string, format: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    // No cause: V8's JSON.parse message quotes the text around the error, which may be key bytes.
    throw new SimError('FLASH_CORRUPT', `hw-sim: ${path}: not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || (v as Record<string, unknown>).format !== format) {
    throw new SimError('FLASH_CORRUPT', `hw-sim: ${path}: expected a JSON object with format "${format}"`);
  }
  return v as Record<string, unknown>;
}
