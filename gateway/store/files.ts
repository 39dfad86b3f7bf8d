/**
 * File primitives of the log store: atomic replacement of small files (write temp, fsync, rename,
 * fsync the directory — POSIX rename atomicity makes the name hold the old bytes or the new, never a
 * mix; the directory fsync makes the rename survive a power cut), positional reads through a small
 * LRU of read-only descriptors (readers never hold a descriptor per segment, so memory and open
 * files stay bounded however long the log), and the wrapping of file-system failures into
 * GatewayError STORE_IO. Reads are synchronous preads: a proof needs ~20 reads of 32 bytes, cheaper
 * inline than through the thread pool.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { GatewayError } from '../errors.js';
import { FILE_MODE } from './format.js';

/** Wraps a file-system failure as STORE_IO naming what was being done; GatewayErrors pass through. */
export function ioError(what: string, e: unknown): GatewayError {
  if (e instanceof GatewayError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return new GatewayError('STORE_IO', `gateway: store: ${what} failed${code ? ` (${code})` : ''}`, { cause: e });
}

/** fsyncs a directory so a create, rename or unlink in it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Replaces `path` with `data` atomically and durably (temp file mode 0600, fsync, rename, fsync
 * dir). Returns the change in the file's size, for the quota's usage count.
 */
export async function writeAtomic(path: string, data: Uint8Array | string): Promise<number> {
  let before = 0;
  try {
    before = (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = `${path}.tmp`;
  await rm(tmp, { force: true }); // a stale temp from a crash may have another mode
  const h = await open(tmp, 'wx', FILE_MODE);
  try {
    await h.chmod(FILE_MODE);
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
  return (typeof data === 'string' ? Buffer.byteLength(data) : data.length) - before;
}

/** A file's bytes as a plain Uint8Array, or undefined when it does not exist. Other errors propagate. */
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
 * Read-only descriptors for positional reads, least recently used closed first. A path that does
 * not exist yields ENOENT from `fd()`; `forget()` closes a descriptor before its file is deleted or
 * truncated by pruning.
 */
export class FdCache {
  readonly #fds = new Map<string, number>();
  #closed = false;

  constructor(readonly capacity = 48) {}

  fd(path: string): number {
    if (this.#closed) throw new GatewayError('STORE_CLOSED', 'gateway: store: read after close()');
    const have = this.#fds.get(path);
    if (have !== undefined) {
      this.#fds.delete(path); // re-insert: Map order is the LRU order
      this.#fds.set(path, have);
      return have;
    }
    const fd = openSync(path, 'r');
    this.#fds.set(path, fd);
    if (this.#fds.size > this.capacity) {
      const [oldPath, oldFd] = this.#fds.entries().next().value as [string, number];
      this.#fds.delete(oldPath);
      closeSync(oldFd);
    }
    return fd;
  }

  /** Reads up to `length` bytes at `position`; fewer at the end of the file. */
  read(path: string, position: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const got = this.readInto(path, position, out);
    return got === length ? out : out.subarray(0, got);
  }

  /**
   * Reads into `target` (its whole length) at `position`; returns the bytes read (fewer at the end
   * of the file). Hot paths read into reused buffers: allocating a fresh typed array costs more than
   * the pread itself.
   */
  readInto(path: string, position: number, target: Uint8Array): number {
    const fd = this.fd(path);
    let got = 0;
    while (got < target.length) {
      const n = readSync(fd, target, got, target.length - got, position + got);
      if (n === 0) break;
      got += n;
    }
    return got;
  }

  /** Reads exactly `length` bytes at `position`, or throws `short()` when the file is shorter. */
  readExact(path: string, position: number, length: number, short: () => Error): Uint8Array {
    const b = this.read(path, position, length);
    if (b.length !== length) throw short();
    return b;
  }

  size(path: string): number {
    return fstatSync(this.fd(path)).size;
  }

  forget(path: string): void {
    const fd = this.#fds.get(path);
    if (fd === undefined) return;
    this.#fds.delete(path);
    closeSync(fd);
  }

  /** Closes every descriptor; later reads throw STORE_CLOSED. */
  closeAll(): void {
    this.#closed = true;
    for (const fd of this.#fds.values()) closeSync(fd);
    this.#fds.clear();
  }
}

/**
 * A copy of `src[from, from + length)` as a Uint8Array view into Node's pooled memory (small
 * copies cost no allocation of their own), safe to keep after `src` is reused.
 */
export function copyOut(src: Uint8Array, from: number, length: number): Uint8Array {
  const b = Buffer.allocUnsafe(length);
  b.set(src.subarray(from, from + length));
  return new Uint8Array(b.buffer, b.byteOffset, length);
}
