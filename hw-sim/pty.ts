/**
 * A serial cable for one simulated BMU: a pty pair from socat (NOTES.md "serialport 13 over a pty"),
 * `<dir>/<name>.host` for the gateway or station and `<dir>/<name>.dev` for the device. Killing socat
 * is pulling the USB-serial adapter: both paths vanish and a host's open port closes with a
 * DisconnectedError; starting it again with the same link paths is plugging it back in (the
 * /dev/pts numbers change, the link paths do not — as udev's by-id symlinks behave).
 *
 * socat processes must not outlive us: every pair is stopped by stop(), and a process-wide 'exit'
 * hook SIGKILLs any still running (one hook for all pairs, hence the module-level registry — the
 * only module state in hw-sim, because process exit is itself process-wide). SIGTERM/SIGINT
 * handling that calls stop() belongs to the program (the fleet), as Node skips 'exit' hooks there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { lstat, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SimError } from './errors.js';

export interface PtyPairOptions {
  /** Directory for the two links (e.g. a mkdtemp under os.tmpdir(), or /run/packchain). */
  readonly dir: string;
  /** Base name: links are `<name>.host` and `<name>.dev`. */
  readonly name: string;
  /** socat executable (default "socat" from PATH). */
  readonly socat?: string;
  /** How long to wait for both links to appear (default 5000 ms). */
  readonly startTimeoutMs?: number;
}

export interface PtyPair {
  /** The path a host (gateway, station) opens with serialport. */
  readonly hostPath: string;
  /** The path the simulated device opens. */
  readonly devicePath: string;
  /** Whether socat is running (the cable is plugged in). */
  readonly running: boolean;
  /** socat's process id while running. */
  readonly pid: number | undefined;
  /** Unplugs: stops socat (SIGTERM, then SIGKILL after 2 s) and removes both links. Idempotent. */
  stop(): Promise<void>;
  /** Plugs back in with the same link paths (stops first if running). Throws PTY_START. */
  restart(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function trackForExit(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path); // follows the link: a dangling link (socat SIGKILLed) does not count
    return true;
  } catch {
    return false;
  }
}

/** Removes a leftover link; refuses to touch anything that is not a symlink. */
async function removeLink(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSymbolicLink()) await rm(path, { force: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Starts socat and waits until both links exist. Throws SimError PTY_START when socat is missing,
 * exits early (its last stderr lines are in the message), or the links do not appear in time.
 */
export async function createPtyPair(opts: PtyPairOptions): Promise<PtyPair> {
  const hostPath = join(opts.dir, `${opts.name}.host`);
  const devicePath = join(opts.dir, `${opts.name}.dev`);
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    // A link left by a SIGKILLed socat could point at a /dev/pts number reused by another pair.
    await removeLink(hostPath);
    await removeLink(devicePath);
    const c = spawn(
      opts.socat ?? 'socat',
      ['-d', '-d', `pty,raw,echo=0,link=${hostPath}`, `pty,raw,echo=0,link=${devicePath}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = c;
    let stderr = '';
    // Drain socat's log so it can never block on a full pipe; keep the tail for error messages.
    c.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-2048);
    });
    let failure: string | undefined;
    c.once('error', (e) => (failure = `cannot run ${opts.socat ?? 'socat'}: ${e.message}`));
    c.once('exit', (code, signal) => {
      failure ??= `socat exited (${signal ?? `code ${code}`}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
    });
    if (c.pid !== undefined) trackForExit(c);
    const deadline = Date.now() + (opts.startTimeoutMs ?? 5000);
    for (;;) {
      if (failure !== undefined) throw new SimError('PTY_START', `hw-sim: pty pair ${opts.name}: ${failure}`);
      if ((await exists(hostPath)) && (await exists(devicePath))) return;
      if (Date.now() > deadline) {
        await stopChild(c);
        throw new SimError('PTY_START', `hw-sim: pty pair ${opts.name}: links did not appear within ${opts.startTimeoutMs ?? 5000} ms`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c) await stopChild(c);
    await removeLink(hostPath);
    await removeLink(devicePath);
  };

  await start();
  return {
    hostPath,
    devicePath,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    get pid() {
      return child?.pid;
    },
    stop,
    async restart() {
      await stop();
      await start();
    },
  };
}

/** SIGTERM (socat then removes its links), SIGKILL if it has not exited within 2 s. */
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return;
  const exited = new Promise<void>((resolve) => c.once('exit', () => { resolve(); }));
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}
