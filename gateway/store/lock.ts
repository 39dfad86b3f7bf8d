/**
 * One writer per log directory. Two gateway processes appending to the same segment files would
 * interleave records and sign checkpoints over different trees, so `open` takes `LOCK`, created with
 * O_EXCL and holding the owner's pid and the kernel boot id. A lock left by a process that died
 * (SIGKILL, power cut) is taken over: its pid is not alive, or it was written during another boot
 * (after a power cut the same pid may belong to an unrelated process). Caveat: two processes taking
 * over the same stale lock at the same instant can race; the gateway runs as one service unit.
 */
import { readFileSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { GatewayError } from '../errors.js';
import { FILE_MODE } from './format.js';
import { ioError } from './files.js';

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return ''; // not Linux: fall back to the pid check alone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Why an existing lock is stale, or undefined when its owner is alive (or the lock is ours). */
async function staleReason(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'vanished';
    throw e;
  }
  let owner: { pid?: unknown; boot?: unknown };
  try {
    owner = JSON.parse(text) as { pid?: unknown; boot?: unknown };
  } catch {
    return 'unreadable (a crash while it was being written)';
  }
  if (typeof owner.pid !== 'number' || !Number.isSafeInteger(owner.pid) || owner.pid <= 0) return 'without a pid';
  const boot = bootId();
  if (typeof owner.boot === 'string' && boot !== '' && owner.boot !== boot) return `left by pid ${owner.pid} before a reboot`;
  if (!alive(owner.pid)) return `left by pid ${owner.pid}, which is not running`;
  return undefined;
}

/**
 * Takes the lock at `path`; returns a release function. Throws STORE_LOCKED when a live process
 * (this one included) holds it, STORE_IO when the file cannot be created.
 */
export async function acquireLock(path: string): Promise<{ release: () => Promise<void>; takenOver?: string }> {
  let takenOver: string | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const h = await open(path, 'wx', FILE_MODE);
      try {
        await h.writeFile(JSON.stringify({ pid: process.pid, boot: bootId() }) + '\n');
        await h.sync();
      } finally {
        await h.close();
      }
      const release = async (): Promise<void> => {
        await rm(path, { force: true });
      };
      return takenOver === undefined ? { release } : { release, takenOver };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`creating the lock ${path}`, e);
    }
    const why = await staleReason(path).catch((e: unknown) => {
      throw ioError(`reading the lock ${path}`, e);
    });
    if (why === undefined) {
      throw new GatewayError('STORE_LOCKED', `gateway: store: ${path} is held by a running process; expected one gateway per data directory`);
    }
    takenOver = why;
    await rm(path, { force: true });
  }
  throw new GatewayError('STORE_LOCKED', `gateway: store: ${path} was re-created by another process while taking over a stale lock`);
}

/** True when `path` is a lock held by a live process (read-only opens use it to expect a moving tail). */
export async function lockHeld(path: string): Promise<boolean> {
  try {
    return (await staleReason(path)) === undefined;
  } catch {
    return false;
  }
}
